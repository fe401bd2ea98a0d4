"""The figures a churn model is judged by, from labels and calibrated probabilities.

Accuracy is never reported alone: `ModelFigures` puts it beside the majority class's accuracy,
ROC and PR AUC, and the false-positive rate and recall at the model's threshold.

The threshold (`fpr_threshold`) serves the KPI target on false positives (rules/kpis.yaml
`false_positive_rate`, seed: below 0.10): of the thresholds whose false-positive rate meets the
target on the rows it is chosen on, the one with the best recall (the lowest). A retention team
pays for every flag with a CSM's time and a customer's goodwill, so the flags are rationed by
the target, and within it as many churners as possible are caught.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
from pydantic import BaseModel, ConfigDict, Field
from sklearn.metrics import average_precision_score, roc_auc_score, roc_curve

from retention.kpis import KpiTarget

if TYPE_CHECKING:
    from retention.rulebook.loader import Rulebook

CALIBRATION_BINS = 10
# The seed KPI target (docs/architecture.md, "Design facts"), for a rule set whose kpis.yaml
# leaves it out.
SEED_FALSE_POSITIVE_TARGET = KpiTarget(below=0.10)


class ModelFigures(BaseModel):
    model_config = ConfigDict(frozen=True)

    rows: int
    base_rate: float = Field(description="share of rows that churned")
    roc_auc: float
    pr_auc: float = Field(description="average precision")
    accuracy: float = Field(description="at the threshold")
    majority_accuracy: float = Field(description="always predicting the majority class")
    threshold: float = Field(description="calibrated probability at and above which flagged")
    false_positive_rate: float = Field(description="flagged share of those who did not churn")
    recall: float | None = Field(
        default=None, description="flagged share of those who churned (none in older cards)"
    )
    calibration_error: float = Field(description="expected calibration error, 10 equal bins")
    early_warning_days: float | None = Field(
        description="median days from the prediction to the actual churn, over churners who "
        "were flagged; none when no churner was flagged"
    )


def figures(
    churned: np.ndarray, probability: np.ndarray, threshold: float, duration: np.ndarray
) -> ModelFigures:
    """`churned` 0/1, `probability` calibrated, `duration` days to churn (censored if none)."""
    flagged = probability >= threshold
    base_rate = float(churned.mean())
    caught = flagged & (churned == 1)
    retained = churned == 0
    return ModelFigures(
        rows=len(churned),
        base_rate=base_rate,
        roc_auc=float(roc_auc_score(churned, probability)),
        pr_auc=float(average_precision_score(churned, probability)),
        accuracy=float((flagged == (churned == 1)).mean()),
        majority_accuracy=max(base_rate, 1 - base_rate),
        threshold=threshold,
        false_positive_rate=float(flagged[retained].mean()) if retained.any() else 0.0,
        recall=float(flagged[~retained].mean()) if (~retained).any() else None,
        calibration_error=calibration_error(churned, probability),
        early_warning_days=float(np.median(duration[caught])) if caught.any() else None,
    )


def mean_figures(folds: Sequence[ModelFigures]) -> ModelFigures:
    """Cross-validated figures: each figure's row-weighted mean over the folds (so base_rate is
    the whole table's), rows summed; early warning over the folds that have one."""
    weights = np.array([fold.rows for fold in folds], dtype=float)
    means: dict[str, float | int | None] = {"rows": int(weights.sum())}
    for name in ModelFigures.model_fields:
        if name == "rows":
            continue
        values = [getattr(fold, name) for fold in folds]
        known = [i for i, value in enumerate(values) if value is not None]
        means[name] = (
            float(np.average([values[i] for i in known], weights=weights[known])) if known else None
        )
    return ModelFigures.model_validate(means)


def calibration_error(churned: np.ndarray, probability: np.ndarray) -> float:
    """Expected calibration error: sum over 10 equal-width probability bins of the bin's share
    of rows x |mean probability - churn rate| in the bin."""
    bins = np.minimum((probability * CALIBRATION_BINS).astype(int), CALIBRATION_BINS - 1)
    predicted = np.bincount(bins, weights=probability, minlength=CALIBRATION_BINS)
    observed = np.bincount(bins, weights=churned, minlength=CALIBRATION_BINS)
    return float(np.abs(predicted - observed).sum() / len(probability))


def fpr_threshold(
    churned: np.ndarray, probability: np.ndarray, target: KpiTarget = SEED_FALSE_POSITIVE_TARGET
) -> float:
    """The lowest probability threshold (so the best recall) whose false-positive rate on these
    rows meets `target`; 1.0 when only flagging nobody does (flags p >= 1 only)."""
    false_positive, _, thresholds = roc_curve(churned, probability, drop_intermediate=False)
    meets = np.array([target.met(float(rate)) for rate in false_positive])
    # roc_curve lists thresholds from the highest; the false-positive rate only grows
    return float(min(1.0, thresholds[np.flatnonzero(meets)[-1]])) if meets.any() else 1.0


def threshold_rule(target: KpiTarget) -> str:
    """How `fpr_threshold` chose, in words, for the model card."""
    bound = next(
        f"{word} {value:g}"
        for word, value in (("<=", target.at_most), ("<", target.below), (">=", target.at_least))
        if value is not None
    )
    return (
        "the lowest calibrated probability (the best recall) whose false-positive rate on the "
        f"validation split is {bound} (rules/kpis.yaml false_positive_rate)"
    )


def false_positive_target(rulebook: Rulebook) -> KpiTarget:
    """The KPI target a model's threshold is chosen by: the rule set's, else the seed's."""
    return rulebook.kpis.targets.get("false_positive_rate", SEED_FALSE_POSITIVE_TARGET)
