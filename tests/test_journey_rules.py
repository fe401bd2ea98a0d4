"""Journeys under the rule set's holdout, offers and campaigns, on the time-skipping server."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from uuid import uuid4

import pytest
from conftest import JourneyWorld
from factories import customer_id_in_group, make_customer
from journey_stories import (
    critical_customer,
    end_journey,
    nurture_customer,
    start,
    state_of,
    through_holds,
    until,
    until_planned,
)
from sqlmodel import select
from temporalio.client import WorkflowHandle

from retention.journey_state import EscalateRequest, JourneyRequest, JourneyState, StepState
from retention.store.db import session
from retention.store.records import list_outbox
from retention.store.tables import ChurnPredictionRow, InterventionRow, OutboxRow
from workflows.retention_journey import RetentionJourney

pytestmark = pytest.mark.database

HELD_OUT_NOTE = "held out: recorded, nothing sent"


# ---- reading a journey's steps and what they left behind ----------------------------------


def steps_of(state: JourneyState, campaign: str | None) -> list[StepState]:
    """The steps of one campaign, or with None the strategy's own (and its timeline's)."""
    return [s for s in state.steps if s.step.campaign == campaign]


def step_for(state: JourneyState, action: str) -> StepState:
    return next(s for s in state.steps if s.step.action == action)


def pending_in(steps: list[StepState]) -> StepState | None:
    return next((s for s in steps if s.status == "pending"), None)


def done(action: str) -> Callable[[JourneyState], bool]:
    """A condition for `until`: a step with this action has been delivered."""
    return lambda state: any(s.step.action == action and s.status == "done" for s in state.steps)


def outbox_row(world: JourneyWorld, step: StepState) -> OutboxRow:
    assert step.outbox_id is not None, f"{step.step.step_id} was not delivered"
    with session(world.engine) as db:
        row = db.get(OutboxRow, step.outbox_id)
    assert row is not None
    return row


def intervention_statuses(world: JourneyWorld, journey_key: str) -> set[str]:
    with session(world.engine) as db:
        query = select(InterventionRow.status).where(InterventionRow.journey_key == journey_key)
        return set(db.exec(query).all())


def files_of(world: JourneyWorld, handle: WorkflowHandle) -> list[Path]:
    """The messages a journey wrote under the outbox folder."""
    return sorted((world.outbox_dir / handle.id).glob("*.txt"))


async def signal(handle: WorkflowHandle, kind: str, **data: object) -> None:
    await handle.signal(RetentionJourney.customer_event, {"type": kind, "data": data})


# ---- holdout ------------------------------------------------------------------------------


async def test_a_held_out_journey_runs_its_whole_plan_and_sends_nothing(
    world: JourneyWorld,
) -> None:
    held = await start(world, critical_customer(held_out=True))
    treated = await start(world, critical_customer(held_out=False))

    # one result at a time: the time-skipping server may hang on two concurrent waits
    held_final: JourneyState = await held.result()
    treated_final: JourneyState = await treated.result()

    # the held-out customer's journey is the treated one's in every way but the sending
    assert held_final.holdout and not treated_final.holdout
    assert "holdout" in held_final.fired_rules and "holdout" not in treated_final.fired_rules
    assert (held_final.strategy, held_final.outcome) == (treated_final.strategy, "completed")
    assert treated_final.outcome == "completed"
    assert [s.step.step_id for s in held_final.steps] == [
        s.step.step_id for s in treated_final.steps
    ]
    assert all(s.status == "done" and s.note == HELD_OUT_NOTE for s in held_final.steps)
    assert all(s.status == "done" and s.note != HELD_OUT_NOTE for s in treated_final.steps)

    # every step recorded, nothing written to the outbox folder
    held_rows = list_outbox(world.engine, held_final.journey_key)
    assert len(held_rows) == len(held_final.steps)
    assert {(r.status, r.path) for r in held_rows} == {("held_out", "")}
    assert intervention_statuses(world, held_final.journey_key) == {"held_out"}
    assert [folder.name for folder in world.outbox_dir.iterdir()] == [treated.id]

    treated_rows = list_outbox(world.engine, treated_final.journey_key)
    assert {r.status for r in treated_rows} == {"captured"}
    assert intervention_statuses(world, treated_final.journey_key) == {"captured"}
    assert [Path(r.path) for r in sorted(treated_rows, key=lambda r: r.path)] == files_of(
        world, treated
    )


async def test_a_held_out_journey_stays_held_out_when_escalated(world: JourneyWorld) -> None:
    handle = await start(world, nurture_customer(held_out=True))
    planned = await until_planned(world, handle)
    assert planned.holdout

    await handle.execute_update(RetentionJourney.escalate, EscalateRequest(reason="exec call"))
    replanned = await until(world, handle, done("feature_recommendation"))

    assert replanned.plan_generation == 2 and replanned.holdout
    assert step_for(replanned, "feature_recommendation").note == HELD_OUT_NOTE
    await end_journey(handle)
    assert files_of(world, handle) == []


async def test_holdout_is_decided_once_at_the_first_decision(world: JourneyWorld) -> None:
    # in the holdout group by id, but healthy: not eligible, so treated
    customer_id = customer_id_in_group("std", held_out=True)
    handle = await start(world, make_customer(profile={"customer_id": customer_id}))
    planned = await until_planned(world, handle)
    assert (planned.strategy, planned.holdout) == ("standard", False)

    # two failed payments: the 72 h re-score finds the customer at risk, and eligible
    await signal(handle, "payment_failed")
    await signal(handle, "payment_failed")
    await world.env.sleep(timedelta(hours=72))
    state = await until(world, handle, done("email_campaign"))

    assert state.strategy == "nurture" and "holdout" in state.fired_rules
    assert not state.holdout  # the re-plan's decision does not move the customer across
    sent = step_for(state, "email_campaign")
    assert sent.note != HELD_OUT_NOTE and Path(outbox_row(world, sent).path).is_file()
    await end_journey(handle)


# ---- offers -------------------------------------------------------------------------------


async def test_a_critical_customer_is_offered_what_the_offer_rules_say(
    world: JourneyWorld,
) -> None:
    critical = await start(world, critical_customer())
    nurture = await start(world, nurture_customer())

    state = await until(world, critical, done("retention_offer"))
    offer = state.offer
    assert offer is not None
    # mid-market, 90,000 a year, very likely to leave: the renewal discount, scaled by the risk
    assert (offer.name, offer.type, offer.duration_months) == ("renewal_discount", "discount", 12)
    assert state.churn_probability is not None
    assert offer.value == round(90_000 * 0.20 * state.churn_probability / 50) * 50
    assert 7 <= offer.expires_in_days <= 21

    row = outbox_row(world, step_for(state, "retention_offer"))
    for body in (row.body, Path(row.path).read_text()):
        assert f"{offer.value:,.0f} off your renewal" in body
        assert f"for {offer.duration_months} months" in body
        assert "on condition: not combined with other discounts" in body
        assert f"reserved for you for {offer.expires_in_days} days" in body

    nurture_state = await until_planned(world, nurture)
    assert nurture_state.offer is None
    assert not any(s.step.action == "retention_offer" for s in nurture_state.steps)
    await end_journey(critical)
    await end_journey(nurture)


# ---- campaigns ----------------------------------------------------------------------------


async def test_three_logins_in_a_week_end_re_engagement_but_not_the_plan(
    world: JourneyWorld,
) -> None:
    handle = await start(world, nurture_customer())  # not seen for 10 days
    state = await until(world, handle, done("re_engagement_away"))

    assert state.campaigns_started == ["re_engagement"]
    campaign = steps_of(state, "re_engagement")
    assert [s.step.at_hours for s in campaign] == [0, 72, 168, 336]
    away = outbox_row(world, campaign[0])
    assert away.subject == "We've noticed you've been away"
    assert "Show me what I missed" in away.body

    # two logins are not yet "high activity"
    await signal(handle, "login")
    await world.env.sleep(timedelta(hours=12))
    await signal(handle, "login")
    state = await until(world, handle, lambda s: s.events.received == 2)
    assert all(s.status == "pending" for s in steps_of(state, "re_engagement")[1:])
    assert state.campaigns_exited == {}

    await world.env.sleep(timedelta(hours=12))
    await signal(handle, "login")
    state = await until(world, handle, lambda s: s.events.received == 3)

    assert state.campaigns_exited == {"re_engagement": "high_activity_resumed"}
    rest = steps_of(state, "re_engagement")[1:]
    assert {(s.status, s.note) for s in rest} == {
        ("skipped", "campaign exited: high_activity_resumed")
    }
    # the strategy's own plan goes on
    assert state.outcome is None
    exited_at = state.events.recent[-1].received_at
    await world.env.sleep(timedelta(hours=30))
    # the campaign's and the plan's emails of the first day fill the email cap (3 a week)
    state = await until(world, handle, lambda s: bool(step_for(s, "resource_sharing").deferred_why))
    sharing = step_for(state, "resource_sharing")
    assert (sharing.status, sharing.deferred_why) == (
        "pending",
        "waited for the email cap of 3 per 7d",
    )
    assert sharing.due_at > exited_at
    assert len(list_outbox(world.engine, state.journey_key)) == sum(
        s.status == "done" for s in state.steps
    )
    await end_journey(handle)


async def test_logins_spread_over_more_than_a_week_keep_the_campaign_going(
    world: JourneyWorld,
) -> None:
    handle = await start(world, critical_customer())  # stays critical through the logins
    await until_planned(world, handle)

    for _ in range(3):
        await signal(handle, "login")
        await world.env.sleep(timedelta(days=4))
    state = await state_of(handle)

    assert state.campaigns_exited == {}
    assert [s.status for s in steps_of(state, "re_engagement")] == ["done"] * 3 + ["pending"]
    await end_journey(handle)


async def test_milestones_start_success_milestone_once_each(world: JourneyWorld) -> None:
    handle = await start(world, nurture_customer())
    await until_planned(world, handle)

    def milestone_runs(state: JourneyState) -> list[StepState]:
        return steps_of(state, "success_milestone")

    await signal(handle, "milestone_reached", milestone="first_success")
    state = await until(world, handle, lambda s: any(x.status == "done" for x in milestone_runs(s)))
    [first] = milestone_runs(state)
    assert first.step.step_id == "e2-success_milestone-01-milestone_congratulations"
    assert outbox_row(world, first).subject == "Congratulations on your milestone"

    await signal(handle, "milestone_reached", milestone="first_success")
    await signal(handle, "milestone_reached", milestone="moon_landing")
    await signal(handle, "milestone_reached", milestone="roi_achieved")
    await signal(handle, "milestone_reached", reached="soon")
    state = await until(world, handle, lambda s: s.events.received == 5)

    assert [s.step.step_id.split("-", 1)[0] for s in milestone_runs(state)] == ["e2", "e3"]
    assert state.campaigns_started == [
        "re_engagement",
        "success_milestone:first_success",
        "success_milestone:roi_achieved",
    ]
    # every milestone is recorded; the one without a name is refused, naming the field
    assert [e.accepted for e in state.events.recent] == [True, True, True, True, False]
    assert (
        state.events.recent[-1].reason is not None
        and "data.milestone" in state.events.recent[-1].reason
    )
    assert state.outcome is None
    # the second milestone's email is the customer's fourth in a week: the email cap holds it
    held = await until(world, handle, lambda s: any(x.deferred_why for x in milestone_runs(s)))
    assert [x.deferred_why for x in milestone_runs(held)] == [
        "",
        "waited for the email cap of 3 per 7d",
    ]
    state = await through_holds(world, handle, lambda s: pending_in(milestone_runs(s)))
    assert all(x.status == "done" for x in milestone_runs(state))
    await end_journey(handle)


async def test_an_escalation_keeps_a_running_campaign_at_its_own_pace(
    world: JourneyWorld,
) -> None:
    handle = await start(world, nurture_customer())
    before = await until(world, handle, done("re_engagement_away"))
    campaign_before = steps_of(before, "re_engagement")

    await handle.execute_update(RetentionJourney.escalate, EscalateRequest(reason="exec call"))
    after = await state_of(handle)

    assert (after.strategy, after.plan_generation) == ("proactive_engagement", 2)
    assert after.campaigns_started == ["re_engagement"]
    # the same four messages, not a second run: same ids, same times, still pending
    assert steps_of(after, "re_engagement") == campaign_before
    assert [s.status for s in campaign_before] == ["done", "pending", "pending", "pending"]
    # while the nurture plan's pending steps gave way to the new plan
    replaced = [s for s in steps_of(after, None) if s.generation == 1 and s.status == "skipped"]
    assert replaced and all(s.note == "replaced by plan 2" for s in replaced)

    await world.env.sleep(timedelta(hours=72))
    # due with the new plan's emails, it may wait for the email cap; its due time stays
    new_feature = await through_holds(
        world, handle, lambda s: pending_in([step_for(s, "re_engagement_new_feature")])
    )
    step = step_for(new_feature, "re_engagement_new_feature")
    assert step.status == "done"
    assert step.generation == 1 and step.due_at == campaign_before[1].due_at
    await end_journey(handle)


async def test_a_checkpoint_that_keeps_the_strategy_still_starts_a_campaign_now_due(
    world: JourneyWorld,
) -> None:
    # healthy and on `standard`, last seen 5 days ago: not yet re-engagement material
    customer_id = customer_id_in_group("std", held_out=False)
    customer = make_customer(
        profile={"customer_id": customer_id}, usage={"days_since_last_login": 5}
    )
    handle = await start(world, customer)
    state = await until_planned(world, handle)
    assert (state.strategy, state.campaigns_started) == ("standard", [])

    # three quiet days later the 72 h re-score finds 8 days without a login
    await world.env.sleep(timedelta(hours=73))
    state = await until(world, handle, lambda s: 72 in s.checkpoints_done)

    assert state.strategy == "standard" and state.outcome is None
    assert state.campaigns_started == ["re_engagement"]
    assert len(steps_of(state, "re_engagement")) == 4
    await end_journey(handle)


async def test_an_upstream_probability_decides_a_journey_started_from_a_snapshot(
    world: JourneyWorld,
) -> None:
    healthy = make_customer(profile={"customer_id": customer_id_in_group("up", held_out=False)})
    handle = await start(world, healthy, upstream_churn_probability=0.9)

    state = await until_planned(world, handle)

    assert (state.churn_probability, state.probability_source) == (0.9, "upstream")
    assert state.strategy == "critical_save"
    await end_journey(handle)


async def test_an_event_that_opens_a_journey_counts_once_at_every_re_score(
    world: JourneyWorld,
) -> None:
    customer = make_customer(profile={"customer_id": f"pay-{uuid4().hex[:8]}"})  # no delays
    handle = await world.client.start_workflow(
        RetentionJourney.run,
        JourneyRequest(customer=customer),
        id=f"retention-{customer.customer_id}",
        task_queue=world.task_queue,
        start_signal="customer_event",
        start_signal_args=[{"type": "payment_failed", "data": {}}],
    )
    world.journeys.append(handle)

    await world.env.sleep(timedelta(hours=73))
    state = await until(world, handle, lambda s: 72 in s.checkpoints_done)

    assert state.customer is not None
    assert state.customer.financial.payment_delays_90d == 0  # the snapshot, before any event
    with session(world.engine) as db:
        rows = db.exec(
            select(ChurnPredictionRow).where(ChurnPredictionRow.journey_id == handle.id)
        ).all()
    details = [
        f["detail"] for row in rows for f in row.risk_factors if f["name"] == "payment_issues"
    ]
    assert len(rows) == 2 and details == ["1 delayed payment(s) in the last 90 days."] * 2
    await end_journey(handle)
