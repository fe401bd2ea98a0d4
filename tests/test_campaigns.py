"""Campaign bookkeeping over a journey's state, without a workflow: which campaigns start, which
end, and when (retention/campaigns.py)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from factories import make_step

from retention.campaigns import add_campaigns, follow_campaigns, scheduled
from retention.customer import CustomerEvent
from retention.event_summary import EventRecord
from retention.journey_clock import JourneyClock
from retention.journey_state import JourneyState
from retention.plan import (
    CampaignExit,
    Decision,
    EventCampaign,
    InterventionPlan,
    JourneyPolicy,
    PlanStep,
)

T0 = datetime(2026, 12, 1, 9, tzinfo=UTC)
REAL_TIME = JourneyClock(started_at=T0, scale=1.0)
ADOPTION = [
    make_step("feature_tips", step_id="c-01-feature_tips", at_hours=0, campaign="adoption"),
    make_step("feature_tips", step_id="c-02-feature_tips", at_hours=48, campaign="adoption"),
]
MILESTONES = EventCampaign(
    name="milestone",
    event="milestone_reached",
    data_match={"milestone": ["first_report", "tenth_report"]},
    steps=[make_step("congratulations", step_id="congrats", at_hours=1)],
)
POLICY = JourneyPolicy(
    exits=[],
    observation_hours=24,
    strategy_order=["nurture"],
    campaign_exits={
        "adoption": [
            CampaignExit(event="login", at_least=3, within_hours=168, reason="active again")
        ]
    },
    event_campaigns=[MILESTONES],
)


def journey(policy: JourneyPolicy = POLICY) -> JourneyState:
    return JourneyState(customer_id="acme", journey_key="k", started_at=T0, policy=policy)


def decision(steps: list[PlanStep], campaigns: list[str]) -> Decision:
    return Decision(
        strategy="nurture",
        risk_tier="low",
        severity_tier="low",
        plan=InterventionPlan(strategy="nurture", steps=steps),
        policy=None,
        rules_version="v1",
        fired_rules=[],
        campaigns=campaigns,
    )


def hear(state: JourneyState, event_type: str, at: datetime, **data: object) -> None:
    """As the journey hears an event: noted in its summary, then its campaigns follow."""
    record = EventRecord(type=event_type, received_at=at, data=data, accepted=True)
    state.events.note(record, CustomerEvent(type=event_type, data=data))
    follow_campaigns(state, event_type, data, at, REAL_TIME)


def pending(state: JourneyState) -> list[str]:
    return [s.step.step_id for s in state.steps if s.status == "pending"]


def test_steps_are_due_their_hours_of_journey_time_from_now() -> None:
    sped_up = JourneyClock(started_at=T0, scale=24.0)  # a journey day per real hour
    [first, second] = scheduled(ADOPTION, 1, T0 + timedelta(hours=1), sped_up)

    assert first.due_at == T0 + timedelta(hours=1)
    assert second.due_at == T0 + timedelta(hours=3)  # 48 journey hours: two real hours
    assert (first.generation, first.status) == (1, "pending")


def test_a_decisions_campaign_starts_once_per_journey_whatever_later_plans_say() -> None:
    state = journey()
    first = decision(ADOPTION, ["adoption"])

    add_campaigns(state, first, T0, REAL_TIME)
    add_campaigns(state, first, T0 + timedelta(days=3), REAL_TIME)  # a re-plan says it again

    assert state.campaigns_started == ["adoption"]
    assert pending(state) == ["c-01-feature_tips", "c-02-feature_tips"]


def test_a_campaign_ends_once_its_event_is_seen_enough_times_within_its_window() -> None:
    state = journey()
    add_campaigns(state, decision(ADOPTION, ["adoption"]), T0, REAL_TIME)

    hear(state, "login", T0)  # a login 8 days before the third: outside the 7-day window
    hear(state, "login", T0 + timedelta(days=8))
    hear(state, "login", T0 + timedelta(days=8, hours=1))
    assert pending(state) == ["c-01-feature_tips", "c-02-feature_tips"]

    hear(state, "login", T0 + timedelta(days=8, hours=2))

    assert pending(state) == []
    assert {s.note for s in state.steps} == {"campaign exited: active again"}
    assert state.campaigns_exited == {"adoption": "active again"}


def test_an_event_campaign_starts_once_per_milestone_reached() -> None:
    state = journey()

    hear(state, "milestone_reached", T0, milestone="first_report")
    hear(state, "milestone_reached", T0 + timedelta(hours=2), milestone="first_report")
    hear(state, "milestone_reached", T0 + timedelta(hours=3), milestone="fifth_report")
    hear(state, "milestone_reached", T0 + timedelta(hours=5), milestone="tenth_report")

    assert state.campaigns_started == ["milestone:first_report", "milestone:tenth_report"]
    assert pending(state) == ["e1-congrats", "e2-congrats"]
    assert [s.due_at for s in state.steps] == [
        T0 + timedelta(hours=1),
        T0 + timedelta(hours=6),
    ]
