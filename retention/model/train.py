"""Train a `ChurnModel` on a labelled table: `train_churn_model(df, spec, seed=...)`.

The table holds the spec's feature columns, its label (churned) and its duration (days to
churn; for a customer who did not churn, the days observed, i.e. a censored time). A quarter of
the rows (stratified by the label) is held out as the validation split; the other three
quarters train both models. The validation split serves, in turn:

1. early stopping of the classifier and of the survival model (at most 1,000 rounds, stopped
   50 rounds after the validation loss last improved);
2. Platt calibration of the classifier's margin;
3. the flag threshold (`metrics.fpr_threshold`: the best recall whose false-positive rate meets
   the KPI target, rules/kpis.yaml `false_positive_rate`) and the validation AUC that confidence
   is scaled by.

The defaults are for a few thousand rows, where deep or many trees overfit (and untuned
XGBoost often loses to a logistic regression): depth-3 trees, learning rate 0.05, at least 5
rows' weight per leaf, 80% row and column subsampling, L2 regularisation. Deterministic for a
given seed and table.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import xgboost as xgb
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import train_test_split

from retention.errors import InvalidInput
from retention.kpis import KpiTarget
from retention.model.predict import PREDICTION_THREADS, Calibration, ChurnModel
from retention.model.quality import SEED_FALSE_POSITIVE_TARGET, fpr_threshold
from retention.model.spec import FeatureSpec, check_table, design_matrix, durations, labels

TREE_PARAMS: dict[str, Any] = {
    "tree_method": "hist",  # needed for native categorical splits
    "max_depth": 3,
    "eta": 0.05,
    "min_child_weight": 5,
    "subsample": 0.8,
    "colsample_bytree": 0.8,
    "lambda": 1.0,
}
CLASSIFIER_PARAMS: dict[str, Any] = {
    **TREE_PARAMS,
    "objective": "binary:logistic",
    "eval_metric": "logloss",
}
# Normal log-time: exp(predicted mean) is the median time to churn.
SURVIVAL_PARAMS: dict[str, Any] = {
    **TREE_PARAMS,
    "objective": "survival:aft",
    "eval_metric": "aft-nloglik",
    "aft_loss_distribution": "normal",
    "aft_loss_distribution_scale": 1.0,
}
MAX_ROUNDS = 1000
EARLY_STOPPING_ROUNDS = 50
VALIDATION_SHARE = 0.25
MIN_ROWS_PER_CLASS = 10
# A churn on the day of the snapshot counts as one day: log-time needs a positive time.
MIN_DURATION_DAYS = 1.0
# Below this many rows one thread trains faster than several: on a busy 2-core worker, OpenMP
# threads wait on each other (measured: 3,000 rows, 0.5 s on one thread, 1.3-2.0 s on two).
PARALLEL_TRAINING_ROWS = 50_000
# Platt's two parameters are fitted unpenalised (a huge C): there is nothing to shrink them to.
PLATT_C = 1e6


def train_churn_model(
    df: pd.DataFrame,
    spec: FeatureSpec,
    *,
    seed: int,
    source: str = "table",
    false_positives: KpiTarget = SEED_FALSE_POSITIVE_TARGET,
) -> ChurnModel:
    """A calibrated classifier and a survival model for `df`; refuses a table that does not
    fit `spec` (naming the column) or has fewer than 10 churners or 10 retained customers."""
    check_table(df, spec, source)
    churned, duration = labels(df, spec), durations(df, spec)
    for value, name in ((1, "churned"), (0, "retained")):
        if (churned == value).sum() < MIN_ROWS_PER_CLASS:
            raise InvalidInput(
                f"{source}: column {spec.label!r}: fewer than {MIN_ROWS_PER_CLASS} {name} "
                "customers; a model cannot learn from that"
            )
    features = design_matrix(df, spec, source)
    categories = {
        column: [str(c) for c in features[column].cat.categories]
        for column in features.columns
        if isinstance(features[column].dtype, pd.CategoricalDtype)
    }
    empty = [column for column, values in categories.items() if not values]
    if empty:  # XGBoost cannot split on a category-less column
        raise InvalidInput(f"{source}: column {empty[0]!r}: blank in every row")
    fit, held = validation_split(churned, seed)

    def data(rows: np.ndarray) -> xgb.DMatrix:
        return xgb.DMatrix(features.iloc[rows], enable_categorical=True)

    fit_data, held_data = data(fit), data(held)
    fit_data.set_label(churned[fit])
    held_data.set_label(churned[held])
    threads = 1 if len(df) < PARALLEL_TRAINING_ROWS else 0  # 0: every core
    classifier = _boost({**CLASSIFIER_PARAMS, "nthread": threads}, fit_data, held_data, seed)

    for dmatrix, rows in ((fit_data, fit), (held_data, held)):
        lower = np.maximum(duration[rows], MIN_DURATION_DAYS)
        dmatrix.set_float_info("label_lower_bound", lower)
        dmatrix.set_float_info("label_upper_bound", np.where(churned[rows] == 1, lower, np.inf))
    survival = _boost({**SURVIVAL_PARAMS, "nthread": threads}, fit_data, held_data, seed)

    margin = classifier.predict(held_data, output_margin=True).astype(float)
    calibration = platt(margin, churned[held])
    probability = calibration.probability(margin)
    return ChurnModel(
        spec=spec,
        classifier=classifier,
        survival=survival,
        calibration=calibration,
        categories=categories,
        threshold=fpr_threshold(churned[held], probability, false_positives),
        validation_auc=float(roc_auc_score(churned[held], probability)),
    )


def validation_split(churned: np.ndarray, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Row positions (fit, validation): a stratified quarter held out."""
    fit, held = train_test_split(
        np.arange(len(churned)), test_size=VALIDATION_SHARE, stratify=churned, random_state=seed
    )
    return np.sort(fit), np.sort(held)


def platt(margin: np.ndarray, churned: np.ndarray) -> Calibration:
    """Platt scaling, chosen over isotonic regression: the validation split of a few thousand
    rows is a few hundred, where isotonic's step function overfits and ties probabilities into
    plateaus, while two parameters fit stably. A shrunken boosted model's distortion (margins
    pulled toward the base rate) is a sigmoid-shaped one that Platt corrects, and being a
    monotone linear map of the margin it keeps the drivers' additivity."""
    fitted = LogisticRegression(C=PLATT_C).fit(margin.reshape(-1, 1), churned)
    return Calibration(slope=float(fitted.coef_[0, 0]), intercept=float(fitted.intercept_[0]))


def _boost(params: dict[str, Any], fit: xgb.DMatrix, held: xgb.DMatrix, seed: int) -> xgb.Booster:
    """Boosted until the validation loss stops improving; only the best rounds are kept."""
    booster = xgb.train(
        {**params, "seed": seed},
        fit,
        num_boost_round=MAX_ROUNDS,
        evals=[(held, "validation")],
        early_stopping_rounds=EARLY_STOPPING_ROUNDS,
        verbose_eval=False,
    )
    best = booster[: booster.best_iteration + 1]
    best.set_param({"nthread": PREDICTION_THREADS})
    return best
