"""Record a journey's progress and outcome, and who did what, in the database."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field, model_validator
from sqlalchemy import Engine
from temporalio import activity

from retention.journey import JourneyRecord, JourneyState
from retention.store.records import record_journey
from retention.store.tables import AuditRow


class RecordInput(BaseModel):
    workflow_id: str
    journey: JourneyRecord
    actor: str = Field(description="operator, rule or system")
    action: str
    detail: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="before")
    @classmethod
    def _from_whole_state(cls, data: Any) -> Any:
        """Journeys sent their whole state before records: a write they scheduled still works."""
        if isinstance(data, dict) and "state" in data and "journey" not in data:
            state = JourneyState.model_validate(data["state"])
            data = {**data, "journey": state.as_record()}
            del data["state"]
        return data


class RecordActivities:
    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    @activity.defn(name="record")
    def record(self, request: RecordInput) -> None:
        journey = request.journey
        audit = AuditRow(
            actor=request.actor,
            action=request.action,
            journey_id=request.workflow_id,
            customer_id=journey.customer_id,
            detail=request.detail,
            entry_key=f"{journey.journey_key}:{request.action}",
        )
        record_journey(self._engine, request.workflow_id, journey, audit)
