"""PortfolioScan: score every customer in the database and start journeys for the at-risk.

Up to `parallel_pages` pages per run: a cheap activity plans where the pages end (ids only),
the pages are scored at once on the heavy task queue (each an activity that heartbeats per
batch, so several heavy workers share a run), each page's at-risk customers' journeys are started
once it is scored (an activity holding the Temporal client), the figures are added up in page
order and recorded, then the scan continues as new with the cursor and the running totals.
However many customers there are, no run's history grows beyond a handful of events per page.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError

with workflow.unsafe.imports_passed_through():
    from activities.scan import JourneyStarter, ScanActivities
    from retention.scan.requests import (
        SCAN_WORKFLOW_TYPE,
        PageRequest,
        PlanRequest,
        ScanRequest,
        ScanResult,
        ScanStatus,
        ScoredPage,
        StartedJourneys,
        StartRequest,
    )

# Scans started before pages were scored in parallel replay their one page per run without it.
PARALLEL_PAGES_PATCH = "scan-parallel-pages"
# A page of 500 scores in seconds; a stuck worker is noticed by its missing heartbeats.
PAGE_TIMEOUT = timedelta(minutes=30)
PAGE_HEARTBEAT = timedelta(minutes=2)
PAGE_RETRY = RetryPolicy(maximum_attempts=5, non_retryable_error_types=["RulebookError"])
PLAN_TIMEOUT = timedelta(minutes=2)  # ids only, at most 16 pages' worth
RECORD_TIMEOUT = timedelta(seconds=30)

# (after, until) of a page: the customers after one id, up to another (None: a page's worth)
PageRange = tuple[str | None, str | None]


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
            first = self._progress.pages + 1
            pages = [
                asyncio.create_task(self._page(number, bounds))
                for number, bounds in enumerate(await self._plan(), start=first)
            ]
            # In page order, as the pages come one by one: the same figures and the same first
            # failures listed, whichever page finishes first.
            for scoring in pages:
                page, starts = await scoring
                self._progress = self._progress.with_figures(self._progress.plus(page, starts))
        except ActivityError as err:
            await self._record("failed")
            raise ApplicationError(f"portfolio scan failed: {err.cause or err}") from err
        if page.read < request.page_size:  # the last page
            return await self._record("completed")
        await self._record("running")
        workflow.continue_as_new(self._next_run(page))

    @workflow.query
    def progress(self) -> ScanResult:
        return self._progress

    async def _plan(self) -> list[PageRange]:
        """This run's pages: the planned ones in full, then an open one, the `page_size`
        customers after them, as a one-page run reads: a full one means the scan goes on."""
        after = self._request.after
        if self._request.parallel_pages == 1 or not workflow.patched(PARALLEL_PAGES_PATCH):
            return [(after, None)]
        plan = await workflow.execute_activity_method(
            ScanActivities.plan_pages,
            PlanRequest(
                after=after,
                page_size=self._request.page_size,
                pages=self._request.parallel_pages - 1,
            ),
            start_to_close_timeout=PLAN_TIMEOUT,
            retry_policy=PAGE_RETRY,
            summary=f"plan {self._request.parallel_pages} pages after {after or 'start'}",
        )
        starts = [after, *plan.ends]
        return [*zip(starts, plan.ends, strict=False), (starts[-1], None)]

    async def _page(self, number: int, page: PageRange) -> tuple[ScoredPage, StartedJourneys]:
        scored = await self._score_page(number, page)
        return scored, await self._start_journeys(scored)

    async def _score_page(self, number: int, page: PageRange) -> ScoredPage:
        after, until = page
        return await workflow.execute_activity_method(
            ScanActivities.score_page,
            PageRequest(
                scan_id=self._progress.scan_id,
                page=number,
                after=after,
                page_size=self._request.page_size,
                until=until,
            ),
            task_queue=self._request.heavy_task_queue,
            start_to_close_timeout=PAGE_TIMEOUT,
            heartbeat_timeout=PAGE_HEARTBEAT,
            retry_policy=PAGE_RETRY,
            summary=f"score page {number} after {after or 'start'}",
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
            parallel_pages=self._request.parallel_pages,
            scan_id=p.scan_id,
            started_at=p.started_at,
            after=page.last_customer_id,
            figures=p.figures,
            runs=p.runs + 1,
            heavy_task_queue=self._request.heavy_task_queue,
        )
