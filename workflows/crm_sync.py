"""The `crm-sync` schedule: CSM tasks into the CRM, Salesforce completions back (docs/crm.md)."""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy

with workflow.unsafe.imports_passed_through():
    from activities.crm import CrmActivities, CrmSyncReport, CrmSyncRequest

# Each push has its own timeout (RETENTION_CRM_TIMEOUT_SECONDS); a full run of them fits here.
SYNC_TIMEOUT = timedelta(minutes=30)
SYNC_RETRY = RetryPolicy(maximum_interval=timedelta(minutes=5), maximum_attempts=3)


@workflow.defn(name="CrmSync")
class CrmSyncWorkflow:
    @workflow.run
    async def run(self, request: CrmSyncRequest) -> CrmSyncReport:
        workflow.set_current_details("pushing CSM tasks to the CRM, reading completions back")
        return await workflow.execute_activity_method(
            CrmActivities.sync_crm,
            request,
            start_to_close_timeout=SYNC_TIMEOUT,
            retry_policy=SYNC_RETRY,
            summary="push due CSM tasks; poll Salesforce completions",
        )
