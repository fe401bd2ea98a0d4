"""Campaign bookkeeping over a journey's state: which campaigns start, which end, and the steps
they add. Plain, deterministic logic the journey workflow calls with its own clock and `now`
(docs/rule-authors/ describes campaigns and their exits); unit-tested on its own.

A decision's campaigns run once per journey whatever later plans say; an event campaign runs
once per distinct triggering data (e.g. each milestone); a campaign's exit skips its pending
steps once its event was seen `at_least` times within its window.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from retention.journey_clock import JourneyClock
from retention.journey_state import JourneyState, StepState
from retention.plan import Decision, EventCampaign, PlanStep


def scheduled(
    steps: list[PlanStep], generation: int, now: datetime, clock: JourneyClock
) -> list[StepState]:
    """Steps due their `at_hours` of journey time from `now`."""
    return [
        StepState(step=step, generation=generation, due_at=now + clock.span(step.at_hours))
        for step in steps
    ]


def add_campaigns(
    state: JourneyState, decision: Decision, now: datetime, clock: JourneyClock
) -> None:
    """The decision's campaigns that have not run in this journey start now: once each."""
    new = [c for c in decision.campaigns if c not in state.campaigns_started]
    state.campaigns_started += new
    steps = [step for step in decision.plan.steps if step.campaign in new]
    state.steps += scheduled(steps, decision.plan.generation, now, clock)


def follow_campaigns(
    state: JourneyState,
    event_type: str,
    data: dict[str, Any],
    now: datetime,
    clock: JourneyClock,
) -> None:
    """A customer event may end a running campaign or start one (e.g. a milestone)."""
    assert state.policy is not None
    for campaign, exits in state.policy.campaign_exits.items():
        for rule in exits:
            # a campaign with nothing pending has nothing to end: skip the count (a flood of
            # one event type would otherwise count its window at every event)
            if rule.event != event_type or not has_pending(state, campaign):
                continue
            since = now - clock.span(rule.within_hours) if rule.within_hours else None
            if state.events.seen(event_type, since) >= rule.at_least:
                exit_campaign(state, campaign, rule.reason)
    for starter in state.policy.event_campaigns:
        if starter.matches(event_type, data):
            start_campaign(state, starter, data, now, clock)


def has_pending(state: JourneyState, campaign: str) -> bool:
    return any(s.status == "pending" and s.step.campaign == campaign for s in state.steps)


def exit_campaign(state: JourneyState, campaign: str, reason: str) -> None:
    pending = [s for s in state.steps if s.status == "pending" and s.step.campaign == campaign]
    for step in pending:
        step.status, step.note = "skipped", f"campaign exited: {reason}"
    if pending:
        state.campaigns_exited[campaign] = reason


def start_campaign(
    state: JourneyState,
    campaign: EventCampaign,
    data: dict[str, Any],
    now: datetime,
    clock: JourneyClock,
) -> None:
    """Once per distinct triggering event data (e.g. each milestone), steps from now."""
    start = ":".join([campaign.name, *(str(data.get(k)) for k in campaign.data_match)])
    if start in state.campaigns_started:
        return
    state.campaigns_started.append(start)
    n = len(state.campaigns_started)
    steps = [s.model_copy(update={"step_id": f"e{n}-{s.step_id}"}) for s in campaign.steps]
    state.steps += scheduled(steps, state.plan_generation, now, clock)
