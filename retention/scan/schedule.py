"""The `portfolio-scan` Temporal Schedule, and running a scan now (`starter.py scan --now`)."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import timedelta

from temporalio.client import (
    Client,
    ScheduleActionExecution,
    ScheduleActionExecutionStartWorkflow,
    WorkflowHandle,
)
from temporalio.common import WorkflowIDConflictPolicy
from temporalio.service import RPCError, RPCStatusCode

from retention.runtime.operations import JourneyOperationError
from retention.runtime.schedules import keep_schedule
from retention.runtime.settings import Settings
from retention.scan.requests import SCAN_WORKFLOW_TYPE, SCHEDULE_ID, ScanRequest, ScanResult

MANUAL_SCAN_ID = "portfolio-scan-manual"  # `scan --now` without a schedule
TRIGGER_WAIT = timedelta(seconds=30)


async def keep_scan_schedule(client: Client, settings: Settings) -> str:
    """Create the schedule or bring it up to date with the settings (every worker does this at
    start); an interval of 0 (`off`) removes it. Says what it did."""
    return await keep_schedule(
        client,
        SCHEDULE_ID,
        SCAN_WORKFLOW_TYPE,
        scan_request(settings),
        settings.portfolio_scan_every,
        settings.task_queue,
    )


async def scan_now(client: Client, settings: Settings) -> WorkflowHandle[object, ScanResult]:
    """Trigger the schedule and return the scan it starts (or the one still running, which the
    overlap policy lets finish); without a schedule, start a scan directly."""
    schedule = client.get_schedule_handle(SCHEDULE_ID)
    try:
        before = await schedule.describe()
    except RPCError as exc:
        if exc.status != RPCStatusCode.NOT_FOUND:
            raise
        return await start_scan(client, settings.task_queue, scan_request(settings))
    if running := _workflow_ids(before.info.running_actions):
        return _handle(client, running[0])
    seen = set(_workflow_ids([result.action for result in before.info.recent_actions]))
    await schedule.trigger()
    deadline = asyncio.get_running_loop().time() + TRIGGER_WAIT.total_seconds()
    while asyncio.get_running_loop().time() < deadline:
        info = (await schedule.describe()).info
        started = _workflow_ids([*info.running_actions, *(r.action for r in info.recent_actions)])
        if new := [workflow_id for workflow_id in started if workflow_id not in seen]:
            return _handle(client, new[0])
        await asyncio.sleep(0.5)
    raise JourneyOperationError(
        f"schedule {SCHEDULE_ID} was triggered but started no scan within "
        f"{TRIGGER_WAIT.total_seconds():g} s"
    )


def scan_request(settings: Settings) -> ScanRequest:
    """A scan as the settings configure it: page size, pages at once, where pages are scored."""
    return ScanRequest(
        page_size=settings.portfolio_scan_page_size,
        parallel_pages=settings.portfolio_scan_parallel_pages,
        heavy_task_queue=settings.heavy_task_queue,
    )


async def start_scan(
    client: Client, task_queue: str, request: ScanRequest
) -> WorkflowHandle[object, ScanResult]:
    """Start a scan without the schedule (or return the one already running by hand)."""
    return await client.start_workflow(
        SCAN_WORKFLOW_TYPE,
        request,
        id=MANUAL_SCAN_ID,
        task_queue=task_queue,
        result_type=ScanResult,
        id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
        static_summary="Portfolio scan (started by hand)",
    )


def _workflow_ids(actions: Sequence[ScheduleActionExecution]) -> list[str]:
    return [a.workflow_id for a in actions if isinstance(a, ScheduleActionExecutionStartWorkflow)]


def _handle(client: Client, workflow_id: str) -> WorkflowHandle[object, ScanResult]:
    """The scan's latest run: its result follows continue-as-new to the end of the chain."""
    return client.get_workflow_handle(workflow_id, result_type=ScanResult)
