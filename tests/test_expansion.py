"""Expansion: each signal at and either side of its line, values, priority, the rule file."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from factories import make_customer, refused_at, replace_once
from pydantic import ValidationError

from retention.customer import CustomerSnapshot
from retention.errors import RulebookError
from retention.rulebook.loader import load_rulebook, load_yaml_model
from retention.scoring.expansion import (
    ExpansionOpportunity,
    ExpansionPolicy,
    expansion_opportunities,
)
from retention.scoring.sentiment import read_sentiment

ROOT = Path(__file__).resolve().parent.parent
RULES = ROOT / "rules"
CONTRACT = 24_000.0  # the factory customer's annual contract value


@pytest.fixture(scope="module")
def policy() -> ExpansionPolicy:
    return load_yaml_model(RULES / "expansion.yaml", ExpansionPolicy)


def customer(**usage: Any) -> CustomerSnapshot:
    """The factory customer (20 of 50 seats, 15 actions per session: no signal) with `usage`."""
    return make_customer(usage=usage)


def found(snapshot: CustomerSnapshot, policy: ExpansionPolicy) -> dict[str, ExpansionOpportunity]:
    return {o.type: o for o in expansion_opportunities(snapshot, policy)}


def test_an_ordinary_customer_has_no_opportunity(policy: ExpansionPolicy) -> None:
    assert expansion_opportunities(customer(), policy) == []


@pytest.mark.parametrize(("active", "fires"), [(40, False), (41, True), (39, False)])
def test_user_expansion_above_80_percent_of_seats(
    policy: ExpansionPolicy, active: int, fires: bool
) -> None:
    assert ("user_expansion" in found(customer(active_users=active), policy)) is fires


def test_user_expansion_values_the_seats_that_bring_usage_to_70_percent(
    policy: ExpansionPolicy,
) -> None:
    opportunity = found(customer(active_users=41), policy)["user_expansion"]
    # ceil(41 / 0.7) = 59 seats, 9 more than 50, at 24,000 / 50 = 480 a seat.
    assert opportunity.estimated_value == 9 * 480
    assert (opportunity.probability, opportunity.timing) == (0.75, "immediate")
    assert opportunity.expected_value == 9 * 480 * 0.75
    assert "41 of 50 seats" in opportunity.trigger and "9 more" in opportunity.trigger


# (signal, used field, limit field, limit, at the line, expected value, probability, timing)
METERED = [
    ("storage_expansion", "storage_used_gb", "storage_limit_gb", 100, 90, 2_400, 0.85, "urgent"),
    (
        "api_expansion",
        "api_calls_month",
        "api_limit_month",
        10_000,
        7_000,
        3_600,
        0.65,
        "next_renewal",
    ),
]


@pytest.mark.parametrize(("step", "fires"), [(0, False), (1, True), (-1, False)])
@pytest.mark.parametrize(
    ("kind", "used", "limit", "size", "line", "value", "probability", "timing"), METERED
)
def test_metered_limits_storage_above_90_and_api_above_70_percent(
    policy: ExpansionPolicy,
    step: int,
    fires: bool,
    kind: str,
    used: str,
    limit: str,
    size: int,
    line: int,
    value: float,
    probability: float,
    timing: str,
) -> None:
    opportunities = found(customer(**{used: line + step * size / 1000, limit: size}), policy)
    assert list(opportunities) == ([kind] if fires else [])
    if fires:
        opportunity = opportunities[kind]
        assert (opportunity.estimated_value, opportunity.probability) == (value, probability)
        assert (opportunity.expected_value, opportunity.timing) == (value * probability, timing)


def test_a_trigger_says_what_fired_with_the_numbers(policy: ExpansionPolicy) -> None:
    snapshot = customer(storage_used_gb=90.1, storage_limit_gb=100)
    trigger = found(snapshot, policy)["storage_expansion"].trigger
    assert trigger == "90.1 of 100 GB storage used (90.1% > 90%)"
    snapshot = customer(api_calls_month=1_234_567, api_limit_month=1_500_000)
    trigger = found(snapshot, policy)["api_expansion"].trigger
    assert trigger == "1,234,567 of 1,500,000 API calls this month (82.3% > 70%)"


@pytest.mark.parametrize(
    ("actions", "advanced", "fires"),
    [(20.0, 0, True), (19.9, 0, False), (35.0, 1, False), (20.1, 0, True)],
)
def test_feature_upgrade_on_heavy_basic_usage(
    policy: ExpansionPolicy, actions: float, advanced: int, fires: bool
) -> None:
    snapshot = customer(actions_per_session=actions, advanced_features_used=advanced)
    opportunities = found(snapshot, policy)
    assert ("feature_upgrade" in opportunities) is fires
    if fires:
        opportunity = opportunities["feature_upgrade"]
        assert opportunity.estimated_value == CONTRACT * 0.5
        assert opportunity.expected_value == CONTRACT * 0.5 * 0.6
        assert (opportunity.probability, opportunity.timing) == (0.60, "next_qbr")


@pytest.mark.parametrize(
    ("history", "now", "fires"),
    [
        ([8_000, 8_400, 8_820], 9_261, True),  # exactly +5% three periods running
        ([8_000, 8_400, 8_820], 9_260, False),  # the last period just short
        ([8_000, 8_399, 8_820], 9_261, False),  # the first period just short
        ([10, 8_000, 8_400, 8_820], 9_261, True),  # only the last 3 periods count
        ([8_400, 8_820], 9_261, False),  # 2 periods are not enough history
        ([0, 8_400, 8_820], 9_261, False),  # growth from 0 is not a rate
    ],
)
def test_tier_upgrade_on_consistent_growth(
    policy: ExpansionPolicy, history: list[int], now: int, fires: bool
) -> None:
    snapshot = customer(active_users_history=history, active_users=now, max_users=0)
    opportunities = found(snapshot, policy)
    assert list(opportunities) == (["tier_upgrade"] if fires else [])
    if fires:
        opportunity = opportunities["tier_upgrade"]
        assert (opportunity.estimated_value, opportunity.expected_value) == (6_000, 4_200)
        assert (opportunity.probability, opportunity.timing) == (0.70, "proactive")


@pytest.mark.parametrize(
    "usage",
    [
        {"active_users": 500, "max_users": 0},
        {"storage_used_gb": 500.0, "storage_limit_gb": 0},
        {"api_calls_month": 10**9, "api_limit_month": 0},
    ],
)
def test_a_limit_of_0_never_fires(policy: ExpansionPolicy, usage: dict[str, Any]) -> None:
    assert expansion_opportunities(customer(**usage), policy) == []


def test_opportunities_come_highest_expected_value_first(policy: ExpansionPolicy) -> None:
    snapshot = customer(
        active_users=41,  # 3,240
        storage_used_gb=95.0,
        storage_limit_gb=100,  # 2,040
        api_calls_month=9_000,
        api_limit_month=10_000,  # 2,340
        actions_per_session=25.0,  # 7,200
    )
    ranked = expansion_opportunities(snapshot, policy)
    assert [o.type for o in ranked] == [
        "feature_upgrade",
        "user_expansion",
        "api_expansion",
        "storage_expansion",
    ]


def test_a_tie_keeps_the_file_order(policy: ExpansionPolicy) -> None:
    same = {"contract_share": 0.1, "probability": 0.5, "timing": "urgent"}
    tied = policy.model_copy(
        update={
            "storage_expansion": policy.storage_expansion.model_copy(update=same),
            "api_expansion": policy.api_expansion.model_copy(update=same),
        }
    )
    snapshot = customer(
        storage_used_gb=95.0, storage_limit_gb=100, api_calls_month=9_000, api_limit_month=10_000
    )
    ranked = expansion_opportunities(snapshot, tied)
    assert [o.type for o in ranked] == ["storage_expansion", "api_expansion"]
    assert ranked[0].expected_value == ranked[1].expected_value


# ---- the snapshot --------------------------------------------------------------------------


def test_every_example_customer_is_still_valid(policy: ExpansionPolicy) -> None:
    rulebook = load_rulebook(RULES)
    for path in sorted((ROOT / "examples" / "customers").glob("*.json")):
        snapshot = CustomerSnapshot.model_validate(json.loads(path.read_text()))
        expansion_opportunities(snapshot, rulebook.expansion)
        read_sentiment(snapshot, rulebook.sentiment)


@pytest.mark.parametrize(
    "usage",
    [
        {"advanced_features_used": 9},  # more than the 8 features used
        {"active_users_history": [10, -1]},
        {"storage_used_gb": -1},
        {"api_limit_month": "lots"},
    ],
)
def test_bad_usage_figures_are_refused(usage: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        customer(**usage)


# ---- the rule file -------------------------------------------------------------------------


def test_the_shipped_rule_file_loads() -> None:
    policy = load_rulebook(RULES).expansion
    assert (policy.user_expansion.above, policy.user_expansion.probability) == (0.8, 0.75)
    assert (policy.storage_expansion.above, policy.storage_expansion.timing) == (0.9, "urgent")
    assert (policy.api_expansion.above, policy.api_expansion.probability) == (0.7, 0.65)
    assert policy.feature_upgrade.contract_share == 0.5
    assert (policy.tier_upgrade.probability, policy.tier_upgrade.timing) == (0.70, "proactive")


def test_the_file_order_is_the_policy_order() -> None:
    keys = list(yaml.safe_load((RULES / "expansion.yaml").read_text()))
    assert keys == list(ExpansionPolicy.model_fields)


@pytest.mark.parametrize(
    ("old", "new", "at", "refusal"),
    [
        ("above: 0.8", "above: high", "above: high", "user_expansion.above: .*number"),
        (
            "timing: urgent",
            "timing: urgent\n  price: 10",
            "price: 10",
            "storage_expansion.price: Extra",
        ),
        ("periods: 3", "periods: 0", "periods: 0", "tier_upgrade.periods: .*greater"),
        (
            "target_ratio: 0.7",
            "target_ratio: 0.9",
            "target_ratio: 0.9",
            "user_expansion.target_ratio",
        ),
        ("probability: 0.60", "probability: 60", "60", "feature_upgrade.probability: .*less"),
        ("timing: next_qbr", "timing: next QBR", "next QBR", "feature_upgrade.timing: .*pattern"),
    ],
)
def test_a_broken_expansion_file_names_file_line_and_column(
    rules_copy: Path, old: str, new: str, at: str, refusal: str
) -> None:
    path = rules_copy / "expansion.yaml"
    replace_once(path, old, new)
    with pytest.raises(RulebookError, match=refused_at(path, at) + refusal):
        load_rulebook(rules_copy)


def test_a_missing_expansion_file_is_refused(rules_copy: Path) -> None:
    (rules_copy / "expansion.yaml").unlink()
    with pytest.raises(RulebookError, match=r"expansion\.yaml: cannot read rule file"):
        load_rulebook(rules_copy)
