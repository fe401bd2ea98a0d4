"""The figures a churn model is judged by, from labels and calibrated probabilities.

Accuracy is never reported alone: `ModelFigures` puts it beside the majority class's accuracy,
ROC and PR AUC, and the false-positive rate at the model's threshold.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from pydantic import BaseModel, ConfigDict, Field
from sklearn.metrics import average_precision_score, precision_recall_curve, roc_auc_score

CALIBRATION_BINS = 10


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


def f1_threshold(churned: np.ndarray, probability: np.ndarray) -> float:
    """The probability threshold that maximises F1 (churners flagged vs. flags raised)."""
    precision, recall, thresholds = precision_recall_curve(churned, probability)
    with np.errstate(divide="ignore", invalid="ignore"):
        f1 = np.nan_to_num(2 * precision * recall / (precision + recall))
    return float(thresholds[int(np.argmax(f1[:-1]))])
