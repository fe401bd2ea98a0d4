"""RetentionJourney on the time-skipping server: weeks of a journey in seconds, real activities."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any
from uuid import uuid4

import pytest
from factories import customer_id_in_group, make_customer
from journey_stories import (
    DORMANT,
    DRIFTING,
    critical_customer,
    dying_once,
    end_journey,
    nurture_customer,
    start,
    state_of,
    until,
    until_planned,
)
from sqlalchemy import Engine
from temporalio.api.enums.v1 import EventType
from temporalio.client import WorkflowFailureError, WorkflowHandle, WorkflowUpdateFailedError
from temporalio.converter import PayloadConverter
from temporalio.testing import WorkflowEnvironment

from retention import search_attributes
from retention.customer import CustomerEvent
from retention.journey_state import (
    CancelRequest,
    EscalateRequest,
    JourneyRequest,
    JourneyState,
    PauseRequest,
    ResumeRequest,
)
from retention.runtime.operations import recorded_event, send_event
from retention.store.records import list_outbox
from worker import running_worker
from workflows.retention_journey import PATCHES_FOLDED, RetentionJourney

pytestmark = pytest.mark.database
IN_FLIGHT_UPDATES = 10  # Temporal's default `history.maxInFlightUpdates`


async def refusal(update: Awaitable[Any]) -> str:
    """The message an update's validator answered with."""
    with pytest.raises(WorkflowUpdateFailedError) as refused:
        await update
    return str(refused.value.cause)


async def until_continued_as_new(world: Any, handle: WorkflowHandle) -> None:
    """Wait (on the server's word, not a query) until a new run has run its first task.

    The time-skipping server leaves a query unanswered if it lands before that first task.
    """
    latest = world.client.get_workflow_handle(handle.id)
    for _ in range(300):
        if (await latest.describe()).run_id != handle.result_run_id:
            history = await latest.fetch_history()
            if any(e.HasField("workflow_task_completed_event_attributes") for e in history.events):
                return
        await asyncio.sleep(0.1)
    raise AssertionError("the journey never continued as new")


async def test_critical_journey_runs_its_whole_plan_over_weeks(world: Any) -> None:
    handle = await start(world, critical_customer())

    final: JourneyState = await handle.result()

    assert (final.strategy, final.risk_tier, final.severity_tier) == (
        "critical_save",
        "critical",
        "critical",
    )
    assert final.outcome == "completed" and final.stage == "closed"
    assert final.model_version == "baseline-0"
    assert final.churn_probability is not None and final.churn_probability > 0.8
    assert [f.name for f in final.risk_factors][:2] == ["champion_risk", "usage_decline"]
    assert all(step.status == "done" for step in final.steps)
    actions = {step.step.action for step in final.steps}
    assert {"executive_call", "retention_offer", "alert_csm", "escalation_review"} <= actions
    # no phone on file: the phone outreach went to its fallback channel
    outreach = next(s for s in final.steps if s.step.action == "executive_outreach")
    assert outreach.channel_used == "csm_task" and outreach.note == "fallback channel used"
    # weeks of journey time passed: the plan ran 48 h, then two weeks of observation
    assert final.finished_at - final.started_at >= timedelta(hours=48 + 14 * 24)
    assert len(list_outbox(world.engine, final.journey_key)) == len(final.steps)


@pytest.mark.parametrize(
    ("kind", "strategy", "actions"),
    [
        (
            DRIFTING,
            "proactive_engagement",
            {"feature_recommendation", "csm_checkin", "value_demonstration", "training_webinar"},
        ),
        (DORMANT, "nurture", {"email_campaign", "resource_sharing", "peer_success_story"}),
    ],
    ids=["proactive_engagement", "nurture"],
)
async def test_a_strategy_held_at_every_checkpoint_runs_its_whole_plan(
    world: Any, kind: dict[str, Any], strategy: str, actions: set[str]
) -> None:
    customer_id = customer_id_in_group(strategy[:3], held_out=False)
    handle = await start(world, make_customer(profile={"customer_id": customer_id}, **kind))

    final: JourneyState = await handle.result()

    assert final.outcome == "completed", final.exit_reason
    assert [c.to_strategy for c in final.strategy_history] == [strategy]  # every re-score agreed
    assert final.checkpoints_done == [72, 168, 336, 672]
    assert actions <= {step.step.action for step in final.steps}
    assert all(step.status == "done" for step in final.steps)
    assert len(list_outbox(world.engine, final.journey_key)) == len(final.steps)


async def test_a_customer_healthy_at_a_checkpoint_ends_the_journey_recovered(world: Any) -> None:
    healthy = make_customer(profile={"customer_id": customer_id_in_group("rec", held_out=False)})
    handle = await start(world, healthy, upstream_churn_probability=0.7)  # only the first decision

    final: JourneyState = await handle.result()

    assert final.outcome == "recovered"
    assert final.exit_reason == "re-scored at 72h: standard"
    assert final.strategy == "proactive_engagement" and final.checkpoints_done == [72]
    due_by_then = [s for s in final.steps if s.step.at_hours < 72]
    assert due_by_then and all(s.status == "done" for s in due_by_then)
    assert any(s.status == "skipped" for s in final.steps)  # the week-one steps never ran


async def test_meeting_booked_exits_and_skips_the_rest(world: Any) -> None:
    handle = await start(world, critical_customer())
    await until_planned(world, handle)
    await world.env.sleep(timedelta(hours=30))

    await handle.signal(RetentionJourney.customer_event, {"type": "meeting_booked"})
    final: JourneyState = await handle.result()

    assert final.outcome == "exited:meeting_booked"
    assert final.exit_reason == "event:meeting_booked"
    statuses = {step.status for step in final.steps}
    assert statuses == {"done", "skipped"}
    assert len(list_outbox(world.engine, final.journey_key)) == sum(
        step.status == "done" for step in final.steps
    )


async def test_an_exit_event_before_the_plan_still_ends_the_journey(world: Any) -> None:
    handle = await start(world, critical_customer())
    await handle.signal(RetentionJourney.customer_event, {"type": "meeting_booked"})

    final: JourneyState = await handle.result()

    assert final.outcome == "exited:meeting_booked"
    assert final.strategy == "critical_save"


@pytest.mark.parametrize(("event", "outcome"), [("churned", "churned"), ("renewed", "saved")])
async def test_churned_and_renewed_end_the_journey(world: Any, event: str, outcome: str) -> None:
    handle = await start(world, nurture_customer())
    await until_planned(world, handle)

    await handle.signal(RetentionJourney.customer_event, {"type": event, "data": {}})

    final: JourneyState = await handle.result()
    assert final.outcome == outcome


async def test_pause_holds_every_step_until_resume(world: Any) -> None:
    handle = await start(world, critical_customer())
    state = await until_planned(world, handle)
    await world.env.sleep(timedelta(minutes=5))
    done_before = sum(s.status == "done" for s in (await state_of(handle)).steps)

    paused = await handle.execute_update(RetentionJourney.pause, PauseRequest(reason="legal hold"))
    assert paused.stage == "paused"
    await world.env.sleep(timedelta(days=5))
    held = await state_of(handle)
    assert held.paused and held.stage == "paused"
    assert sum(s.status == "done" for s in held.steps) == done_before < len(state.steps)

    assert "already paused" in await refusal(
        handle.execute_update(RetentionJourney.pause, PauseRequest())
    )
    await handle.execute_update(RetentionJourney.resume, ResumeRequest())

    final: JourneyState = await handle.result()
    assert final.outcome == "completed"
    assert all(step.status == "done" for step in final.steps)


async def test_resume_of_a_running_journey_is_refused(world: Any) -> None:
    handle = await start(world, nurture_customer())
    await until_planned(world, handle)

    assert "not paused" in await refusal(
        handle.execute_update(RetentionJourney.resume, ResumeRequest())
    )
    await end_journey(handle)


async def test_cancel_needs_a_reason_and_records_it(world: Any) -> None:
    handle = await start(world, nurture_customer())
    await until_planned(world, handle)

    assert "reason" in await refusal(handle.execute_update("cancel", {"reason": ""}))
    result = await handle.execute_update(
        RetentionJourney.cancel, CancelRequest(reason="customer asked for no contact")
    )
    assert "cancelled" in result.message

    final: JourneyState = await handle.result()
    assert final.outcome == "cancelled"
    assert final.exit_reason == "customer asked for no contact"
    with pytest.raises(Exception, match="already ended|completed|not found|closed"):
        await handle.execute_update(RetentionJourney.cancel, CancelRequest(reason="again"))


async def test_escalate_moves_the_strategy_up_and_replans(world: Any) -> None:
    handle = await start(world, nurture_customer())
    planned = await until_planned(world, handle)
    assert planned.strategy == "nurture"

    result = await handle.execute_update(
        RetentionJourney.escalate, EscalateRequest(reason="exec complained")
    )

    assert result.strategy == "proactive_engagement"
    state = await state_of(handle)
    assert [c.to_strategy for c in state.strategy_history] == ["nurture", "proactive_engagement"]
    assert state.plan_generation == 2
    assert any(s.generation == 2 and s.step.action == "csm_checkin" for s in state.steps)
    # the old plan gives way; a campaign that started keeps its pace
    old_plan = [s for s in state.steps if s.generation == 1 and s.step.campaign is None]
    assert old_plan and all(s.status != "pending" for s in old_plan)
    # the new plan's immediate step runs now, not at the old plan's next due time
    immediate = await until(
        world,
        handle,
        lambda s: any(st.generation == 2 and st.status == "done" for st in s.steps),
    )
    first = next(st for st in immediate.steps if st.generation == 2 and st.status == "done")
    assert first.step.at_hours == 0 and first.done_at - first.due_at < timedelta(minutes=1)
    await end_journey(handle)


async def test_bad_events_are_recorded_as_rejected_and_the_journey_goes_on(world: Any) -> None:
    handle = await start(world, nurture_customer())
    await until_planned(world, handle)

    await handle.signal(RetentionJourney.customer_event, {"type": "teleported"})
    await handle.signal(RetentionJourney.customer_event, {"type": "nps_response", "data": {}})
    await handle.signal(RetentionJourney.customer_event, "not an event")
    await handle.signal(RetentionJourney.customer_event, {"type": "login"})

    state = await state_of(handle)
    rejected = [e for e in state.events.recent if not e.accepted]
    assert [e.type for e in rejected] == ["teleported", "nps_response", "(missing)"]
    assert "type" in rejected[0].reason and "data" in rejected[1].reason
    assert [e.type for e in state.events.recent if e.accepted] == ["login"]
    assert state.outcome is None
    await end_journey(handle)


async def test_continue_as_new_carries_the_state(world: Any) -> None:
    handle = await start(world, nurture_customer(), continue_as_new_after_events=2)
    planned = await until_planned(world, handle)

    for kind in ("login", "feature_used", "email_opened"):
        await handle.signal(RetentionJourney.customer_event, {"type": kind})
    await until_continued_as_new(world, handle)
    continued = await state_of(handle)
    await handle.signal(RetentionJourney.customer_event, {"type": "renewed"})
    final: JourneyState = await handle.result()

    assert continued.runs == 2
    assert continued.strategy == "nurture" and continued.plan_generation == 1

    assert final.runs >= 2
    assert final.journey_key == planned.journey_key
    assert [e.type for e in final.events.recent] == [
        "login",
        "feature_used",
        "email_opened",
        "renewed",
    ]
    assert final.outcome == "saved"
    assert final.strategy_history[0].to_strategy == "nurture"


async def test_events_sent_together_past_the_threshold_wait_for_the_next_run_none_lost(
    world: Any,
) -> None:
    """`send_event` waits while the journey continues as new, so a run never takes more than
    its threshold plus what Temporal lets be in flight at once, and no event is lost or doubled."""
    customer = nurture_customer()
    handle = await start(world, customer, continue_as_new_after_events=5)
    await until(world, handle, lambda s: any(step.status == "done" for step in s.steps))

    async def send(n: int) -> None:
        event = CustomerEvent(type="feature_used", data={"n": n})
        await send_event(world.client, customer.customer_id, event, request_id=f"flood-{n}")

    await asyncio.gather(*(send(n) for n in range(40)))

    per_run = await events_per_run(world, handle)
    assert sorted(n for run in per_run for n in run) == list(range(40))
    assert len(per_run) >= 40 // (5 + IN_FLIGHT_UPDATES)
    assert max(len(run) for run in per_run) < 5 + IN_FLIGHT_UPDATES
    state = await state_of(handle)
    assert state.events.received == 40 and state.runs == len(per_run)
    await end_journey(handle)


async def events_per_run(world: Any, first: WorkflowHandle) -> list[list[int]]:
    """The `n` of every customer event each run recorded, following the continue-as-new chain."""
    runs: list[list[int]] = []
    run_id: str | None = first.first_execution_run_id
    while run_id:
        history = await world.client.get_workflow_handle(first.id, run_id=run_id).fetch_history()
        events = [await recorded_event(world.client, entry) for entry in history.events]
        runs.append([e["data"]["n"] for e in events if e is not None])
        last = history.events[-1]
        run_id = last.workflow_execution_continued_as_new_event_attributes.new_execution_run_id
    return runs


async def test_a_journey_sees_the_champion_gone_from_the_accounts_contacts(world: Any) -> None:
    champion = {"contact_id": "c-1", "name": "Ana Ruiz", "email": "ana@acme.example"}
    admin = {"contact_id": "c-2", "name": "Bo Chen", "email": "bo@acme.example", "roles": ["admin"]}
    customer = make_customer(
        profile={"customer_id": customer_id_in_group("ppl", held_out=False)},
        relationship={"champion_status": "active"},  # a stale flag: the contacts say otherwise
        contacts=[{**champion, "roles": ["champion", "admin"], "active": False}, admin],
        **DRIFTING,
    )
    handle = await start(world, customer)

    planned = await until_planned(world, handle)

    assert "champion_risk" in [factor.name for factor in planned.risk_factors]
    await end_journey(handle)


async def test_a_contact_changed_event_shows_the_next_re_score_the_champion_gone(
    world: Any,
) -> None:
    champion: dict[str, Any] = {
        "contact_id": "c-1",
        "name": "Ana Ruiz",
        "email": "ana@acme.example",
        "roles": ["champion", "admin"],
    }
    admin = {"contact_id": "c-2", "name": "Bo Chen", "email": "bo@acme.example", "roles": ["admin"]}
    customer = make_customer(
        profile={"customer_id": customer_id_in_group("ppl", held_out=False)},
        contacts=[champion, admin],
        **DRIFTING,
    )
    handle = await start(world, customer)
    planned = await until_planned(world, handle)
    assert "champion_risk" not in [factor.name for factor in planned.risk_factors]

    gone = CustomerEvent(type="contact_changed", data={**champion, "active": False})
    await send_event(world.client, customer.customer_id, gone)
    await world.env.sleep(timedelta(hours=73))
    state = await until(world, handle, lambda s: 72 in s.checkpoints_done)

    assert "champion_risk" in [factor.name for factor in state.risk_factors]
    await end_journey(handle)


async def test_a_malformed_request_fails_the_journey_naming_the_fields(world: Any) -> None:
    handle = await world.client.start_workflow(
        "RetentionJourney",
        {"customer_id": "bad id!", "options": {"time_scale": -1}},
        id=f"retention-bad-{uuid4().hex[:8]}",
        task_queue=world.task_queue,
    )

    with pytest.raises(WorkflowFailureError) as failed:
        await handle.result()

    message = str(failed.value.cause)
    assert "invalid JourneyRequest" in message
    assert "customer_id" in message and "options.time_scale" in message


async def test_a_journey_is_found_by_its_stage_from_the_start_without_a_command_of_its_own(
    world: Any,
) -> None:
    handle = await start(world, nurture_customer())
    await until_planned(world, handle)
    history = await handle.fetch_history()
    started = history.events[0].workflow_execution_started_event_attributes
    first_stage = started.search_attributes.indexed_fields[search_attributes.JOURNEY_STAGE.name]
    assert PayloadConverter.default.from_payload(first_stage) == "assessing"
    upserted = [
        e.upsert_workflow_search_attributes_event_attributes.search_attributes.indexed_fields
        for e in history.events
        if e.event_type == EventType.EVENT_TYPE_UPSERT_WORKFLOW_SEARCH_ATTRIBUTES
    ]
    stages = [
        PayloadConverter.default.from_payload(fields[search_attributes.JOURNEY_STAGE.name])
        for fields in upserted
        if search_attributes.JOURNEY_STAGE.name in fields
    ]
    assert stages == ["waiting"]  # settled once planned; "assessing" was set by the start
    await end_journey(handle)


async def test_a_new_journey_asks_one_patch_and_shows_its_plan_in_one_upsert(world: Any) -> None:
    handle = await start(world, nurture_customer())
    await until(world, handle, lambda state: any(s.status == "done" for s in state.steps))
    history = await handle.fetch_history()

    patches = [
        json.loads(e.marker_recorded_event_attributes.details["patch-data"].payloads[0].data)["id"]
        for e in history.events
        if e.event_type == EventType.EVENT_TYPE_MARKER_RECORDED
    ]
    assert patches == [PATCHES_FOLDED]  # every earlier patch on, none asked
    upserted = [
        set(e.upsert_workflow_search_attributes_event_attributes.search_attributes.indexed_fields)
        for e in history.events
        if e.event_type == EventType.EVENT_TYPE_UPSERT_WORKFLOW_SEARCH_ATTRIBUTES
    ]
    plan_shown = {
        search_attributes.STRATEGY.name,
        search_attributes.CHURN_PROBABILITY.name,
        search_attributes.JOURNEY_STAGE.name,
    }
    assert upserted == [{"TemporalChangeVersion"}, upserted[1]]
    assert plan_shown <= upserted[1]  # the scores and the stage after them, together
    await end_journey(handle)


async def test_a_second_start_for_the_same_customer_is_refused(world: Any) -> None:
    customer = nurture_customer()
    handle = await start(world, customer)

    with pytest.raises(Exception, match="already"):
        await start(world, customer)
    await end_journey(handle)


async def test_a_retried_delivery_leaves_exactly_one_outbox_row(
    time_skipping_env: WorkflowEnvironment,
    engine: Engine,
    journey_activities: list[Callable[..., Any]],
) -> None:
    activities = dying_once(journey_activities, "deliver")

    async with running_worker(time_skipping_env.client, activities) as task_queue:
        customer = nurture_customer()
        final: JourneyState = await time_skipping_env.client.execute_workflow(
            RetentionJourney.run,
            JourneyRequest(customer=customer),
            id=f"retention-{customer.customer_id}",
            task_queue=task_queue,
        )

    rows = list_outbox(engine, final.journey_key)
    assert final.outcome in {"completed", "recovered"}
    delivered = [s for s in final.steps if s.status == "done"]
    assert delivered and len(rows) == len(delivered)
    assert len({row.idempotency_key for row in rows}) == len(rows)
    assert sorted(r.id for r in rows) == sorted(s.outbox_id for s in delivered)
