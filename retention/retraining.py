"""The model-retrain workflow's contract: its type, its schedule's id, its request and result.

Light on purpose (no XGBoost): the worker, starter.py and the workflow all import it. The
Temporal Schedule that runs it is kept by retention/model/schedule.py.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Literal

from pydantic import BaseModel, Field

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


def manual_retrain_id(now: datetime) -> str:
    """A run started by hand (`model retrain --now`), named by its start time."""
    return f"{SCHEDULE_ID}-now-{now:%Y%m%dT%H%M%S%f}"
