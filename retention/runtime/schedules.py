"""Temporal Schedules the worker keeps in place: created when missing, updated to the settings
when they changed (every worker start may call it), deleted when the setting turns them off."""

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


def _schedule(
    schedule_id: str, workflow: str, arg: BaseModel, every: timedelta, task_queue: str
) -> Schedule:
    return Schedule(
        action=ScheduleActionStartWorkflow(workflow, arg, id=schedule_id, task_queue=task_queue),
        spec=ScheduleSpec(intervals=[ScheduleIntervalSpec(every=every)]),
        # a run still going when the next is due: skip the next, never stack them
        policy=SchedulePolicy(overlap=ScheduleOverlapPolicy.SKIP),
    )


async def keep_schedule(
    client: Client,
    schedule_id: str,
    workflow: str,
    arg: BaseModel,
    every: timedelta | None,
    task_queue: str,
) -> str:
    """Make `schedule_id` start `workflow(arg)` every `every` (None or 0: no schedule); says
    what it did, e.g. `data-purge schedule created: every 1 day, 0:00:00`."""
    handle = client.get_schedule_handle(schedule_id)
    if every is None or every <= timedelta(0):
        try:
            await handle.delete()
        except RPCError as exc:
            if exc.status != RPCStatusCode.NOT_FOUND:
                raise
            return f"{schedule_id} schedule off"
        return f"{schedule_id} schedule deleted (off)"
    wanted = _schedule(schedule_id, workflow, arg, every, task_queue)
    try:
        await client.create_schedule(schedule_id, wanted)
        return f"{schedule_id} schedule created: every {every}"
    except ScheduleAlreadyRunningError:

        def update(_: ScheduleUpdateInput) -> ScheduleUpdate:
            return ScheduleUpdate(schedule=wanted)

        await handle.update(update)
        return f"{schedule_id} schedule updated: every {every}"
