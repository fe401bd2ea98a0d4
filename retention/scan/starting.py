"""Journeys for a page's at-risk customers, started through the Temporal client.

A journey already running counts as skipped, never as failed. Each journey the scan starts
carries the scan in its memo, so a retried activity recognises the journeys its own earlier
attempt started and counts them as started, not skipped.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from typing import Literal

from temporalio.client import Client

from retention.errors import InvalidInput
from retention.journey_state import JourneyOptions, journey_id
from retention.runtime.operations import (
    JourneyAlreadyRunning,
    JourneyOperationError,
    TemporalUnreachable,
    WorkerUnavailable,
    start_journey,
)
from retention.scan.requests import ScanFailure, StartedJourneys

STARTED_BY = "started_by"  # memo key: the scan that started the journey
CONCURRENT_STARTS = 16
BATCH = 100  # customers per heartbeat

Outcome = tuple[Literal["started", "skipped", "failed"], str]


async def start_journeys(
    client: Client,
    customer_ids: Sequence[str],
    *,
    scan_id: str,
    task_queue: str,
    retried: bool,
    heartbeat: Callable[[int], None] = lambda done: None,
) -> StartedJourneys:
    """Start `retention-{id}` for each customer; `retried`: an earlier attempt may have
    started some of them already. Temporal being unreachable raises (the activity retries)."""
    limit = asyncio.Semaphore(CONCURRENT_STARTS)
    memo = {STARTED_BY: scan_key(scan_id)}

    async def start_one(customer_id: str) -> Outcome:
        async with limit:
            try:
                await start_journey(
                    client, None, customer_id, JourneyOptions(), task_queue=task_queue, memo=memo
                )
                return "started", ""
            except JourneyAlreadyRunning:
                mine = retried and await _started_by(client, customer_id) == memo[STARTED_BY]
                return ("started" if mine else "skipped"), ""
            except (InvalidInput, JourneyOperationError) as exc:
                if _transient(exc):
                    raise
                return "failed", str(exc)

    result = StartedJourneys()
    for offset in range(0, len(customer_ids), BATCH):
        batch = customer_ids[offset : offset + BATCH]
        outcomes = await asyncio.gather(*(start_one(customer_id) for customer_id in batch))
        for customer_id, (outcome, reason) in zip(batch, outcomes, strict=True):
            if outcome == "started":
                result.started += 1
            elif outcome == "skipped":
                result.skipped += 1
            else:
                result.failures.append(ScanFailure(customer_id=customer_id, reason=reason))
        heartbeat(offset + len(batch))
    return result


def scan_key(scan_id: str) -> str:
    return f"portfolio-scan/{scan_id}"


async def _started_by(client: Client, customer_id: str) -> str | None:
    description = await client.get_workflow_handle(journey_id(customer_id)).describe()
    found = await description.memo_value(STARTED_BY, None)
    return found if isinstance(found, str) else None


def _transient(exc: Exception) -> bool:
    """Unreachable server or no worker: the whole page is retried, not counted as failures."""
    return isinstance(exc, TemporalUnreachable | WorkerUnavailable)
