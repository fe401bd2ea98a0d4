"""The worker-side churn scorer: the shipped model scoring assessed customers."""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from factories import make_customer
from journey_stories import AT_RISK, WAVERING

from retention.errors import InvalidInput
from retention.model.card import build_card
from retention.model.features import feature_frame
from retention.model.persist import load_model, save_model
from retention.model.scorer import ModelScorer, load_scorer
from retention.model.spec import Feature, FeatureSpec
from retention.model.train import train_churn_model
from retention.rulebook.loader import Rulebook, load_rulebook
from retention.runtime.settings import ROOT, Settings
from retention.scoring.assessment import Assessment, assess_customer
from retention.scoring.risk import ChurnPrediction

DEFAULT_MODEL = ROOT / "models" / "churn-default"
AT = datetime(2026, 1, 15, tzinfo=UTC)


@pytest.fixture(scope="module")
def rulebook() -> Rulebook:
    return load_rulebook(ROOT / "rules")


@pytest.fixture(scope="module")
def scorer() -> ModelScorer:
    scorer = load_scorer(str(DEFAULT_MODEL))
    assert scorer is not None
    return scorer


def test_the_default_setting_is_the_shipped_model(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("RETENTION_MODEL_DIR", raising=False)
    assert Path(Settings().model_dir) == DEFAULT_MODEL
    _, card = load_model(DEFAULT_MODEL)
    assert card.rows >= 10_000 and card.features.columns == list(card.features.columns)
    assert all(path.stat().st_size < 1_000_000 for path in DEFAULT_MODEL.iterdir())


def test_a_riskier_customer_scores_higher_and_sooner(
    scorer: ModelScorer, rulebook: Rulebook
) -> None:
    healthy, wavering, at_risk = (
        assess_customer(make_customer(**given), rulebook, AT, scorer=scorer).prediction
        for given in ({}, WAVERING, AT_RISK)
    )

    assert healthy.probability < wavering.probability < at_risk.probability
    assert at_risk.time_to_churn_days is not None and healthy.time_to_churn_days is not None
    assert at_risk.time_to_churn_days < healthy.time_to_churn_days
    assert at_risk.model_version == healthy.model_version == scorer.version
    assert at_risk.probability_source == "model"
    assert at_risk.severity_value == pytest.approx(at_risk.probability * 90_000, abs=0.01)
    assert 0 < at_risk.confidence <= 1
    # the rule set's risk factors and actions, as baseline-0 has them
    assert [f.name for f in at_risk.risk_factors][:2] == ["champion_risk", "usage_decline"]
    assert at_risk.recommended_actions and healthy.risk_factors == []
    # the model's own top drivers, largest push first
    pushes = [d.contribution for d in at_risk.drivers]
    assert len(pushes) == 5 and pushes == sorted(pushes, reverse=True) and pushes[0] > 0


def assessed_with_features(
    scorer: ModelScorer, rulebook: Rulebook
) -> tuple[list[Assessment], pd.DataFrame]:
    """A healthy, a wavering and an at-risk customer assessed with `scorer`, and their seed
    features as the model reads them."""
    customers = [make_customer(**given) for given in ({}, WAVERING, AT_RISK)]
    assessed = [assess_customer(c, rulebook, AT, scorer=scorer) for c in customers]
    healths, counts = [a.health for a in assessed], [len(a.expansion) for a in assessed]
    return assessed, feature_frame(customers, healths, [AT.date()] * 3, counts)


def test_drivers_sum_with_the_bias_to_the_margin(rulebook: Rulebook) -> None:
    every = ModelScorer.load(DEFAULT_MODEL, top=16)
    assessed, table = assessed_with_features(every, rulebook)
    margins = every.model.classifier.inplace_predict(table, predict_type="margin")
    for assessment, margin in zip(assessed, margins, strict=True):
        prediction = assessment.prediction
        assert len(prediction.drivers) == 16 and prediction.driver_bias is not None
        total = sum(d.contribution for d in prediction.drivers) + prediction.driver_bias
        assert total == pytest.approx(float(margin), abs=1e-3)


def test_a_batch_scores_like_one_at_a_time_with_drivers_for_the_flagged_only(
    scorer: ModelScorer, rulebook: Rulebook
) -> None:
    customers = [make_customer(**given) for given in ({}, WAVERING, AT_RISK)]
    assessed = [assess_customer(c, rulebook, AT, scorer=scorer) for c in customers]
    healths, counts = [a.health for a in assessed], [len(a.expansion) for a in assessed]
    policy = rulebook.scoring.risk
    batch = scorer.predict(customers, healths, counts, policy, AT.date())
    flagged = scorer.score_portfolio(customers, healths, counts, policy, AT.date()).flagged

    assert flagged.tolist() == [False, False, True]  # the wavering one is below the threshold
    without_drivers = {"drivers", "driver_bias"}
    for alone, in_batch, shown in zip(assessed, batch, flagged.tolist(), strict=True):
        assert in_batch.model_dump(exclude=without_drivers) == alone.prediction.model_dump(
            exclude=without_drivers
        )
        assert alone.prediction.drivers  # a journey's own assessment always has them
        if shown:
            assert in_batch.drivers == alone.prediction.drivers
        else:
            assert (in_batch.drivers, in_batch.driver_bias) == ([], None)


def test_drivers_are_the_exact_shapley_values(scorer: ModelScorer, rulebook: Rulebook) -> None:
    assessed, table = assessed_with_features(scorer, rulebook)
    exact = scorer.model.score(table, contributions=True, method="exact").contributions
    approximate = scorer.model.score(table, contributions=True, method="approximate").contributions
    assert exact is not None and approximate is not None
    names = scorer.model.spec.columns
    for prediction, row in zip((a.prediction for a in assessed), exact, strict=True):
        for driver in prediction.drivers:
            assert driver.contribution == pytest.approx(row[names.index(driver.feature)], abs=1e-4)
    assert not np.allclose(exact, approximate, atol=1e-3)  # the choice is visible


def test_an_upstream_probability_still_wins(scorer: ModelScorer, rulebook: Rulebook) -> None:
    prediction = assess_customer(make_customer(), rulebook, AT, 0.9, scorer).prediction
    assert (prediction.probability, prediction.model_version) == (0.9, "upstream")


@pytest.mark.parametrize("setting", ["baseline", "", "baseline-0"])
def test_baseline_setting_keeps_baseline_0(
    setting: str, rulebook: Rulebook, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RETENTION_MODEL_DIR", setting)
    scorer = load_scorer(Settings().model_dir)
    assert scorer is None
    prediction = assess_customer(make_customer(), rulebook, AT, scorer=scorer).prediction
    assert prediction.model_version == "baseline-0"


@pytest.fixture(scope="module")
def own_columns_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A model trained on a team's own columns: seats_used and plan are no seed features."""
    rng = np.random.default_rng(3)
    rows = 400
    seats = rng.integers(1, 50, rows).astype(float)
    health = rng.uniform(0, 100, rows)
    churned = rng.random(rows) < 1 / (1 + np.exp(0.05 * (health - 40)))
    table = pd.DataFrame(
        {
            "seats_used": seats,
            "plan": rng.choice(["basic", "pro"], rows),
            "health_score": health,
            "churned": churned,
            "duration_days": np.where(churned, rng.integers(1, 180, rows), 180),
        }
    )
    spec = FeatureSpec(
        features=[
            Feature(column="seats_used"),
            Feature(column="plan", kind="categorical"),
            Feature(column="health_score"),
        ]
    )
    model = train_churn_model(table, spec, seed=1)
    folder = tmp_path_factory.mktemp("own") / "churn-own"
    return save_model(model, build_card(model, table, seed=1, folds=2), folder)


def test_a_model_the_snapshot_cannot_feed_is_refused_naming_the_features(
    own_columns_model: Path,
) -> None:
    with pytest.raises(InvalidInput, match=r"churn-own: the model reads 'seats_used', 'plan',"):
        load_scorer(str(own_columns_model))


def test_the_worker_refuses_such_a_model_at_start(own_columns_model: Path) -> None:
    started = subprocess.run(
        [sys.executable, str(ROOT / "worker.py")],
        env={"RETENTION_MODEL_DIR": str(own_columns_model), "PATH": "/usr/bin:/bin"},
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert started.returncode != 0
    assert "the model reads 'seats_used', 'plan'" in started.stderr
    assert "Traceback" not in started.stderr


def test_a_portfolio_builds_predictions_for_the_flagged_ranked_by_margin(
    scorer: ModelScorer, rulebook: Rulebook
) -> None:
    customers = [make_customer(**given) for given in ({}, AT_RISK, WAVERING, AT_RISK, {})]
    assessed = [assess_customer(c, rulebook, AT, scorer=scorer) for c in customers]
    healths, counts = [a.health for a in assessed], [len(a.expansion) for a in assessed]
    portfolio = scorer.score_portfolio(customers, healths, counts, rulebook.scoring.risk, AT.date())

    at_risk = portfolio.at_risk().tolist()
    expected = [i for i, a in enumerate(assessed) if a.prediction.probability >= 0.5]
    assert set(expected) <= set(at_risk) and 0 not in at_risk  # the healthy one is not flagged
    margins = portfolio.margin[at_risk].tolist()
    assert margins == sorted(margins, reverse=True) and at_risk[:2] == [1, 3]  # ties: input order
    built = portfolio.predictions(at_risk)
    assert [p.model_dump() for p in built] == [assessed[i].prediction.model_dump() for i in at_risk]
    assert all(p.probability >= portfolio.threshold - 0.0005 for p in built)
    assert list(portfolio.each_prediction(at_risk)) == built  # one at a time, the same


def test_an_empty_portfolio_scores_nothing(scorer: ModelScorer, rulebook: Rulebook) -> None:
    portfolio = scorer.score_portfolio([], [], [], rulebook.scoring.risk, AT.date())
    assert len(portfolio) == 0 and portfolio.at_risk().tolist() == []
    assert portfolio.predictions() == []


def test_confidence_is_the_documented_function_of_p_and_the_validation_auc(
    scorer: ModelScorer, rulebook: Rulebook
) -> None:
    assessed, table = assessed_with_features(scorer, rulebook)
    probability = scorer.model.score(table).probability
    gini = 2 * scorer.model.validation_auc - 1
    for assessment, p in zip(assessed, probability.tolist(), strict=True):
        expected = round(gini * (0.5 + 0.5 * abs(2 * p - 1)), 3)
        assert assessment.prediction.confidence == pytest.approx(expected, abs=1e-9)
    assert "2 x validation AUC - 1" in str(ChurnPrediction.model_fields["confidence"].description)
