"""Temporal Schedules the worker keeps in place: created when missing, updated to the settings
when they changed, deleted when the setting turns them off (an interval of 0)."""

from __future__ import annotations

from datetime import timedelta

from pydantic import BaseModel
from temporalio.client import (
    Client,
    Schedule,
    ScheduleActionStartWorkflow,
    ScheduleAlreadyRunningError,
    ScheduleIntervalSpec,
    ScheduleOverlapPolicy,
    SchedulePolicy,
    ScheduleSpec,
    ScheduleUpdate,
    ScheduleUpdateInput,
)
from temporalio.service import RPCError, RPCStatusCode


def _schedule(workflow: str, arg: BaseModel, every: timedelta, task_queue: str) -> Schedule:
    return Schedule(
        action=ScheduleActionStartWorkflow(
            workflow, arg, id=workflow_id(workflow), task_queue=task_queue
        ),
        spec=ScheduleSpec(intervals=[ScheduleIntervalSpec(every=every)]),
        # a run still going when the next is due: skip the next, never pile up
        policy=SchedulePolicy(overlap=ScheduleOverlapPolicy.SKIP),
    )


def workflow_id(workflow: str) -> str:
    return f"scheduled-{workflow}"


async def keep_schedule(
    client: Client,
    schedule_id: str,
    workflow: str,
    arg: BaseModel,
    every: timedelta,
    task_queue: str,
) -> str:
    """Make the schedule `schedule_id` start `workflow(arg)` every `every`; returns what it did:
    created, updated, removed or off."""
    handle = client.get_schedule_handle(schedule_id)
    if every <= timedelta(0):
        try:
            await handle.delete()
        except RPCError as exc:
            if exc.status != RPCStatusCode.NOT_FOUND:
                raise
            return "off"
        return "removed"
    wanted = _schedule(workflow, arg, every, task_queue)
    try:
        await client.create_schedule(schedule_id, wanted)
        return "created"
    except ScheduleAlreadyRunningError:

        def update(_: ScheduleUpdateInput) -> ScheduleUpdate:
            return ScheduleUpdate(schedule=wanted)

        await handle.update(update)
        return "updated"
