"""A trained churn model and what it says about customers: `ChurnModel.score` (arrays, for a
batch) and `ChurnModel.predict` (one `ModelPrediction` per row). One XGBoost call per model per
batch, never one per row.

- probability: Platt-calibrated, p = 1 / (1 + exp(-(a x margin + b))), where margin is the
  classifier's raw log-odds and a, b were fitted on held-out rows (see train.py).
- time_to_churn_days: the survival model's median time to churn (an AFT model with a normal
  distribution of log-time, so exp(predicted mean log-time) is the median), clamped to
  1..3650 days. Customers who look safe get long times: the training labels were censored at
  the observation window, so a time beyond it means "not expected within the window".
- confidence = g x (0.5 + 0.5 x |2p - 1|), with g = max(0, 2 x AUC - 1) the model's Gini on its
  validation rows: a model no better than chance (AUC 0.5) is never confident; a perfect one is
  fully confident only of a probability of 0 or 1, and half confident of a coin toss.
- drivers: the classifier's own per-prediction contributions to the margin (log-odds), one per
  feature, largest push toward churn first; they and `bias` sum to `margin`. To read them on the
  calibrated log-odds scale multiply by a (the Platt slope); b joins the bias.

Contributions are exact TreeSHAP values (`approx_contribs=False`): each feature's Shapley value
on the model's margin. They cost ~60 predictions (measured on a busy 2-core machine, 100,000
rows, 16 features, 304 depth-3 trees: 25.9 s exact, 1.9 s approximate, 0.42 s `inplace_predict`),
so they are computed only where drivers are shown or stored (`ModelScorer`'s `explain`): for
a portfolio, the customers at or above the model's threshold (`"flagged"`: the ones a scan
hands to journeys and keeps drivers for; the others' predictions carry none), and for a
journey's own assessment, its one customer (`"all"`). Approximate ones (Saabas: each
split's change of the node value credited to the split's feature) would cost a few predictions
for everyone, but credit features near the root more than their share: the drivers a CSM reads
are the exact ones. (`method="approximate"` stays available for a quick look.)
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import pandas as pd
import xgboost as xgb

from retention.model.spec import FeatureSpec, design_matrix

ContributionsMethod = Literal["exact", "approximate"]
CONTRIBUTIONS_METHOD: ContributionsMethod = "exact"
DRIVERS_FOR = (
    "a batch (portfolio scan): the customers at or above the threshold; "
    "a journey's own assessment: its customer"
)
Explained = Literal["flagged", "all"]
"""Whose drivers a batch computes: the flagged customers' (probability at or above the model's
threshold), or everyone's."""
# Predictions use one thread: a journey scores one customer and a scan page a few hundred,
# where OpenMP's team costs more than it gains, and on a machine that trains a model beside
# the journeys its spinning threads took the CPU the journeys' steps needed (bench/RESULTS.md,
# bench/retrain_beside_journeys.py).
PREDICTION_THREADS = 1
MIN_TIME_TO_CHURN_DAYS = 1.0
MAX_TIME_TO_CHURN_DAYS = 3650.0


@dataclass(frozen=True)
class Calibration:
    """Platt scaling of the classifier's margin: p = sigmoid(slope x margin + intercept)."""

    slope: float
    intercept: float

    def probability(self, margin: np.ndarray) -> np.ndarray:
        return sigmoid(self.slope * margin + self.intercept)


@dataclass(frozen=True, slots=True)
class ModelPrediction:
    """One customer's prediction. Plain values, not pydantic: a portfolio holds 100,000."""

    probability: float
    time_to_churn_days: float
    confidence: float
    margin: float
    bias: float
    drivers: tuple[tuple[str, float], ...]  # (feature, contribution), largest first


@dataclass(frozen=True)
class Scores:
    """A batch's predictions as arrays, one entry per row."""

    margin: np.ndarray
    probability: np.ndarray
    time_to_churn_days: np.ndarray
    confidence: np.ndarray
    flagged: np.ndarray  # bool: probability >= the model's threshold
    contributions: np.ndarray | None  # rows x (features + 1), the bias last; None: not asked
    matrix: pd.DataFrame  # what the models read, for contributions computed later


@dataclass(frozen=True)
class ChurnModel:
    """A classifier, its calibration, a survival model, and what they were trained on."""

    spec: FeatureSpec
    classifier: xgb.Booster
    survival: xgb.Booster
    calibration: Calibration
    categories: Mapping[str, list[str]]  # each categorical column's categories in training
    threshold: float  # calibrated probability at and above which a customer is flagged
    validation_auc: float

    def matrix(self, df: pd.DataFrame, source: str = "table") -> pd.DataFrame:
        return design_matrix(df, self.spec, source, self.categories)

    def score(
        self,
        df: pd.DataFrame,
        *,
        contributions: bool = False,
        method: ContributionsMethod = CONTRIBUTIONS_METHOD,
        source: str = "table",
    ) -> Scores:
        """Predictions for every row of `df` (it may hold other columns too)."""
        features = self.matrix(df, source)
        margin = np.asarray(
            self.classifier.inplace_predict(features, predict_type="margin"), dtype=float
        )
        probability = self.calibration.probability(margin)
        median = np.asarray(self.survival.inplace_predict(features), dtype=float)
        return Scores(
            margin=margin,
            probability=probability,
            time_to_churn_days=np.clip(median, MIN_TIME_TO_CHURN_DAYS, MAX_TIME_TO_CHURN_DAYS),
            confidence=confidence(probability, self.validation_auc),
            flagged=probability >= self.threshold,
            contributions=self.contributions(features, method) if contributions else None,
            matrix=features,
        )

    def contributions(self, features: pd.DataFrame, method: ContributionsMethod) -> np.ndarray:
        """rows x (features + 1), the bias last, in float64: XGBoost's float32 would round to
        0.09560000151395798."""
        shape = (len(features), len(self.spec.columns) + 1)
        if not len(features):
            return np.zeros(shape)
        values = self.classifier.predict(
            xgb.DMatrix(features, enable_categorical=True),
            pred_contribs=True,
            approx_contribs=method == "approximate",
        )
        return np.asarray(values, dtype=np.float64).reshape(shape)

    def predict(
        self, df: pd.DataFrame, *, drivers: bool = True, top: int | None = None
    ) -> list[ModelPrediction]:
        """One prediction per row; `top` keeps each row's largest drivers only. Skip drivers
        (`drivers=False`) where they are neither shown nor stored: they cost more than the
        rest of the prediction."""
        scores = self.score(df, contributions=drivers)
        rows = len(scores.margin)
        reasons: list[tuple[tuple[str, float], ...]] = [()] * rows
        biases = [math.nan] * rows
        if scores.contributions is not None:
            names, values, bias = ranked_drivers(scores.contributions, self.spec.columns, top)
            biases = bias.tolist()
            reasons = [
                tuple(zip(n, v, strict=True))
                for n, v in zip(names.tolist(), values.tolist(), strict=True)
            ]
        columns = (scores.probability, scores.time_to_churn_days, scores.confidence, scores.margin)
        return [
            ModelPrediction(p, days, conf, margin, bias, drivers)
            for p, days, conf, margin, bias, drivers in zip(
                *(column.tolist() for column in columns), biases, reasons, strict=True
            )
        ]


def ranked_drivers(
    contributions: np.ndarray, columns: Sequence[str], top: int | None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Each row's feature names and contributions, largest first (the `top` only), and its
    bias, from contributions of rows x (features + 1) with the bias last."""
    features, bias = contributions[:, :-1], contributions[:, -1]
    order = np.argsort(-features, axis=1, kind="stable")[:, :top]
    names = np.array(columns, dtype=object)[order]
    return names, np.take_along_axis(features, order, axis=1), bias


def sigmoid(z: np.ndarray) -> np.ndarray:
    """1 / (1 + exp(-z)), written with tanh so that no z overflows."""
    return np.asarray(0.5 * (1 + np.tanh(0.5 * z)), dtype=float)


def confidence(probability: np.ndarray, auc: float) -> np.ndarray:
    """g x (0.5 + 0.5 x |2p - 1|) with g = max(0, 2 AUC - 1); see the module docstring."""
    gini = max(0.0, 2 * auc - 1)
    return np.round(gini * (0.5 + 0.5 * np.abs(2 * probability - 1)), 3)
