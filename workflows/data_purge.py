"""The daily purge: personal data older than its category's period leaves the database."""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy

with workflow.unsafe.imports_passed_through():
    from activities.privacy import PrivacyActivities, PurgeRequest
    from retention.store.purge import Purge

PURGE_TIMEOUT = timedelta(minutes=30)
PURGE_RETRY = RetryPolicy(maximum_interval=timedelta(minutes=10), maximum_attempts=5)


@workflow.defn(name="DataPurge")
class DataPurge:
    @workflow.run
    async def run(self, request: PurgeRequest) -> Purge:
        workflow.set_current_details("deleting personal data older than the settings keep")
        return await workflow.execute_activity_method(
            PrivacyActivities.purge,
            request,
            start_to_close_timeout=PURGE_TIMEOUT,
            retry_policy=PURGE_RETRY,
            summary="delete rows past their retention period",
        )
