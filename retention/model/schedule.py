"""The `model-retrain` Temporal Schedule. `ensure_retrain_schedule` is create-or-update
(retention.runtime.schedules), so every worker start may call it. Light (no XGBoost), like the
contract it schedules (retention/retraining.py)."""

from __future__ import annotations

from datetime import timedelta

from temporalio.client import Client

from retention.retraining import RETRAIN_WORKFLOW_TYPE, SCHEDULE_ID, RetrainRequest
from retention.runtime.schedules import keep_schedule


async def ensure_retrain_schedule(
    client: Client, task_queue: str, every: timedelta | None, heavy_task_queue: str | None = None
) -> str:
    """The `model-retrain` schedule at `every` (None or 0, RETENTION_MODEL_RETRAIN_EVERY=off:
    deleted), training on `heavy_task_queue`. Says what it did."""
    request = RetrainRequest(heavy_task_queue=heavy_task_queue)
    return await keep_schedule(
        client, SCHEDULE_ID, RETRAIN_WORKFLOW_TYPE, request, every, task_queue
    )
