"""Risk factors at the seed's thresholds (the shipped rules/scoring.yaml) and the `baseline-0` /
upstream churn predictions."""

from __future__ import annotations

import math
from collections.abc import Callable
from datetime import UTC, datetime

import pytest
from factories import make_customer

from retention.customer import CustomerSnapshot
from retention.errors import InvalidInput
from retention.rulebook.schema import ScoringFile
from retention.scoring.health import score_health
from retention.scoring.risk import (
    ChurnPrediction,
    RiskFlags,
    RiskPolicy,
    baseline_prediction,
    risk_factors,
    time_to_churn_days,
    upstream_prediction,
)

AT = datetime(2025, 3, 1, 9, 30, tzinfo=UTC)

# Every seed risk factor fires; each override is just past its threshold or well past it.
ALL_FACTORS = {
    "usage": {"days_since_last_login": 40, "logins_per_week": 1.0, "logins_per_week_prior": 5.0},
    "support": {"tickets_90d": 6, "avg_ticket_sentiment": -0.7, "satisfaction": 2},
    "financial": {"payment_delays_90d": 2},
    "relationship": {"nps": 3, "executive_engaged": False, "champion_status": "left"},
}


def names(snapshot: CustomerSnapshot, policy: RiskPolicy) -> list[str]:
    return [factor.name for factor in risk_factors(snapshot, policy)]


@pytest.fixture
def predict(scoring: ScoringFile) -> Callable[[CustomerSnapshot], ChurnPrediction]:
    """The baseline prediction under the shipped scoring policy."""

    def predict(snapshot: CustomerSnapshot) -> ChurnPrediction:
        health = score_health(snapshot, AT, scoring.health)
        return baseline_prediction(snapshot, health, scoring.risk)

    return predict


Predict = Callable[[CustomerSnapshot], ChurnPrediction]


def test_healthy_customer_has_no_risk_factors(risk_policy: RiskPolicy) -> None:
    assert risk_factors(make_customer(), risk_policy) == []


@pytest.mark.parametrize(
    ("current", "fires"),
    [(7.0, False), (6.999, True), (3.5, True), (10.0, False), (12.0, False)],
)
def test_usage_decline_fires_above_0_3(
    risk_policy: RiskPolicy, current: float, fires: bool
) -> None:
    snapshot = make_customer(usage={"logins_per_week": current, "logins_per_week_prior": 10.0})
    assert names(snapshot, risk_policy) == (["usage_decline"] if fires else [])


@pytest.mark.parametrize(("days", "fires"), [(14, False), (15, True)])
def test_inactive_fires_after_14_days(risk_policy: RiskPolicy, days: int, fires: bool) -> None:
    snapshot = make_customer(usage={"days_since_last_login": days})
    assert names(snapshot, risk_policy) == (["inactive"] if fires else [])


@pytest.mark.parametrize(("sentiment", "fires"), [(-0.5, False), (-0.51, True)])
def test_negative_sentiment_fires_below_minus_0_5(
    risk_policy: RiskPolicy, sentiment: float, fires: bool
) -> None:
    snapshot = make_customer(support={"avg_ticket_sentiment": sentiment})
    assert names(snapshot, risk_policy) == (["negative_sentiment"] if fires else [])


@pytest.mark.parametrize(("delays", "fires"), [(0, False), (1, True)])
def test_payment_issues_fire_on_any_delay(
    risk_policy: RiskPolicy, delays: int, fires: bool
) -> None:
    snapshot = make_customer(financial={"payment_delays_90d": delays})
    assert names(snapshot, risk_policy) == (["payment_issues"] if fires else [])


@pytest.mark.parametrize(
    ("status", "fires"), [("left", True), ("at_risk", False), ("none", False), ("active", False)]
)
def test_champion_risk_fires_when_champion_left(
    risk_policy: RiskPolicy, status: str, fires: bool
) -> None:
    snapshot = make_customer(relationship={"champion_status": status})
    assert names(snapshot, risk_policy) == (["champion_risk"] if fires else [])


def test_all_five_factors_sorted_by_impact_with_seed_severities(risk_policy: RiskPolicy) -> None:
    factors = risk_factors(make_customer(**ALL_FACTORS), risk_policy)
    assert [(f.name, f.severity, f.impact) for f in factors] == [
        ("champion_risk", "critical", 0.40),
        ("usage_decline", "high", 0.35),
        ("inactive", "high", 0.30),
        ("payment_issues", "high", 0.25),
        ("negative_sentiment", "medium", 0.20),
    ]


def test_details_state_the_observed_values(risk_policy: RiskPolicy) -> None:
    details = {f.name: f.detail for f in risk_factors(make_customer(**ALL_FACTORS), risk_policy)}
    assert "80%" in details["usage_decline"]
    assert "40 days" in details["inactive"]
    assert "-0.70" in details["negative_sentiment"]
    assert "2 delayed" in details["payment_issues"]
    assert "champion" in details["champion_risk"]


HEALTHY = make_customer(relationship={"nps": 9})
INACTIVE_DECLINING = make_customer(
    usage={"days_since_last_login": 21, "logins_per_week": 1.0, "logins_per_week_prior": 4.0}
)
CRITICAL = make_customer(**ALL_FACTORS)


def test_baseline_probabilities_of_the_three_profiles(predict: Predict) -> None:
    healthy, declining, critical = (predict(c) for c in (HEALTHY, INACTIVE_DECLINING, CRITICAL))
    assert healthy.probability < 0.3
    assert 0.5 <= declining.probability <= 0.7
    assert critical.probability > 0.8
    assert healthy.probability < declining.probability < critical.probability


def test_baseline_formula(scoring: ScoringFile) -> None:
    health = score_health(INACTIVE_DECLINING, AT, scoring.health)
    factor_survival = (1 - 0.35) * (1 - 0.30)
    expected = 1 - 0.95 * factor_survival * (1 - 0.5 * (100 - health.overall) / 100)
    prediction = baseline_prediction(INACTIVE_DECLINING, health, scoring.risk)
    assert prediction.probability == round(expected, 3)
    assert prediction.model_version == "baseline-0"
    assert prediction.probability_source == "model"


def test_baseline_confidence_is_capped_and_reflects_agreement(
    risk_policy: RiskPolicy, predict: Predict
) -> None:
    agreeing = [predict(c).confidence for c in (HEALTHY, INACTIVE_DECLINING, CRITICAL)]
    assert all(0.5 <= c <= 0.6 for c in agreeing)
    # No risk factor but poor health: the two signals disagree.
    no_factors = make_customer(
        usage={"days_since_last_login": 14, "features_used": 0, "actions_per_session": 0},
        engagement={"email_open_rate": 0.0, "webinars_attended_90d": 0},
        relationship={"nps": 2, "executive_engaged": False, "champion_status": "none"},
    )
    assert risk_factors(no_factors, risk_policy) == []
    assert predict(no_factors).confidence < min(agreeing)


def test_severity_value_is_probability_times_contract_value(predict: Predict) -> None:
    snapshot = make_customer(
        usage={"days_since_last_login": 21}, financial={"annual_contract_value": 12_345.67}
    )
    prediction = predict(snapshot)
    assert prediction.severity_value == round(prediction.probability * 12_345.67, 2)


def test_recommended_actions_follow_the_factors(predict: Predict) -> None:
    assert predict(HEALTHY).recommended_actions == []
    assert predict(CRITICAL).recommended_actions == [
        "executive_sponsor_outreach",
        "usage_review",
        "re_engagement",
        "billing_outreach",
        "support_escalation",
    ]


@pytest.mark.parametrize(
    ("probability", "days"), [(0.0, 180), (0.5, 90), (0.9, 18), (0.97, 7), (0.99, 7), (1.0, 7)]
)
def test_time_to_churn_heuristic_with_floor(probability: float, days: int) -> None:
    assert time_to_churn_days(probability) == days


def test_time_to_churn_of_a_prediction_uses_its_probability(predict: Predict) -> None:
    prediction = predict(CRITICAL)
    assert prediction.time_to_churn_days == time_to_churn_days(prediction.probability)


def test_upstream_probability_wins(scoring: ScoringFile) -> None:
    health = score_health(HEALTHY, AT, scoring.health)
    prediction = upstream_prediction(HEALTHY, health, scoring.risk, 0.83)
    assert prediction.probability == 0.83
    assert (prediction.probability_source, prediction.model_version) == ("upstream", "upstream")
    assert prediction.severity_value == round(0.83 * 24_000, 2)
    assert prediction.time_to_churn_days == time_to_churn_days(0.83)


def test_upstream_prediction_still_lists_risk_factors(
    risk_policy: RiskPolicy, scoring: ScoringFile, predict: Predict
) -> None:
    health = score_health(CRITICAL, AT, scoring.health)
    prediction = upstream_prediction(CRITICAL, health, scoring.risk, 0.2)
    assert prediction.probability == 0.2
    assert [f.name for f in prediction.risk_factors] == names(CRITICAL, risk_policy)
    assert prediction.recommended_actions == predict(CRITICAL).recommended_actions


def test_upstream_confidence_reflects_agreement_with_local_evidence(scoring: ScoringFile) -> None:
    health = score_health(CRITICAL, AT, scoring.health)
    baseline = baseline_prediction(CRITICAL, health, scoring.risk).probability
    agreeing = upstream_prediction(CRITICAL, health, scoring.risk, baseline).confidence
    disagreeing = upstream_prediction(CRITICAL, health, scoring.risk, 0.05).confidence
    assert agreeing == 0.9
    assert disagreeing < agreeing


@pytest.mark.parametrize("probability", [-0.01, 1.01, float("nan")])
def test_upstream_probability_out_of_range_is_refused(
    scoring: ScoringFile, probability: float
) -> None:
    health = score_health(HEALTHY, AT, scoring.health)
    with pytest.raises(InvalidInput, match="probability"):
        upstream_prediction(HEALTHY, health, scoring.risk, probability)


def test_baseline_drivers_are_its_own_terms_largest_first(
    predict: Callable[[CustomerSnapshot], ChurnPrediction],
) -> None:
    prediction = predict(make_customer(**ALL_FACTORS))

    contributions = [d.contribution for d in prediction.drivers]
    assert [d.feature for d in prediction.drivers][:2] == ["champion_risk", "usage_decline"]
    assert contributions == sorted(contributions, reverse=True)
    assert {d.feature for d in prediction.drivers} == {
        *(f.name for f in prediction.risk_factors),
        "health",
    }
    # bias (the 5% base hazard) plus the drivers give back the probability: nothing is left out
    hazard = -math.log(0.95) + sum(contributions)
    assert 1 - math.exp(-hazard) == pytest.approx(prediction.probability, abs=1e-3)


def test_an_upstream_probability_has_no_drivers_of_ours(scoring: ScoringFile) -> None:
    customer = make_customer(**ALL_FACTORS)
    health = score_health(customer, AT, scoring.health)

    assert upstream_prediction(customer, health, scoring.risk, 0.5).drivers == []


def test_a_policy_watching_one_metric_flags_a_batch() -> None:
    only = RiskPolicy.model_validate(
        {
            "factors": [
                {
                    "name": "payment_issues",
                    "metric": "payment_delays_90d",
                    "comparison": "above",
                    "threshold": 0,
                    "severity": "high",
                    "impact": 0.25,
                    "action": "billing_outreach",
                    "detail": "{value} late payments",
                }
            ]
        }
    )
    late, fine = make_customer(financial={"payment_delays_90d": 2}), make_customer()
    flags = RiskFlags.of([fine, late, fine], only)
    assert flags.fires.tolist() == [[False], [True], [False]]
    assert [factor.detail for _, factor in flags.fired(1)] == ["2 late payments"]
    assert flags.fired(0) == [] and RiskFlags.of([], only).fires.shape == (0, 1)
