"""The model-retrain workflow's contract and the Temporal Schedule that runs it.

Light on purpose (no XGBoost): the worker, starter.py and the workflow all import it.
`ensure_retrain_schedule` is create-or-update (retention.runtime.schedules), so every worker
start may call it.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Literal

from pydantic import BaseModel, Field
from temporalio.client import Client

from retention.runtime.schedules import keep_schedule

RETRAIN_WORKFLOW_TYPE = "ModelRetrain"
SCHEDULE_ID = "model-retrain"


class RetrainRequest(BaseModel):
    seed: int = Field(default=1, description="splits and trees follow it")
    as_of: date | None = Field(default=None, description="label as of this day; None: today")
    heavy_task_queue: str | None = Field(
        default=None,
        description="where its heavy activities run (worker.py --role heavy); None: its own queue",
    )


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


async def ensure_retrain_schedule(
    client: Client, task_queue: str, every: timedelta | None, heavy_task_queue: str | None = None
) -> str:
    """The `model-retrain` schedule at `every` (None or 0, RETENTION_MODEL_RETRAIN_EVERY=off:
    deleted), training on `heavy_task_queue`. Says what it did."""
    request = RetrainRequest(heavy_task_queue=heavy_task_queue)
    return await keep_schedule(
        client, SCHEDULE_ID, RETRAIN_WORKFLOW_TYPE, request, every, task_queue
    )


def manual_retrain_id(now: datetime) -> str:
    """A run started by hand (`model retrain --now`), named by its start time."""
    return f"{SCHEDULE_ID}-now-{now:%Y%m%dT%H%M%S%f}"
