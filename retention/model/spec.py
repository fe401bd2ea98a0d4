"""What a churn model is trained on: a `FeatureSpec` (YAML), table checks, the design matrix.

A feature spec names the label column (churned: true/false), the duration column (days to
churn, or to the end of the observation window when the customer did not churn) and the
feature columns, each with a kind and what a blank means:

    label: churned
    duration: duration_days
    features:
      - {column: plan, kind: categorical}                # blanks: missing (the default)
      - {column: seats_used, kind: numeric, blanks: zero}
      - {column: has_sso, kind: boolean, blanks: false}  # a fixed value of the column's kind

`check_table` refuses a table whose columns do not fit its spec, naming the column and the first
bad row (rows count data rows from 1: row N is line N + 1 of a CSV with a header).
`design_matrix` turns a table into what XGBoost reads: numeric as float, booleans as 0/1,
categorical as pandas `category` (XGBoost's native categorical splits), blanks as NaN — which
XGBoost treats as missing and learns a default direction for — unless the spec fills them.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, model_validator

from retention.errors import InvalidInput, RetentionError
from retention.rulebook.loader import load_yaml_model
from retention.scoring.risk import SEED_FEATURES

FeatureKind = Literal["numeric", "categorical", "boolean"]
Blanks = Literal["missing", "zero"] | bool | float | str

TRUE_TEXT = frozenset({"true", "yes", "1", "1.0", "t", "y"})
FALSE_TEXT = frozenset({"false", "no", "0", "0.0", "f", "n"})
# XGBoost refuses feature names holding these characters.
FORBIDDEN_NAME_CHARACTERS = "[]<"


class Feature(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    column: str = Field(min_length=1)
    kind: FeatureKind = "numeric"
    blanks: Blanks = Field(
        default="missing", description="missing (NaN), zero, or a fixed value of the kind"
    )

    @model_validator(mode="after")
    def _blanks_fit_kind(self) -> Feature:
        if any(char in self.column for char in FORBIDDEN_NAME_CHARACTERS):
            raise ValueError(f"column {self.column!r}: names cannot hold any of [ ] <")
        fill, kind = self.blanks, self.kind
        if fill in ("missing", "zero"):
            if fill == "zero" and kind == "categorical":
                raise ValueError("a categorical column's blanks are missing or a category")
            return self
        fits = {
            "numeric": isinstance(fill, int | float) and not isinstance(fill, bool),
            "boolean": isinstance(fill, bool),
            "categorical": isinstance(fill, str),
        }[kind]
        if not fits:
            raise ValueError(f"blanks of a {kind} column cannot be {fill!r}")
        return self


class FeatureSpec(BaseModel):
    """The columns a model reads. Order matters: it is the design matrix's column order."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    label: str = Field(default="churned", min_length=1)
    duration: str = Field(default="duration_days", min_length=1)
    features: list[Feature] = Field(min_length=1)

    @model_validator(mode="after")
    def _distinct_columns(self) -> FeatureSpec:
        names = [f.column for f in self.features]
        twice = sorted({name for name in names if names.count(name) > 1})
        if twice:
            raise ValueError(f"feature columns must be unique: {', '.join(twice)}")
        if self.label == self.duration:
            raise ValueError("label and duration must be different columns")
        clash = sorted({self.label, self.duration} & set(names))
        if clash:
            raise ValueError(f"{', '.join(clash)}: the label and duration cannot be features")
        return self

    @property
    def columns(self) -> list[str]:
        return [f.column for f in self.features]


SEED_SPEC = FeatureSpec(features=[Feature(column=name) for name in SEED_FEATURES])


def load_feature_spec(path: Path) -> FeatureSpec:
    """A spec from YAML; a refusal names file:line:column and the field."""
    try:
        return load_yaml_model(path, FeatureSpec)
    except RetentionError as exc:
        raise InvalidInput(str(exc)) from exc


def check_table(df: pd.DataFrame, spec: FeatureSpec, source: str) -> None:
    """Refuse a labelled table that does not fit `spec`: a missing, extra or badly typed column,
    a blank or non-boolean label, a blank, negative or non-numeric duration."""
    if df.empty:
        raise InvalidInput(f"{source}: the table has no rows")
    extra = [c for c in df.columns if c not in {*spec.columns, spec.label, spec.duration}]
    if extra:
        raise InvalidInput(
            f"{source}: column {extra[0]!r} is not in the feature spec "
            f"(features, {spec.label!r} and {spec.duration!r} only)"
        )
    design_matrix(df, spec, source)
    labels(df, spec, source)
    durations(df, spec, source)


def design_matrix(
    df: pd.DataFrame,
    spec: FeatureSpec,
    source: str = "table",
    categories: Mapping[str, list[str]] | None = None,
) -> pd.DataFrame:
    """The feature columns as XGBoost reads them, in spec order; other columns are ignored.

    `categories` fixes each categorical column's categories (a trained model's, so codes mean
    the same at prediction as in training; an unseen value becomes missing). Without it they are
    the sorted values present.
    """
    columns = {}
    for feature in spec.features:
        if feature.column not in df.columns:
            raise InvalidInput(f"{source}: column {feature.column!r} is missing")
        known = categories.get(feature.column) if categories else None
        columns[feature.column] = _convert(df[feature.column], feature, source, known)
    return pd.DataFrame(columns, index=df.index)


def labels(df: pd.DataFrame, spec: FeatureSpec, source: str = "table") -> np.ndarray:
    """The label column as 0/1 ints; blanks refused."""
    column = _required(df, spec.label, source)
    values = _booleans(column, spec.label, source)
    _refuse_blanks(values, spec.label, source)
    return values.to_numpy(dtype=int)


def durations(df: pd.DataFrame, spec: FeatureSpec, source: str = "table") -> np.ndarray:
    """The duration column in days; blanks and negatives refused."""
    values = _numbers(_required(df, spec.duration, source), spec.duration, source)
    _refuse_blanks(values, spec.duration, source)
    negative = np.flatnonzero(values.to_numpy() < 0)
    if negative.size:
        raise InvalidInput(
            f"{source}: column {spec.duration!r}: row {negative[0] + 1}: "
            f"{values.iloc[negative[0]]} days is negative"
        )
    return values.to_numpy(dtype=float)


def _required(df: pd.DataFrame, column: str, source: str) -> pd.Series:
    if column not in df.columns:
        raise InvalidInput(f"{source}: column {column!r} is missing")
    return df[column]


def _refuse_blanks(values: pd.Series, column: str, source: str) -> None:
    blank = np.flatnonzero(values.isna().to_numpy())
    if blank.size:
        raise InvalidInput(f"{source}: column {column!r}: row {blank[0] + 1} is blank")


def _convert(
    column: pd.Series, feature: Feature, source: str, categories: list[str] | None
) -> pd.Series:
    fill = feature.blanks
    if feature.kind == "categorical":
        text = column.astype("string")
        if fill != "missing":
            text = text.fillna(str(fill))
        known = sorted(text.dropna().unique()) if categories is None else categories
        text = text.where(text.isin(known))  # a category unseen in training is a blank
        return pd.Series(pd.Categorical(text, categories=known), index=column.index)
    values = (
        _booleans(column, feature.column, source)
        if feature.kind == "boolean"
        else _numbers(column, feature.column, source)
    )
    values = values.astype(float)
    if fill != "missing":
        values = values.fillna(0.0 if fill == "zero" else float(fill))
    return values


def _numbers(column: pd.Series, name: str, source: str) -> pd.Series:
    """Finite floats (NaN for blanks); text that is not a number is refused."""
    if pd.api.types.is_bool_dtype(column):
        return column.astype(float)
    numbers = pd.to_numeric(column, errors="coerce")
    bad = numbers.isna() & column.notna()
    if pd.api.types.is_numeric_dtype(numbers):
        bad |= np.isinf(numbers.astype(float))
    _refuse_rows(column, bad, name, source, "is not a finite number")
    return numbers.astype(float)


def _booleans(column: pd.Series, name: str, source: str) -> pd.Series:
    """True/False as 1.0/0.0 (NaN for blanks), from bools, 0/1 or text like true/no."""
    if pd.api.types.is_bool_dtype(column):
        return column.astype(float)
    text = column.astype("string").str.strip().str.lower()
    values = pd.Series(np.nan, index=column.index)
    values[text.isin(TRUE_TEXT).fillna(False).to_numpy(dtype=bool)] = 1.0
    values[text.isin(FALSE_TEXT).fillna(False).to_numpy(dtype=bool)] = 0.0
    _refuse_rows(column, values.isna() & column.notna(), name, source, "is not true or false")
    return values


def _refuse_rows(column: pd.Series, bad: pd.Series, name: str, source: str, what: str) -> None:
    rows = np.flatnonzero(bad.to_numpy(dtype=bool))
    if rows.size:
        first = rows[0]
        value = column.iloc[first]
        value = value.item() if isinstance(value, np.generic) else value  # inf, not np.float64(inf)
        raise InvalidInput(
            f"{source}: column {name!r}: row {first + 1}: {value!r} {what}"
            + (f" ({rows.size} rows like it)" if rows.size > 1 else "")
        )
