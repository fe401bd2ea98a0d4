"""PortfolioScan: score every customer in the database and start journeys for the at-risk.

One page per run: score it (an activity that heartbeats per batch), start the at-risk
customers' journeys (an activity holding the Temporal client), record the figures, then
continue as new with the cursor and the running totals. However many customers there are, no
run's history grows beyond one page's handful of events.
"""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError

with workflow.unsafe.imports_passed_through():
    from activities.scan import JourneyStarter, ScanActivities
    from retention.scan.models import (
        SCAN_WORKFLOW_TYPE,
        PageRequest,
        ScanRequest,
        ScanResult,
        ScanStatus,
        ScoredPage,
        StartedJourneys,
        StartRequest,
    )

# A page of 500 scores in seconds; a stuck worker is noticed by its missing heartbeats.
PAGE_TIMEOUT = timedelta(minutes=30)
PAGE_HEARTBEAT = timedelta(minutes=2)
PAGE_RETRY = RetryPolicy(maximum_attempts=5, non_retryable_error_types=["RulebookError"])
RECORD_TIMEOUT = timedelta(seconds=30)


@workflow.defn(name=SCAN_WORKFLOW_TYPE)
class PortfolioScan:
    @workflow.init
    def __init__(self, request: ScanRequest) -> None:
        info = workflow.info()
        self._request = request
        self._progress = ScanResult(
            **request.figures.model_dump(),
            scan_id=request.scan_id or info.run_id,
            workflow_id=info.workflow_id,
            status="running",
            started_at=request.started_at or workflow.now(),
            runs=request.runs,
        )

    @workflow.run
    async def run(self, request: ScanRequest) -> ScanResult:
        try:
            page = await self._score_page()
            starts = await self._start_journeys(page)
        except ActivityError as err:
            await self._record("failed")
            raise ApplicationError(f"portfolio scan failed: {err.cause or err}") from err
        self._progress = self._progress.with_figures(self._progress.plus(page, starts))
        if page.read < request.page_size:  # the last page
            return await self._record("completed")
        await self._record("running")
        workflow.continue_as_new(self._next_run(page))

    @workflow.query
    def progress(self) -> ScanResult:
        return self._progress

    async def _score_page(self) -> ScoredPage:
        return await workflow.execute_activity_method(
            ScanActivities.score_page,
            PageRequest(
                scan_id=self._progress.scan_id,
                page=self._progress.pages + 1,
                after=self._request.after,
                page_size=self._request.page_size,
            ),
            task_queue=self._request.heavy_task_queue,
            start_to_close_timeout=PAGE_TIMEOUT,
            heartbeat_timeout=PAGE_HEARTBEAT,
            retry_policy=PAGE_RETRY,
            summary=f"score page {self._progress.pages + 1} after {self._request.after or 'start'}",
        )

    async def _start_journeys(self, page: ScoredPage) -> StartedJourneys:
        if not page.at_risk_ids:
            return StartedJourneys()
        return await workflow.execute_activity_method(
            JourneyStarter.start_journeys,
            StartRequest(
                scan_id=self._progress.scan_id, page=page.page, customer_ids=page.at_risk_ids
            ),
            start_to_close_timeout=PAGE_TIMEOUT,
            heartbeat_timeout=PAGE_HEARTBEAT,
            retry_policy=PAGE_RETRY,
            summary=f"start journeys for {len(page.at_risk_ids)} at-risk customers",
        )

    async def _record(self, status: ScanStatus) -> ScanResult:
        finished = workflow.now() if status != "running" else None
        self._progress = self._progress.model_copy(
            update={"status": status, "finished_at": finished}
        )
        await workflow.execute_activity_method(
            ScanActivities.record_scan,
            self._progress,
            start_to_close_timeout=RECORD_TIMEOUT,
            summary=f"record scan {status}",
        )
        return self._progress

    def _next_run(self, page: ScoredPage) -> ScanRequest:
        p = self._progress
        return ScanRequest(
            page_size=self._request.page_size,
            scan_id=p.scan_id,
            started_at=p.started_at,
            after=page.last_customer_id,
            figures=p.figures,
            runs=p.runs + 1,
            heavy_task_queue=self._request.heavy_task_queue,
        )
