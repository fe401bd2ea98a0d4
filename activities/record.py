"""Record a journey's progress and outcome, and who did what, in the database."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field
from sqlalchemy import Engine
from temporalio import activity

from retention.journey import JourneyState
from retention.store.records import record_journey
from retention.store.tables import AuditRow


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
        audit = AuditRow(
            actor=request.actor,
            action=request.action,
            journey_id=request.workflow_id,
            customer_id=request.state.customer_id,
            detail=request.detail,
            entry_key=f"{request.state.journey_key}:{request.action}",
        )
        record_journey(self._engine, request.workflow_id, request.state, audit)
