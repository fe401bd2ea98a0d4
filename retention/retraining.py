"""The model-retrain workflow's contract and the Temporal Schedule that runs it.

Light on purpose (no XGBoost): the worker, starter.py and the workflow all import it.
`ensure_retrain_schedule` is create-or-update, so every worker start may call it.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Literal

from pydantic import BaseModel, Field
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

RETRAIN_WORKFLOW_TYPE = "ModelRetrain"
SCHEDULE_ID = "model-retrain"


class RetrainRequest(BaseModel):
    seed: int = Field(default=1, description="splits and trees follow it")
    as_of: date | None = Field(default=None, description="label as of this day; None: today")


class RetrainDecision(BaseModel):
    version: str = Field(description="the challenger's model version")
    path: str
    champion_version: str
    decision: Literal["promoted", "kept"]
    reason: str
    holdout_rows: int
    challenger_auc: float
    champion_auc: float
    challenger_ece: float
    champion_ece: float


def _schedule(task_queue: str, every: timedelta) -> Schedule:
    return Schedule(
        action=ScheduleActionStartWorkflow(
            RETRAIN_WORKFLOW_TYPE, RetrainRequest(), id=SCHEDULE_ID, task_queue=task_queue
        ),
        spec=ScheduleSpec(intervals=[ScheduleIntervalSpec(every=every)]),
        # A retrain still running when the next is due: skip the next, never stack them.
        policy=SchedulePolicy(overlap=ScheduleOverlapPolicy.SKIP),
    )


async def ensure_retrain_schedule(client: Client, task_queue: str, every: timedelta | None) -> str:
    """Create the `model-retrain` schedule, or bring an existing one to `every` and
    `task_queue`; `every` None (RETENTION_MODEL_RETRAIN_EVERY=off) deletes it. Says what it did."""
    handle = client.get_schedule_handle(SCHEDULE_ID)
    if every is None:
        try:
            await handle.delete()
        except RPCError as exc:
            if exc.status != RPCStatusCode.NOT_FOUND:
                raise
            return "model-retrain schedule off"
        return "model-retrain schedule deleted (off)"
    schedule = _schedule(task_queue, every)
    try:
        await client.create_schedule(SCHEDULE_ID, schedule)
        return f"model-retrain schedule created: every {every}"
    except ScheduleAlreadyRunningError:

        def updated(_: ScheduleUpdateInput) -> ScheduleUpdate:
            return ScheduleUpdate(schedule=schedule)

        await handle.update(updated)
        return f"model-retrain schedule updated: every {every}"


def manual_retrain_id(now: datetime) -> str:
    """A run started by hand (`model retrain --now`), named by its start time."""
    return f"{SCHEDULE_ID}-now-{now:%Y%m%dT%H%M%S%f}"
