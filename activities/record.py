"""Record a journey's progress and outcome, and who did what, in the database."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field
from sqlalchemy import Engine
from temporalio import activity

from retention.journey import JourneyState
from retention.store.records import append_audit, record_journey


class RecordInput(BaseModel):
    workflow_id: str
    state: JourneyState
    actor: str = Field(description="operator, rule or system")
    action: str
    detail: dict[str, Any] = Field(default_factory=dict)


class RecordActivities:
    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    @activity.defn(name="record")
    def record(self, request: RecordInput) -> None:
        record_journey(self._engine, request.workflow_id, request.state)
        append_audit(
            self._engine,
            request.actor,
            request.action,
            journey_id=request.workflow_id,
            customer_id=request.state.customer_id,
            detail=request.detail,
        )
