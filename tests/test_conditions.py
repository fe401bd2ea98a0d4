"""The `when` language: parsed, refused with the place named, and evaluated by durable_rules."""

from __future__ import annotations

from typing import Any

import pytest

from retention.rulebook.cases import CASE_DEFAULTS
from retention.rulebook.conditions import AllOf, Compare, parse_condition
from retention.rulebook.engine import CompiledRuleset
from retention.rulebook.schema import FACT_KINDS

OK = "neither_starter_nor_sick"
CONDITIONS: dict[str, dict[str, Any]] = {
    "band": {"churn_probability": {"gt": 0.6, "lte": 0.8}},
    "big_segment": {"segment": {"in": ["enterprise", "strategic"]}},
    "not_smb": {"segment": {"not_in": ["smb"]}},
    "no_nps": {"nps": {"present": False}},
    "not_promoter": {"not": {"nps": {"gte": 9}}},
    "lost_or_fading": {
        "any": [
            {"champion_status": {"eq": "left"}},
            {"all": [{"days_since_last_login": {"gt": 14}}, {"usage_decline": {"gt": 0.3}}]},
        ]
    },
    OK: {"not": {"any": [{"plan": {"eq": "starter"}}, {"health_score": {"lt": 40}}]}},
}
ORDINARY = CASE_DEFAULTS  # an unremarkable customer


def compiled(name: str, conditions: dict[str, dict[str, Any]]) -> CompiledRuleset:
    """Conditions as a rule author writes them, registered with durable_rules as `name`."""
    return CompiledRuleset(
        name, {rule: parse_condition(raw, FACT_KINDS) for rule, raw in conditions.items()}
    )


@pytest.fixture(scope="module")
def ruleset() -> CompiledRuleset:
    return compiled("conditions_under_test", CONDITIONS)


@pytest.mark.parametrize(
    ("changes", "fired"),
    [
        ({}, {"not_smb", "not_promoter", OK}),
        ({"churn_probability": 0.8}, {"band", "not_smb", "not_promoter", OK}),
        ({"churn_probability": 0.6}, {"not_smb", "not_promoter", OK}),
        ({"segment": "strategic", "nps": 10}, {"big_segment", "not_smb", OK}),
        ({"segment": "smb", "nps": None}, {"no_nps", "not_promoter", OK}),
        ({"champion_status": "left"}, {"lost_or_fading", "not_smb", "not_promoter",
                                        OK}),
        ({"days_since_last_login": 20, "usage_decline": 0.5, "plan": "starter"},
         {"lost_or_fading", "not_smb", "not_promoter"}),
        ({"days_since_last_login": 20, "usage_decline": 0.2, "health_score": 30},
         {"not_smb", "not_promoter"}),
    ],
)  # fmt: skip
def test_conditions_fire_as_written(
    ruleset: CompiledRuleset, changes: dict[str, Any], fired: set[str]
) -> None:
    assert set(ruleset.fire(ORDINARY | changes)) == fired


def test_several_comparisons_mean_all_of_them() -> None:
    parsed = parse_condition({"churn_probability": {"gt": 0.6, "lte": 0.8}}, FACT_KINDS)
    assert parsed == AllOf(
        (Compare("churn_probability", "gt", 0.6), Compare("churn_probability", "lte", 0.8))
    )


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"churn_probabilty": {"gt": 0.5}}, "when.churn_probabilty: unknown fact"),
        ({"churn_probability": {"above": 0.5}}, "when.churn_probability.above: unknown comparison"),
        ({"churn_probability": {"gt": "high"}}, "when.churn_probability.gt: needs a number"),
        ({"segment": {"gt": "m"}}, "when.segment.gt: needs a number"),
        ({"segment": {"eq": 3}}, "when.segment.eq: needs text"),
        ({"segment": {"in": "enterprise"}}, "when.segment.in: expected a list"),
        ({"nps": {"present": "yes"}}, "when.nps.present: expected true or false"),
        ({"any": {"nps": {"gt": 1}}}, "when.any: expected a list of conditions"),
        ({"all": [{"nps": {"gt": 1}}, {"nope": {"gt": 1}}]}, "when.all[1].nope: unknown fact"),
        ({}, "when: expected a mapping"),
        ({"nps": 5}, "when.nps: expected comparisons"),
        (
            {"segment": {"contains": "enterprise"}},
            "when.segment.contains: segment is not a list; contains works on risk_factors, "
            "model_drivers, "
            "health_alerts, sentiment_alerts, emotions, expansion_opportunities, recent_events",
        ),
        ({"any": [{"risk_factors": {"eq": "inactive"}}]}, "when.any[0].risk_factors.eq: "
         "risk_factors is a list; use contains or excludes"),
        ({"not": {"health_alerts": {"present": True}}}, "when.not.health_alerts.present: "
         "health_alerts is a list"),
        ({"recent_events": {"excludes": ["login"]}}, "when.recent_events.excludes: needs one name"),
    ],
)  # fmt: skip
def test_bad_conditions_name_the_place(raw: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message.replace("[", r"\[").replace("]", r"\]")):
        parse_condition(raw, FACT_KINDS)


def test_health_and_prediction_facts_are_there_to_use() -> None:
    rules = {
        "declining_champion_loss": {
            "health_trend": {"eq": "declining"},
            "top_risk_factor": {"in": ["champion_risk"]},
        },
        "nothing_wrong": {"top_risk_factor": {"present": False}},
        "weak_product_use": {"product_usage_score": {"lt": 40}, "time_to_churn_days": {"lte": 30}},
    }
    ruleset = compiled("prediction_facts_under_test", rules)
    worrying = {
        "health_trend": "declining",
        "top_risk_factor": "champion_risk",
        "product_usage_score": 22.0,
        "time_to_churn_days": 19,
    }

    assert set(ruleset.fire(CASE_DEFAULTS)) == {"nothing_wrong"}
    assert set(ruleset.fire(CASE_DEFAULTS | worrying)) == {
        "declining_champion_loss",
        "weak_product_use",
    }


LIST_CONDITIONS: dict[str, dict[str, Any]] = {
    "champion_at_risk": {"risk_factors": {"contains": "champion_risk"}},
    "silent": {"recent_events": {"excludes": "login"}},
    "usage_fine": {"not": {"health_alerts": {"contains": "usage_low"}}},
    "gone_quiet": {
        "any": [
            {
                "all": [
                    {"risk_factors": {"contains": "inactive"}},
                    {"not": {"recent_events": {"contains": "login"}}},
                ]
            },
            {"not": {"health_alerts": {"excludes": "champion_left"}}},
        ]
    },
}


@pytest.fixture(scope="module")
def list_ruleset() -> CompiledRuleset:
    return compiled("list_conditions_under_test", LIST_CONDITIONS)


@pytest.mark.parametrize(
    ("changes", "fired"),
    [
        ({}, {"silent", "usage_fine"}),
        ({"risk_factors": ["inactive", "champion_risk"]},
         {"champion_at_risk", "silent", "usage_fine", "gone_quiet"}),
        ({"risk_factors": ["inactive"], "recent_events": ["email_opened", "login"]},
         {"usage_fine"}),
        ({"health_alerts": ["usage_low"], "recent_events": ["login"]}, set()),
        ({"health_alerts": ["declining_trend", "champion_left"], "recent_events": ["login"]},
         {"usage_fine", "gone_quiet"}),
        ({"risk_factors": ["champion_risk_2"]}, {"silent", "usage_fine"}),  # whole names only
    ],
)  # fmt: skip
def test_list_facts_contain_exclude_and_not_contain(
    list_ruleset: CompiledRuleset, changes: dict[str, Any], fired: set[str]
) -> None:
    assert set(list_ruleset.fire(ORDINARY | changes)) == fired


SIGNALS = {
    "souring": {
        "sentiment_alerts": {"contains": "persistent_negative"},
        "sentiment_recent": {"lt": -0.3},
    },
    "model_blames_health": {"top_driver": {"eq": "health"},
                            "model_drivers": {"excludes": "inactive"}},
    "worth_growing": {"expansion_opportunities": {"contains": "user_expansion"},
                      "expansion_value": {"gte": 5000}},
}  # fmt: skip


@pytest.mark.parametrize(
    ("changes", "fired"),
    [
        ({}, {"model_blames_health"}),
        ({"sentiment_alerts": ["persistent_negative"], "sentiment_recent": -0.6},
         {"souring", "model_blames_health"}),
        ({"sentiment_alerts": ["persistent_negative"], "sentiment_recent": None},
         {"model_blames_health"}),
        ({"model_drivers": ["health", "inactive"]}, set()),
        ({"top_driver": "inactive", "model_drivers": ["inactive"]}, set()),
        ({"expansion_opportunities": ["user_expansion"], "expansion_value": 7500.0},
         {"worth_growing", "model_blames_health"}),
        ({"expansion_opportunities": ["api_expansion"], "expansion_value": 7500.0},
         {"model_blames_health"}),
    ],
)  # fmt: skip
def test_sentiment_model_and_expansion_facts_fire_as_written(
    changes: dict[str, Any], fired: set[str]
) -> None:
    ruleset = compiled("signals_under_test", SIGNALS)

    assert set(ruleset.fire(ORDINARY | changes)) == fired
