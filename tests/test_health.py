"""Health score under the shipped rules/scoring.yaml: the seed's usage score and weights, and
the documented category formulas."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime

import pytest
from factories import make_customer
from pydantic import ValidationError

from retention.scoring.health import HealthCategory, HealthPolicy, health_status, score_health

AT = datetime(2025, 3, 1, 9, 30, tzinfo=UTC)
USAGE_ONLY: dict[HealthCategory, float] = {
    "product_usage": 1.0,
    "engagement": 0.0,
    "support": 0.0,
    "financial": 0.0,
    "relationship": 0.0,
}


def with_weights(policy: HealthPolicy, weights: Mapping[str, float]) -> HealthPolicy:
    """The policy with other weights, validated as a rule file's would be."""
    return HealthPolicy.model_validate({**policy.model_dump(), "weights": weights})


def usage_score(policy: HealthPolicy, **usage: float) -> float:
    snapshot = make_customer(usage=usage)
    return score_health(snapshot, AT, policy).categories["product_usage"]


@pytest.mark.parametrize(
    ("days", "points"),
    [(0, 40), (1, 40), (2, 30), (7, 30), (8, 20), (14, 20), (15, 10), (30, 10), (31, 0), (400, 0)],
)
def test_login_recency_points_at_each_boundary(
    health_policy: HealthPolicy, days: int, points: float
) -> None:
    score = usage_score(
        health_policy, days_since_last_login=days, features_used=0, actions_per_session=0
    )
    assert score == points


@pytest.mark.parametrize(("features_used", "adoption"), [(0, 0), (5, 15), (10, 30)])
def test_adoption_is_share_of_features_times_30(
    health_policy: HealthPolicy, features_used: int, adoption: float
) -> None:
    score = usage_score(
        health_policy,
        days_since_last_login=31,
        features_used=features_used,
        total_features=10,
        actions_per_session=0,
    )
    assert score == adoption


@pytest.mark.parametrize(
    ("actions", "depth"), [(0, 0), (10, 15), (19, 28.5), (20, 30), (21, 30), (200, 30)]
)
def test_depth_is_capped_at_20_actions_per_session(
    health_policy: HealthPolicy, actions: float, depth: float
) -> None:
    score = usage_score(
        health_policy, days_since_last_login=31, features_used=0, actions_per_session=actions
    )
    assert score == depth


def test_usage_score_adds_recency_adoption_and_depth(health_policy: HealthPolicy) -> None:
    score = usage_score(
        health_policy,
        days_since_last_login=3,
        features_used=3,
        total_features=4,
        actions_per_session=5,
    )
    assert score == 30 + 22.5 + 7.5


def test_shipped_weights_are_the_seed_weights(health_policy: HealthPolicy) -> None:
    assert health_policy.weights.model_dump() == {
        "product_usage": 0.25,
        "engagement": 0.20,
        "support": 0.15,
        "financial": 0.20,
        "relationship": 0.20,
    }


def test_default_customer_category_scores(health_policy: HealthPolicy) -> None:
    health = score_health(make_customer(), AT, health_policy)
    assert health.categories == {
        "product_usage": 86.5,  # 40 + 8/10 x 30 + 15/20 x 30
        "engagement": 43.3,  # 0.5 x 50 + 1/3 x 25 + 2/5 x 25
        "support": 81.8,  # 0.9 x 40 + 0.65 x 30 + 3.5/4 x 30
        "financial": 69.6,  # 60 + 24000/50000 x 20 + 0
        "relationship": 90.0,  # 8/10 x 50 + 20 + 30
    }


def test_overall_is_the_weighted_sum_rounded_to_one_decimal(health_policy: HealthPolicy) -> None:
    health = score_health(make_customer(), AT, health_policy)
    expected = 86.5 * 0.25 + 43.3 * 0.20 + 81.8 * 0.15 + 69.6 * 0.20 + 90.0 * 0.20
    assert expected == pytest.approx(74.475)
    assert health.overall == 74.5


def test_custom_weights_change_the_overall(health_policy: HealthPolicy) -> None:
    health = score_health(make_customer(), AT, with_weights(health_policy, USAGE_ONLY))
    assert health.overall == health.categories["product_usage"] == 86.5


SEED_WEIGHTS = {
    "product_usage": 0.25,
    "engagement": 0.20,
    "support": 0.15,
    "financial": 0.20,
    "relationship": 0.20,
}


@pytest.mark.parametrize(
    ("weights", "named"),
    [
        ({k: v for k, v in SEED_WEIGHTS.items() if k != "support"}, "weights.support"),
        ({**SEED_WEIGHTS, "support": -0.15, "financial": 0.5}, "weights.support"),
        ({**SEED_WEIGHTS, "engagement": float("nan")}, "weights.engagement"),
        ({**SEED_WEIGHTS, "relationship": 0.3}, "the weights must add up to 1"),
        ({"sentiment": 0.0, **SEED_WEIGHTS}, "weights.sentiment"),
    ],
)
def test_invalid_weights_are_refused_naming_the_weight(
    health_policy: HealthPolicy, weights: Mapping[str, float], named: str
) -> None:
    with pytest.raises(ValidationError, match=named.replace(".", r"\.")):
        with_weights(health_policy, weights)


def test_weights_within_tolerance_of_one_are_accepted(health_policy: HealthPolicy) -> None:
    policy = with_weights(health_policy, {**SEED_WEIGHTS, "support": 0.15 + 5e-7})
    assert score_health(make_customer(), AT, policy).overall == 74.5


def overall_40_with_history(policy: HealthPolicy, history: list[float]) -> str:
    # Usage-only weights and 40 login points give an overall of exactly 40.
    snapshot = make_customer(
        usage={"days_since_last_login": 0, "features_used": 0, "actions_per_session": 0},
        health_history=history,
    )
    health = score_health(snapshot, AT, with_weights(policy, USAGE_ONLY))
    assert health.overall == 40
    return health.trend


@pytest.mark.parametrize(
    ("history", "trend"),
    [
        ([], "stable"),
        ([35.0], "stable"),
        ([34.9], "improving"),
        ([45.0], "stable"),
        ([45.1], "declining"),
        ([30.0, 40.0, 50.0], "stable"),
        ([90.0, 20.0, 20.0, 20.0], "improving"),  # only the last 3 count
        ([0.0, 60.0, 60.0, 60.0], "declining"),
    ],
)
def test_trend_against_mean_of_last_three_scores(
    health_policy: HealthPolicy, history: list[float], trend: str
) -> None:
    assert overall_40_with_history(health_policy, history) == trend


@pytest.mark.parametrize(
    ("overall", "status"),
    [(100, "healthy"), (70, "healthy"), (69.9, "at_risk"), (40, "at_risk"), (39.9, "critical")],
)
def test_status_thresholds(health_policy: HealthPolicy, overall: float, status: str) -> None:
    assert health_status(overall, health_policy.status) == status


def test_healthy_customer_has_no_alerts_and_is_stamped(health_policy: HealthPolicy) -> None:
    health = score_health(make_customer(), AT, health_policy)
    assert (health.status, health.trend, health.alerts) == ("healthy", "stable", [])
    assert health.scored_at == AT


@pytest.mark.parametrize(
    ("overrides", "alert"),
    [
        ({"usage": {"days_since_last_login": 31, "features_used": 1}}, "usage_low"),
        ({"health_history": [95.0]}, "declining_trend"),
        ({"relationship": {"champion_status": "left"}}, "champion_left"),
        ({"financial": {"payment_delays_90d": 1}}, "payment_delays"),
        ({"support": {"avg_ticket_sentiment": -0.51}}, "negative_support_sentiment"),
    ],
)
def test_each_alert(health_policy: HealthPolicy, overrides: dict[str, object], alert: str) -> None:
    assert score_health(make_customer(**overrides), AT, health_policy).alerts == [alert]


def test_alert_edges_do_not_fire(health_policy: HealthPolicy) -> None:
    snapshot = make_customer(
        usage={"days_since_last_login": 0, "features_used": 0, "actions_per_session": 0},
        support={"avg_ticket_sentiment": -0.5},
        relationship={"champion_status": "at_risk"},
    )
    health = score_health(snapshot, AT, health_policy)
    assert health.categories["product_usage"] == 40.0
    assert health.alerts == []


BEST = {
    "usage": {"days_since_last_login": 0, "features_used": 10, "actions_per_session": 50},
    "engagement": {
        "email_open_rate": 1.0,
        "webinars_attended_90d": 9,
        "resources_downloaded_90d": 9,
    },
    "support": {"tickets_90d": 0, "avg_ticket_sentiment": 1.0, "satisfaction": 5},
    "financial": {"annual_contract_value": 90_000, "expansion_revenue": 20_000},
    "relationship": {"nps": 10, "executive_engaged": True, "champion_status": "active"},
}
WORST = {
    "usage": {"days_since_last_login": 90, "features_used": 0, "actions_per_session": 0},
    "engagement": {
        "email_open_rate": 0.0,
        "webinars_attended_90d": 0,
        "resources_downloaded_90d": 0,
    },
    "support": {"tickets_90d": 25, "avg_ticket_sentiment": -1.0, "satisfaction": 1},
    "financial": {
        "annual_contract_value": 0,
        "payment_delays_90d": 5,
        "expansion_revenue": 0,
    },
    "relationship": {"nps": 0, "executive_engaged": False, "champion_status": "left"},
}


def test_categories_are_bounded_0_to_100(health_policy: HealthPolicy) -> None:
    best = score_health(make_customer(**BEST), AT, health_policy)
    worst = score_health(make_customer(**WORST), AT, health_policy)
    assert set(best.categories.values()) == {100.0}
    assert set(worst.categories.values()) == {0.0}
    assert (best.overall, best.status) == (100.0, "healthy")
    assert (worst.overall, worst.status) == (0.0, "critical")


@pytest.mark.parametrize(
    ("category", "better", "worse"),
    [
        ("engagement", {"engagement": {"email_open_rate": 0.6}}, {}),
        ("engagement", {"engagement": {"webinars_attended_90d": 2}}, {}),
        ("engagement", {"engagement": {"resources_downloaded_90d": 4}}, {}),
        ("support", {}, {"support": {"tickets_90d": 4}}),
        ("support", {}, {"support": {"avg_ticket_sentiment": -0.2}}),
        ("support", {}, {"support": {"satisfaction": 2}}),
        ("support", {"support": {"satisfaction": 3.5}}, {"support": {"satisfaction": None}}),
        ("financial", {}, {"financial": {"payment_delays_90d": 1}}),
        ("financial", {"financial": {"annual_contract_value": 40_000}}, {}),
        ("financial", {"financial": {"expansion_revenue": 5_000}}, {}),
        ("relationship", {"relationship": {"nps": 9}}, {}),
        ("relationship", {}, {"relationship": {"nps": None}}),
        ("relationship", {}, {"relationship": {"executive_engaged": False}}),
        ("relationship", {}, {"relationship": {"champion_status": "at_risk"}}),
        (
            "relationship",
            {"relationship": {"champion_status": "none"}},
            {"relationship": {"champion_status": "left"}},
        ),
    ],
)
def test_categories_move_in_the_obvious_direction(
    health_policy: HealthPolicy,
    category: HealthCategory,
    better: dict[str, object],
    worse: dict[str, object],
) -> None:
    high = score_health(make_customer(**better), AT, health_policy).categories[category]
    low = score_health(make_customer(**worse), AT, health_policy).categories[category]
    assert high > low
