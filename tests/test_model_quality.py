"""The training recipe on generated populations: at least as good as the logistic baseline on
the same folds, better than baseline-0 on customers it never saw, and calibrated."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from retention.model.evaluate import compare_with_logistic, cross_validate, make_folds
from retention.model.generator import DEFAULT_SNAPSHOT_DATE, generate_population
from retention.model.quality import calibration_error, mean_figures
from retention.model.spec import SEED_SPEC
from retention.model.train import train_churn_model
from retention.model.training_data import training_table
from retention.rulebook.loader import Rulebook, load_rulebook
from retention.runtime.settings import ROOT
from retention.scoring.health import score_health
from retention.scoring.risk import baseline_prediction

ROWS = 3_000
HELD_OUT_ROWS = 5_000
# Held-out AUC the model adds over baseline-0 at least (measured: +0.023 to +0.035 over seeds
# 1-4; seed 1: 0.891 against 0.856).
OVER_BASELINE_0 = 0.02
MAX_ECE = 0.05


@pytest.fixture(scope="module")
def rulebook() -> Rulebook:
    return load_rulebook(ROOT / "rules")


def generated_table(rulebook: Rulebook, rows: int, seed: int) -> pd.DataFrame:
    population = generate_population(rows, seed=seed)
    return training_table(population, rulebook.scoring, expansion=rulebook.expansion)


@pytest.mark.parametrize("seed", [1, 2])
def test_cross_validated_model_is_at_least_as_good_as_logistic(
    seed: int, rulebook: Rulebook
) -> None:
    table = generated_table(rulebook, ROWS, seed)
    folds = make_folds(table, SEED_SPEC, seed)
    ours = mean_figures(cross_validate(table, SEED_SPEC, folds, seed))
    logistic = mean_figures(compare_with_logistic(table, SEED_SPEC, folds, seed))
    assert ours.roc_auc >= logistic.roc_auc  # measured: 0.879 vs 0.866, 0.880 vs 0.864
    assert ours.calibration_error <= MAX_ECE


def test_on_held_out_customers_it_beats_baseline_0_and_is_calibrated(rulebook: Rulebook) -> None:
    model = train_churn_model(generated_table(rulebook, ROWS, seed=1), SEED_SPEC, seed=1)
    held_out = generate_population(HELD_OUT_ROWS, seed=101)
    table = training_table(held_out, rulebook.scoring, expansion=rulebook.expansion)
    churned = table["churned"].to_numpy(dtype=int)

    probability = model.score(table).probability
    at = datetime.combine(DEFAULT_SNAPSHOT_DATE, datetime.min.time(), UTC)
    scoring = rulebook.scoring
    baseline_0 = np.array(
        [
            baseline_prediction(c, score_health(c, at, scoring.health), scoring.risk).probability
            for c in held_out.customers
        ]
    )

    assert (
        roc_auc_score(churned, probability) > roc_auc_score(churned, baseline_0) + OVER_BASELINE_0
    )
    assert calibration_error(churned, probability) <= MAX_ECE
