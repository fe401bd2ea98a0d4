"""Beyond the strategy: offers, campaigns and the holdout, and the rule files' refusals."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest
from factories import case_facts, refused_at, replace_once

from retention.errors import RulebookError
from retention.rulebook.decide import decide
from retention.rulebook.holdout import in_holdout
from retention.rulebook.loader import Rulebook, load_rulebook
from retention.rulebook.offers import make_offer
from retention.rulebook.schema import Holdout, Offer

RULES = Path(__file__).resolve().parent.parent / "rules"


@pytest.fixture(scope="module")
def rulebook() -> Rulebook:
    return load_rulebook(RULES)


# ---- offers ------------------------------------------------------------------------------------


def offer_rule(value: dict[str, Any], expiry: dict[str, Any] | None = None) -> Offer:
    return Offer.model_validate(
        {
            "name": "test_offer",
            "when": {"churn_probability": {"gte": 0}},
            "type": "discount",
            "value": value,
            "duration_months": 12,
            "expiry": expiry or {"share_of_time_to_churn": 0.5, "min_days": 7, "max_days": 21},
        }
    )


@pytest.mark.parametrize(
    ("value", "contract", "probability", "expected"),
    [
        ({"share_of_contract": 0.2, "round_to": 50}, 36_000, 0.83, 6_000),  # 5,976
        ({"share_of_contract": 0.2, "scale_by_probability": False, "round_to": 50}, 12_625, 0.9,
         2_550),  # 2,525 is half way: up, not to the even 2,500
        ({"share_of_contract": 0.15, "minimum": 2_000, "round_to": 100}, 12_000, 0.9, 2_000),
        ({"share_of_contract": 0.15, "maximum": 30_000, "round_to": 100}, 400_000, 0.85, 30_000),
        ({"share_of_contract": 0.0834, "scale_by_probability": False}, 9_999, 0.9, 830),
        ({"share_of_contract": 0.1, "minimum": 50}, 0, 0.9, 50),
    ],
)  # fmt: skip
def test_offer_value(
    value: dict[str, Any], contract: float, probability: float, expected: float
) -> None:
    facts = case_facts(annual_contract_value=contract, churn_probability=probability)
    offer = make_offer(offer_rule(value), facts)
    assert offer.value == expected
    assert offer.percent_of_contract == (round(expected / contract * 100, 2) if contract else 0)


@pytest.mark.parametrize(
    ("time_to_churn", "days"),
    [(None, 21), (4, 7), (13, 7), (15, 8), (17, 9), (20, 10), (42, 21), (400, 21)],
)
def test_offer_expiry_is_half_the_time_to_churn_within_bounds(
    time_to_churn: int | None, days: int
) -> None:
    facts = case_facts(time_to_churn_days=time_to_churn)
    assert make_offer(offer_rule({"share_of_contract": 0.1}), facts).expires_in_days == days


def test_offer_bounds_must_be_in_order() -> None:
    with pytest.raises(ValueError, match="minimum cannot be more than maximum"):
        offer_rule({"share_of_contract": 0.1, "minimum": 500, "maximum": 100})
    with pytest.raises(ValueError, match="min_days cannot be more than max_days"):
        offer_rule(
            {"share_of_contract": 0.1},
            {"share_of_time_to_churn": 0.5, "min_days": 30, "max_days": 7},
        )


def test_the_first_matching_offer_is_made_and_only_with_a_retention_offer_step(
    rulebook: Rulebook,
) -> None:
    enterprise = {"segment": "enterprise", "annual_contract_value": 50_000.0}  # matches all three
    critical = decide(rulebook, case_facts(churn_probability=0.9, **enterprise))
    assert critical.offer is not None
    assert (critical.offer.name, critical.offer.type) == (
        "enterprise_services_credit",
        "services_credit",
    )
    assert critical.offer.conditions[0] == "renew for at least 12 months"
    assert [r for r in critical.fired_rules if r.startswith("offer:")] == [
        "offer:enterprise_services_credit"
    ]
    nurture = decide(rulebook, case_facts(churn_probability=0.5, **enterprise))
    assert nurture.offer is None and not any(r.startswith("offer:") for r in nurture.fired_rules)


# ---- holdout -----------------------------------------------------------------------------------

HOLDOUT = Holdout(share=0.1, salt="holdout-2026")
IDS = [f"customer-{n:05d}" for n in range(20_000)]


def test_holdout_is_deterministic() -> None:
    again = Holdout(share=0.1, salt="holdout-2026")
    assert [in_holdout(i, HOLDOUT) for i in IDS[:500]] == [in_holdout(i, again) for i in IDS[:500]]


def test_holdout_share_is_within_five_sigma_over_20000_ids() -> None:
    held = sum(in_holdout(i, HOLDOUT) for i in IDS)
    sigma = math.sqrt(len(IDS) * 0.1 * 0.9)  # binomial: about 42 customers
    assert abs(held - 0.1 * len(IDS)) < 5 * sigma


def test_a_new_salt_draws_a_new_group() -> None:
    old = {i for i in IDS if in_holdout(i, HOLDOUT)}
    new = {i for i in IDS if in_holdout(i, Holdout(share=0.1, salt="holdout-2027"))}
    assert abs(len(new) - len(old)) < 5 * math.sqrt(len(IDS) * 0.1 * 0.9)
    assert len(old & new) < 0.2 * len(old)  # independent draws share about 10% of the group


def test_holdout_only_for_eligible_customers(rulebook: Rulebook) -> None:
    holdout = rulebook.journey.holdout
    assert holdout is not None
    inside = next(i for i in IDS if in_holdout(i, holdout))
    outside = next(i for i in IDS if not in_holdout(i, holdout))

    held = decide(rulebook, case_facts(customer_id=inside, churn_probability=0.9))
    assert held.holdout and held.fired_rules[-1] == "holdout"
    assert held.strategy == "critical_save" and held.offer is not None  # decided and recorded
    assert not decide(rulebook, case_facts(customer_id=outside, churn_probability=0.9)).holdout
    below = decide(rulebook, case_facts(customer_id=inside, churn_probability=0.4))
    assert not below.holdout and "holdout" not in below.fired_rules


def test_a_holdout_without_eligible_takes_everyone(rules_copy: Path) -> None:
    replace_once(rules_copy / "journey.yaml", "  eligible: {churn_probability: {gt: 0.4}}\n", "")
    rulebook = load_rulebook(rules_copy)
    assert rulebook.journey.holdout is not None
    inside = next(i for i in IDS if in_holdout(i, rulebook.journey.holdout))
    assert decide(rulebook, case_facts(customer_id=inside, churn_probability=0.1)).holdout


# ---- campaigns ---------------------------------------------------------------------------------

RE_ENGAGEMENT = [
    (0, "re_engagement_away", "We've noticed you've been away", "Show me what I missed"),
    (72, "re_engagement_new_feature", "New since your last visit", "Try it now"),
    (168, "re_engagement_peer_story", "How a team like yours gets more out of it",
     "Read their story"),
    (336, "re_engagement_checkin", "Can we help? 15 minutes with your CSM", "Book 15 minutes"),
]  # fmt: skip


def test_campaign_messages_join_the_plan_in_time_order(rulebook: Rulebook) -> None:
    facts = case_facts(
        churn_probability=0.9,
        days_since_last_login=20,
        feature_adoption=0.1,
        onboarding_progress=30,
    )
    decision = decide(rulebook, facts)
    steps = decision.plan.steps

    assert decision.campaigns == ["re_engagement", "onboarding_continuation", "feature_adoption"]
    assert decision.fired_rules[2:5] == [f"campaign:{c}" for c in decision.campaigns]
    assert [
        (s.at_hours, s.template, s.subject, s.cta) for s in steps if s.campaign == "re_engagement"
    ] == RE_ENGAGEMENT
    immediate = [s.action for s in steps if s.at_hours == 0]
    assert immediate == [
        "executive_call",
        "retention_offer",
        "re_engagement_away",
        "onboarding_next_step",
    ]  # ties keep file order: the strategy, then campaigns in file order
    assert [s.at_hours for s in steps] == sorted(s.at_hours for s in steps)
    assert len({s.step_id for s in steps}) == len(steps)
    away = steps[2]
    assert away.step_id == "g1-03-re_engagement_away"
    assert (away.source, away.channel, away.fallback_channel, away.owner) == (
        "campaign:re_engagement",
        "email",
        "in_app",
        "automated",
    )
    assert away.success_criteria == "three logins within a week"
    assert all(s.subject is None and s.cta is None for s in steps if s.campaign is None)


def test_campaign_exits_and_event_campaigns_are_in_the_policy(rulebook: Rulebook) -> None:
    policy = decide(rulebook, case_facts()).policy
    login = policy.campaign_exits["re_engagement"][0]
    assert (login.event, login.at_least, login.within_hours, login.reason) == (
        "login",
        3,
        168,
        "high_activity_resumed",
    )
    assert set(policy.campaign_exits) == {c.name for c in rulebook.campaigns}
    (milestone,) = policy.event_campaigns
    assert milestone.name == "success_milestone"
    assert [s.step_id for s in milestone.steps] == [
        "success_milestone-01-milestone_congratulations"
    ]
    assert milestone.steps[0].cta == "See what's next"
    assert milestone.matches("milestone_reached", {"milestone": "roi_achieved"})
    assert not milestone.matches("milestone_reached", {"milestone": "first_login"})
    assert not milestone.matches("feature_used", {"milestone": "roi_achieved"})


def test_a_rule_set_without_offers_and_campaigns_has_none(rules_copy: Path) -> None:
    (rules_copy / "offers.yaml").unlink()
    (rules_copy / "campaigns.yaml").unlink()
    rulebook = load_rulebook(rules_copy)
    assert rulebook.offers.offers == [] and rulebook.offers.attach_to == []
    assert rulebook.campaigns == []

    decision = decide(rulebook, case_facts(churn_probability=0.9, days_since_last_login=20))
    assert decision.strategy == "critical_save"
    assert decision.offer is None and decision.campaigns == []
    assert decision.policy.campaign_exits == {} and decision.policy.event_campaigns == []


# ---- refusals: file:line:column ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("file", "old", "new", "message"),
    [
        ("campaigns.yaml", "{event: replied, reason: replied}", "{event: reply, reason: replied}",
         "'reply' is not a customer event"),
        ("campaigns.yaml", "event: milestone_reached", "event: milestone",
         "'milestone' is not a customer event"),
        ("campaigns.yaml", "- name: advocacy", "- name: re_engagement  # twin",
         "campaign 're_engagement' is defined twice"),
        ("offers.yaml", "attach_to: [retention_offer]", "attach_to: [retention_offer, gift_box]",
         "no strategy or timeline plans 'gift_box', so no offer would ever be made"),
        ("campaigns.yaml", "{onboarding_progress: {lt: 100}}",
         "{onboarding_progress: {contains: done}}  # list op",
         "onboarding_progress is not a list"),
        ("offers.yaml", "{annual_contract_value: {gte: 10000}}",
         "{annual_contract_value: {gte: 10000}, health_alerts: {gte: 1}}  # scalar op",
         "health_alerts is a list; use contains or excludes"),
        ("campaigns.yaml", "{days_since_last_login: {gte: 7}}",
         "{recent_events: {excludes: logn}}  # typo",
         "recent_events never holds 'logn' \\(it holds: login, "),
        ("journey.yaml", "{churn_probability: {gt: 0.4}}",
         "{risk_factors: {contains: inactiv}}  # typo",
         "risk_factors never holds 'inactiv' \\(it holds: usage_decline, inactive, "),
        ("strategies.yaml", "when: {churn_probability: {gt: 0.8}}",
         "when: {churn_probability: {gt: 0.8}, health_alerts: {excludes: low_usage}}  # typo",
         "health_alerts never holds 'low_usage'"),
    ],
)  # fmt: skip
def test_a_broken_campaign_or_offer_names_the_place(
    rules_copy: Path, file: str, old: str, new: str, message: str
) -> None:
    path = rules_copy / file
    replace_once(path, old, new)
    marker = new.split("#")[-1] if "#" in new else new
    with pytest.raises(RulebookError, match=refused_at(path, marker) + ".*" + message):
        load_rulebook(rules_copy)


def test_a_missing_campaign_template_names_the_message(rules_copy: Path) -> None:
    (rules_copy / "templates" / "advocacy_invite.j2").unlink()
    path = rules_copy / "campaigns.yaml"
    with pytest.raises(
        RulebookError,
        match=refused_at(path, "template: advocacy_invite")
        + "template 'advocacy_invite' not found",
    ):
        load_rulebook(rules_copy)
