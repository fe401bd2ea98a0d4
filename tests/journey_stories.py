"""Customers and helpers for journey stories on the time-skipping server."""

from __future__ import annotations

import functools
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from conftest import JourneyWorld
from factories import customer_id_in_group, make_customer
from temporalio import activity
from temporalio.client import WorkflowHandle

from retention.customer import CustomerSnapshot
from retention.journey_state import CancelRequest, JourneyOptions, JourneyState, StepState
from retention.runtime.operations import start_journey
from workflows.retention_journey import RetentionJourney

AT_RISK = {
    "usage": {"days_since_last_login": 21, "logins_per_week": 1.0, "logins_per_week_prior": 6.0},
    "relationship": {"champion_status": "left", "nps": 3, "executive_engaged": False},
    "financial": {"annual_contract_value": 90_000.0, "payment_delays_90d": 2},
    "support": {"avg_ticket_sentiment": -0.7, "tickets_90d": 6},
}
WAVERING = {"usage": {"days_since_last_login": 10, "logins_per_week": 2.0}}
# Customers who stay on one strategy at every checkpoint (baseline-0 model, no events):
# inactive three weeks and paying late → proactive_engagement (p 0.74); inactive five weeks
# with steady usage → nurture (p 0.45).
DRIFTING = {
    "usage": {"days_since_last_login": 21, "logins_per_week": 1.0, "logins_per_week_prior": 6.0},
    "financial": {"annual_contract_value": 40_000.0, "payment_delays_90d": 2},
}
DORMANT = {
    "usage": {"days_since_last_login": 35, "logins_per_week": 2.0, "logins_per_week_prior": 2.0}
}


def critical_customer(*, held_out: bool = False) -> CustomerSnapshot:
    customer_id = customer_id_in_group("crit", held_out=held_out)
    return make_customer(profile={"customer_id": customer_id}, **AT_RISK)


def nurture_customer(*, held_out: bool = False) -> CustomerSnapshot:
    customer_id = customer_id_in_group("nur", held_out=held_out)
    return make_customer(profile={"customer_id": customer_id}, **WAVERING)


async def start(world: JourneyWorld, customer: CustomerSnapshot, **options: Any) -> WorkflowHandle:
    """Start the way starter.py and `make run` do, on this test's task queue."""
    handle = await start_journey(
        world.client, customer, None, JourneyOptions(**options), task_queue=world.task_queue
    )
    world.journeys.append(handle)
    return handle


async def state_of(handle: WorkflowHandle) -> JourneyState:
    """The state of the journey's latest run (a continue-as-new starts a new run)."""
    latest = handle._client.get_workflow_handle(handle.id)
    return await latest.query(RetentionJourney.state)


async def end_journey(handle: WorkflowHandle) -> None:
    """Cancel and wait for the close, so no journey outlives its test's worker."""
    await handle.execute_update(RetentionJourney.cancel, CancelRequest(reason="test done"))
    assert (await handle.result()).outcome == "cancelled"


async def until(
    world: JourneyWorld, handle: WorkflowHandle, holds: Callable[[JourneyState], bool]
) -> JourneyState:
    """Poll the journey's state until `holds` (activities run in real time, timers do not)."""
    for _ in range(200):
        state = await state_of(handle)
        if holds(state):
            return state
        await world.env.sleep(timedelta(seconds=1))
    raise AssertionError("the journey never reached the expected state")


async def until_planned(world: JourneyWorld, handle: WorkflowHandle) -> JourneyState:
    return await until(world, handle, lambda state: state.strategy is not None)


def dying_once(activities: list[Callable[..., Any]], name: str) -> list[Callable[..., Any]]:
    """`activities` with the one named `name` dying in each first attempt after it did its
    work, writes included: the worker lost between the work and the acknowledgement."""
    real = next(a for a in activities if activity_name(a) == name)

    @functools.wraps(real, updated=())  # its argument types, not its activity definition
    def dying(*args: Any) -> Any:
        result = real(*args)
        if activity.info().attempt == 1:
            raise RuntimeError("worker lost between the work and the acknowledgement")
        return result

    return [a for a in activities if a is not real] + [activity.defn(name=name)(dying)]


def activity_name(fn: Callable[..., Any]) -> str:
    return str(activity._Definition.must_from_callable(fn).name)


async def through_holds(
    world: JourneyWorld, handle: WorkflowHandle, pending: Callable[[JourneyState], StepState | None]
) -> JourneyState:
    """The state once no step `pending` picks is left, sleeping to the end of each frequency
    cap or quiet-hours hold that keeps one back (a cap may hold a step more than once)."""
    for _ in range(20):
        state = await state_of(handle)
        step = pending(state)
        if step is None:
            return state
        now = await world.env.get_current_time()
        await world.env.sleep(max(step.ready_at - now, timedelta(seconds=1)))
    raise AssertionError("the step was held back more than 20 times")
