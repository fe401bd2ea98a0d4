"""Judge churn models on labelled rows they were not trained on.

- `evaluate(model, df, spec)`: a trained model's figures on any labelled table (e.g. a team's
  own history), at the model's own threshold.
- `make_folds` + `cross_validate`: k stratified folds; for each, a model trained on the other
  folds (with `train_churn_model`, so its early stopping, calibration and threshold use only
  those rows) is evaluated on the fold. The figures are never measured on training rows.
- `compare_with_logistic(df, spec, folds, seed)`: the baseline to beat, on the same folds — a
  regularised logistic regression (blanks imputed with the median plus a was-blank indicator,
  standardised, categories one-hot), fitted on the same three quarters of each fold's training
  rows as the boosted model, its threshold chosen the same way on the remaining quarter.

Both take the KPI target on false positives the threshold is chosen by (`false_positives`,
default the seed's < 0.10): the folds' figures then show how the rule holds on unseen rows.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from retention.errors import InvalidInput
from retention.kpis import KpiTarget
from retention.model.predict import ChurnModel
from retention.model.quality import (
    SEED_FALSE_POSITIVE_TARGET,
    ModelFigures,
    figures,
    fpr_threshold,
)
from retention.model.spec import FeatureSpec, check_table, design_matrix, durations, labels
from retention.model.train import train_churn_model, validation_split

FOLDS = 5
LOGISTIC_C = 1.0  # inverse L2 strength on standardised inputs
LOGISTIC_MAX_ITER = 2000
BLANK_CATEGORY = "(blank)"

Folds = list[tuple[np.ndarray, np.ndarray]]  # (training rows, test rows) positions
Progress = Callable[[str], None]


def evaluate(
    model: ChurnModel, df: pd.DataFrame, spec: FeatureSpec, source: str = "table"
) -> ModelFigures:
    if spec != model.spec:
        raise InvalidInput(f"{source}: the feature spec is not the one the model was trained on")
    check_table(df, spec, source)
    probability = model.score(df, source=source).probability
    return figures(labels(df, spec), probability, model.threshold, durations(df, spec))


def make_folds(df: pd.DataFrame, spec: FeatureSpec, seed: int, k: int = FOLDS) -> Folds:
    """k stratified folds of the table's rows, shuffled by `seed`."""
    churned = labels(df, spec)
    splitter = StratifiedKFold(n_splits=k, shuffle=True, random_state=seed)
    return list(splitter.split(np.zeros(len(churned)), churned))


def cross_validate(
    df: pd.DataFrame,
    spec: FeatureSpec,
    folds: Folds,
    seed: int,
    progress: Progress | None = None,
    false_positives: KpiTarget = SEED_FALSE_POSITIVE_TARGET,
) -> list[ModelFigures]:
    """Each fold's figures, from a model trained on the other folds."""
    found = []
    for i, (train, test) in enumerate(folds, start=1):
        model = train_churn_model(
            df.iloc[train], spec, seed=seed, source=f"fold {i}", false_positives=false_positives
        )
        found.append(evaluate(model, df.iloc[test], spec, source=f"fold {i}"))
        if progress:
            progress(f"fold {i}/{len(folds)}: ROC AUC {found[-1].roc_auc:.3f}")
    return found


def compare_with_logistic(
    df: pd.DataFrame,
    spec: FeatureSpec,
    folds: Folds,
    seed: int,
    false_positives: KpiTarget = SEED_FALSE_POSITIVE_TARGET,
) -> list[ModelFigures]:
    """The logistic baseline's figures on each of the same folds."""
    features, churned, duration = design_matrix(df, spec), labels(df, spec), durations(df, spec)
    found = []
    for train, test in folds:
        fit, held = (train[rows] for rows in validation_split(churned[train], seed))
        baseline = logistic_baseline(spec).fit(_sklearn_frame(features.iloc[fit]), churned[fit])

        def probability(rows: np.ndarray, fitted: Pipeline = baseline) -> np.ndarray:
            return np.asarray(fitted.predict_proba(_sklearn_frame(features.iloc[rows]))[:, 1])

        threshold = fpr_threshold(churned[held], probability(held), false_positives)
        found.append(figures(churned[test], probability(test), threshold, duration[test]))
    return found


def logistic_baseline(spec: FeatureSpec) -> Pipeline:
    numeric = [f.column for f in spec.features if f.kind != "categorical"]
    categorical = [f.column for f in spec.features if f.kind == "categorical"]
    columns = ColumnTransformer(
        [
            (
                "numeric",
                make_pipeline(
                    SimpleImputer(strategy="median", add_indicator=True, keep_empty_features=True),
                    StandardScaler(),
                ),
                numeric,
            ),
            ("categorical", OneHotEncoder(handle_unknown="ignore"), categorical),
        ]
    )
    return make_pipeline(columns, LogisticRegression(C=LOGISTIC_C, max_iter=LOGISTIC_MAX_ITER))


def _sklearn_frame(features: pd.DataFrame) -> pd.DataFrame:
    """Categories as plain text with blanks as a category of their own, for one-hot encoding."""
    return features.apply(
        lambda column: (
            column.astype(object).where(column.notna(), BLANK_CATEGORY)
            if isinstance(column.dtype, pd.CategoricalDtype)
            else column
        )
    )
