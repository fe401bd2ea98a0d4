"""The `crm-sync` schedule's work: push the CSM tasks due a push to the CRM, and read back the
ones Salesforce closed (HubSpot tells the ingest service instead). See docs/crm.md."""

from __future__ import annotations

from collections import Counter

from pydantic import BaseModel, Field
from sqlalchemy import Engine
from temporalio import activity

from retention.crm.poll import poll_completions
from retention.crm.salesforce import SalesforceCrm
from retention.crm.sync import SWEEP_LIMIT, CrmSync
from retention.crm.tasks import CrmUnavailable
from retention.store.tables import utcnow


class CrmSyncRequest(BaseModel):
    limit: int = Field(default=SWEEP_LIMIT, ge=1, le=10_000, description="tasks pushed a run")


class CrmSyncReport(BaseModel):
    crm: str | None = Field(description="None: this worker has no CRM configured")
    pushed: dict[str, int] = Field(default_factory=dict, description="by the status they got")
    completed: list[int] = Field(default_factory=list, description="tasks closed in the CRM")
    poll_error: str | None = None


class CrmActivities:
    def __init__(self, engine: Engine, sync: CrmSync | None) -> None:
        self._engine = engine
        self._sync = sync

    @activity.defn(name="sync_crm")
    def sync_crm(self, request: CrmSyncRequest) -> CrmSyncReport:
        if self._sync is None:
            return CrmSyncReport(crm=None)
        pushed = self._sync.push_due(limit=request.limit)
        report = CrmSyncReport(
            crm=self._sync.crm.name, pushed=dict(Counter(r.status for r in pushed))
        )
        if isinstance(self._sync.crm, SalesforceCrm):
            try:
                done = poll_completions(self._engine, self._sync.crm, utcnow())
            except CrmUnavailable as exc:  # the next run reads from the same mark
                activity.logger.warning("%s", exc)
                return report.model_copy(update={"poll_error": str(exc)})
            report.completed = [t.id for t in done if t.id is not None]
        return report
