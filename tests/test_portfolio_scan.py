"""The portfolio scan on a real Temporal dev server (`temporal server start-dev`): thousands of
generated customers, the schedule, and real journeys for a handful."""

from __future__ import annotations

import concurrent.futures
import os
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any
from uuid import uuid4

import pytest
from conftest import RULES_DIR
from populations import at_risk_by_rules, save_customers_bulk
from scan_fakes import RunningJourney
from sqlalchemy import Engine
from temporalio.client import Client
from temporalio.worker import Worker

from retention.devserver import free_port, start_dev_server, stop
from retention.journey import journey_id
from retention.model.generator import generate_population
from retention.model.scorer import ModelScorer, load_scorer
from retention.rulebook.loader import load_rulebook
from retention.scan.models import ScanRequest, ScanResult
from retention.settings import ROOT
from retention.store.scans import list_scan_runs
from retention.temporal import connect
from worker import build_scan_activities
from workflows.portfolio_scan import PortfolioScan

pytestmark = [pytest.mark.timeout(600)]

POPULATION = int(os.environ.get("SCAN_TEST_POPULATION", "5000"))


@pytest.fixture
async def dev_client(tmp_path: Path) -> AsyncIterator[Client]:
    """A fresh `temporal server start-dev` (schedules need the real server)."""
    port = free_port()
    server = start_dev_server(tmp_path / "temporal.db", port=port, ui_port=free_port())
    try:
        yield await connect(address=f"127.0.0.1:{port}")
    finally:
        stop(server)


@pytest.fixture(scope="module")
def shipped_scorer() -> ModelScorer:
    scorer = load_scorer(ROOT / "models" / "churn-default")
    assert scorer is not None
    return scorer


@asynccontextmanager
async def scan_worker(
    client: Client, workflows: list[type], activities: list[Callable[..., Any]], task_queue: str
) -> AsyncIterator[None]:
    with concurrent.futures.ThreadPoolExecutor(max_workers=4) as executor:
        async with Worker(
            client,
            task_queue=task_queue,
            workflows=workflows,
            activities=activities,
            activity_executor=executor,
        ):
            yield


async def run_scan(client: Client, task_queue: str, page_size: int) -> ScanResult:
    return await client.execute_workflow(
        PortfolioScan.run,
        ScanRequest(page_size=page_size),
        id=f"scan-{uuid4()}",
        task_queue=task_queue,
    )


async def running_journeys(client: Client) -> list[str]:
    """Workflow ids of every running journey, one entry per execution."""
    query = 'WorkflowType="RetentionJourney" AND ExecutionStatus="Running"'
    return [execution.id async for execution in client.list_workflows(query)]


async def until_visible(client: Client, count: int) -> list[str]:
    """Visibility trails the starts by a moment: poll until it has caught up."""
    import asyncio

    for _ in range(120):
        found = await running_journeys(client)
        if len(found) >= count:
            return found
        await asyncio.sleep(0.5)
    return await running_journeys(client)


@pytest.mark.database
async def test_a_scan_of_5000_starts_each_at_risk_customer_once_and_a_second_starts_none(
    dev_client: Client, engine: Engine, shipped_scorer: ModelScorer
) -> None:
    customers = generate_population(POPULATION, seed=7).customers
    save_customers_bulk(engine, customers)
    expected = at_risk_by_rules(customers, load_rulebook(RULES_DIR), shipped_scorer)
    assert 0 < len(expected) < POPULATION  # the population holds both kinds
    task_queue = f"scan-{uuid4()}"
    activities = build_scan_activities(engine, RULES_DIR, dev_client, task_queue, shipped_scorer)
    async with scan_worker(dev_client, [RunningJourney, PortfolioScan], activities, task_queue):
        first = await run_scan(dev_client, task_queue, page_size=900)
        journeys = await until_visible(dev_client, len(expected))
        second = await run_scan(dev_client, task_queue, page_size=900)

    assert first.status == "completed"
    assert (first.scored, first.at_risk, first.started) == (
        POPULATION,
        len(expected),
        len(expected),
    )
    assert (first.skipped, first.failed) == (0, 0)
    assert sorted(journeys) == sorted(journey_id(c) for c in expected)  # exactly them, once each
    assert first.pages == first.runs == -(-POPULATION // 900)  # continued as new after each page
    assert second.status == "completed"
    assert (second.scored, second.at_risk) == (POPULATION, len(expected))
    assert (second.started, second.skipped, second.failed) == (0, len(expected), 0)
    assert len(await running_journeys(dev_client)) == len(expected)
    recorded = {run.id: run for run in list_scan_runs(engine)}
    for result in (first, second):
        row = recorded[result.scan_id]
        assert row.status == "completed" and row.finished_at is not None
        assert (row.scored, row.at_risk, row.started, row.skipped, row.failed, row.runs) == (
            result.scored,
            result.at_risk,
            result.started,
            result.skipped,
            result.failed,
            result.runs,
        )
