"""Record a journey's progress and outcome, and who did what, in the database."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field, model_validator
from sqlalchemy import Engine
from temporalio import activity
from temporalio.exceptions import ApplicationError

from retention.delivery.alerting import AlertPoster
from retention.delivery.alerts import CRITICAL_TIER, critical_start_alert
from retention.errors import ProviderUnavailable
from retention.journey_state import JourneyRecord, JourneyState
from retention.store.records import (
    customer_as_known,
    journey_snapshot,
    latest_drivers,
    record_journey,
)
from retention.store.tables import AuditRow

# A Slack that keeps deferring holds the journey's start this many tries at most; the alert is
# then left to `tasks alert-overdue`, which posts what is left unsent.
ALERT_TRIES = 5


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
    def __init__(self, engine: Engine, alerts: AlertPoster | None = None) -> None:
        self._engine = engine
        self._alerts = alerts

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
        if request.action == "journey_started" and journey.risk_tier == CRITICAL_TIER:
            self._alert_critical_start(request.workflow_id, journey)

    def _alert_critical_start(self, workflow_id: str, journey: JourneyRecord) -> None:
        """Tell the CSM in Slack that a journey started in the critical risk tier: once per
        journey (the alert's outbox row), never for a held-out customer."""
        if self._alerts is None or journey.holdout:
            return
        customer = journey_snapshot(self._engine, journey.journey_key) or customer_as_known(
            self._engine, journey.customer_id
        )
        name = customer.profile.company if customer is not None else journey.customer_id
        csm = customer.profile.assigned_csm if customer is not None else None
        url = self._alerts.journey_url(workflow_id)
        drivers = latest_drivers(self._engine, workflow_id)
        try:
            self._alerts.post(critical_start_alert(journey, workflow_id, name, csm, url, drivers))
        except ProviderUnavailable as exc:
            if activity.info().attempt >= ALERT_TRIES:
                activity.logger.warning("critical journey alert left for later: %s", exc)
                return
            raise ApplicationError(
                str(exc), type="ProviderUnavailable", next_retry_delay=exc.retry_after
            ) from exc
