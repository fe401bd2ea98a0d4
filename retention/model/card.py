"""The model card: what a model was trained on, how, and how good it is (JSON).

Its figures are cross-validated (`evaluate.cross_validate`, k stratified folds, each fold's model
trained on the other folds only): they describe the training procedure on this table, not the
shipped model's fit to its own rows. Beside them, the logistic baseline on the same folds. The
shipped model itself is trained on the whole table by the same procedure.

The threshold each figure is taken at is chosen by the KPI target on false positives
(`threshold_rule` says how, `false_positive_target` records the target): each fold's model
chooses its own on its own validation split, so the cross-validated false-positive rate shows
how well the rule keeps the target on customers it has not seen.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from typing import Any

import pandas as pd
from pydantic import BaseModel, ConfigDict, Field

from retention.kpis import KpiTarget
from retention.model.artifacts import model_files, model_version
from retention.model.evaluate import (
    FOLDS,
    Progress,
    compare_with_logistic,
    cross_validate,
    make_folds,
)
from retention.model.predict import (
    CONTRIBUTIONS_METHOD,
    DRIVERS_FOR,
    ChurnModel,
    ContributionsMethod,
)
from retention.model.quality import (
    SEED_FALSE_POSITIVE_TARGET,
    ModelFigures,
    mean_figures,
    threshold_rule,
)
from retention.model.spec import FeatureSpec, labels
from retention.model.train import (
    CLASSIFIER_PARAMS,
    EARLY_STOPPING_ROUNDS,
    MAX_ROUNDS,
    SURVIVAL_PARAMS,
    VALIDATION_SHARE,
)

BASELINE = "logistic"


class ModelCard(BaseModel):
    model_config = ConfigDict(frozen=True)

    model_version: str = Field(description="content hash of the model files")
    data_hash: str = Field(description="sha256 of the training file, or of the table")
    rows: int
    base_rate: float
    features: FeatureSpec
    parameters: dict[str, Any]
    seed: int
    folds: int
    figures: ModelFigures = Field(description="cross-validated: row-weighted mean of the folds")
    fold_figures: list[ModelFigures]
    baseline: str = BASELINE
    baseline_figures: ModelFigures = Field(description="the baseline on the same folds")
    baseline_fold_figures: list[ModelFigures]
    threshold: float = Field(description="the shipped model's flag threshold")
    validation_auc: float = Field(description="the shipped model's, on its validation split")
    contributions: ContributionsMethod = Field(description="how drivers are computed")
    drivers_for: str = Field(
        default="every customer scored", description="whose drivers are computed"
    )
    trained_at: datetime
    threshold_rule: str = Field(default="", description="how the threshold was chosen")
    false_positive_target: KpiTarget | None = Field(
        default=None, description="the KPI target the threshold was chosen by"
    )


def build_card(
    model: ChurnModel,
    df: pd.DataFrame,
    *,
    seed: int,
    folds: int = FOLDS,
    data_hash: str | None = None,
    trained_at: datetime | None = None,
    progress: Progress | None = None,
    false_positives: KpiTarget = SEED_FALSE_POSITIVE_TARGET,
) -> ModelCard:
    """Cross-validate the training procedure and the baseline on `df` (the table `model` was
    trained on, with the same seed and `false_positives` target) and describe `model`."""
    spec = model.spec
    split = make_folds(df, spec, seed, folds)
    ours = cross_validate(df, spec, split, seed, progress, false_positives)
    theirs = compare_with_logistic(df, spec, split, seed, false_positives)
    churned = labels(df, spec)
    return ModelCard(
        model_version=model_version(model_files(model)),
        data_hash=data_hash or table_hash(df),
        rows=len(df),
        base_rate=float(churned.mean()),
        features=spec,
        parameters=training_parameters(model),
        seed=seed,
        folds=folds,
        figures=mean_figures(ours),
        fold_figures=ours,
        baseline_figures=mean_figures(theirs),
        baseline_fold_figures=theirs,
        threshold=model.threshold,
        validation_auc=model.validation_auc,
        contributions=CONTRIBUTIONS_METHOD,
        drivers_for=DRIVERS_FOR,
        trained_at=trained_at or datetime.now(UTC),
        threshold_rule=threshold_rule(false_positives),
        false_positive_target=false_positives,
    )


def training_parameters(model: ChurnModel) -> dict[str, Any]:
    return {
        "classifier": CLASSIFIER_PARAMS,
        "survival": SURVIVAL_PARAMS,
        "max_rounds": MAX_ROUNDS,
        "early_stopping_rounds": EARLY_STOPPING_ROUNDS,
        "validation_share": VALIDATION_SHARE,
        "classifier_rounds": model.classifier.num_boosted_rounds(),
        "survival_rounds": model.survival.num_boosted_rounds(),
        "platt": {"slope": model.calibration.slope, "intercept": model.calibration.intercept},
    }


def table_hash(df: pd.DataFrame) -> str:
    """sha256 of a table's column names and values, row order included."""
    digest = hashlib.sha256("\0".join(map(str, df.columns)).encode())
    digest.update(pd.util.hash_pandas_object(df, index=False).to_numpy().tobytes())
    return digest.hexdigest()
