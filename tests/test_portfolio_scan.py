"""The portfolio scan on a real Temporal dev server (`temporal server start-dev`): thousands of
generated customers, the schedule, and real journeys for a handful."""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import os
import re
import sys
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any
from uuid import uuid4

import pytest
from conftest import RULES_DIR, save_histories
from factories import make_customer
from journey_stories import AT_RISK, WAVERING
from populations import at_risk_by_rules, save_customers_bulk, strategies_of
from scan_fakes import RunningJourney
from sqlalchemy import Engine, text
from temporalio import activity
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client, WorkflowFailureError, WorkflowHandle, WorkflowHistory
from temporalio.worker import Replayer, Worker

from retention.customer import CustomerSnapshot
from retention.journey_state import CancelRequest, JourneyState, journey_id
from retention.model.generator import generate_population
from retention.model.scorer import ModelScorer, load_scorer
from retention.rulebook.loader import load_rulebook
from retention.runtime.devserver import free_port, start_dev_server, stop
from retention.runtime.settings import ROOT, Settings
from retention.runtime.temporal import DATA_CONVERTER, connect
from retention.scan.requests import (
    DEFAULT_PARALLEL_PAGES,
    SCHEDULE_ID,
    PageRequest,
    ScanRequest,
    ScanResult,
    ScoredPage,
    StartedJourneys,
    StartRequest,
)
from retention.scan.schedule import MANUAL_SCAN_ID, keep_scan_schedule, scan_now
from retention.scan.starting import start_journeys
from retention.store.db import make_engine, session
from retention.store.scans import list_scan_runs
from retention.store.tables import CustomerRow
from worker import WORKFLOWS, build_activities, build_scan_activities
from workflows.portfolio_scan import PortfolioScan

pytestmark = [pytest.mark.temporal, pytest.mark.timeout(600)]

# Thousands, on six pages of 450: two runs of four pages at once, as 5,000 on pages of 900 were
# at twice the cost of generating, saving, scoring and starting them.
POPULATION = 2_500
PAGE_SIZE = 450
WORKFLOW_TASK_EVENTS = {
    EventType.EVENT_TYPE_WORKFLOW_TASK_SCHEDULED,
    EventType.EVENT_TYPE_WORKFLOW_TASK_STARTED,
    EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED,
    EventType.EVENT_TYPE_WORKFLOW_TASK_FAILED,
    EventType.EVENT_TYPE_WORKFLOW_TASK_TIMED_OUT,
}


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
    client: Client,
    workflows: list[type],
    activities: list[Callable[..., Any]],
    task_queue: str,
    cached_workflows: int = 1000,
) -> AsyncIterator[None]:
    """`cached_workflows=0`: every workflow task replays the history from the start, as after
    a crash of the worker that ran the previous one."""
    with concurrent.futures.ThreadPoolExecutor(max_workers=4) as executor:
        async with Worker(
            client,
            task_queue=task_queue,
            workflows=workflows,
            activities=activities,
            activity_executor=executor,
            max_cached_workflows=cached_workflows,
        ):
            yield


async def start_scan(
    client: Client, task_queue: str, page_size: int, parallel_pages: int = DEFAULT_PARALLEL_PAGES
) -> WorkflowHandle[PortfolioScan, ScanResult]:
    return await client.start_workflow(
        PortfolioScan.run,
        ScanRequest(page_size=page_size, parallel_pages=parallel_pages),
        id=f"scan-{uuid4()}",
        task_queue=task_queue,
    )


async def run_scan(
    client: Client, task_queue: str, page_size: int, parallel_pages: int = DEFAULT_PARALLEL_PAGES
) -> ScanResult:
    return await (await start_scan(client, task_queue, page_size, parallel_pages)).result()


async def running_journeys(client: Client) -> list[str]:
    """Workflow ids of every running journey, one entry per execution."""
    query = 'WorkflowType="RetentionJourney" AND ExecutionStatus="Running"'
    return [execution.id async for execution in client.list_workflows(query)]


async def until_visible(client: Client, count: int) -> list[str]:
    """Visibility trails the starts by a moment: poll until it has caught up."""
    for _ in range(120):
        found = await running_journeys(client)
        if len(found) >= count:
            return found
        await asyncio.sleep(0.5)
    return await running_journeys(client)


@pytest.mark.database
async def test_a_scan_of_thousands_starts_each_at_risk_customer_once_and_a_second_starts_none(
    dev_client: Client, engine: Engine, shipped_scorer: ModelScorer
) -> None:
    customers = generate_population(POPULATION, seed=7).customers
    save_customers_bulk(engine, customers)
    expected = at_risk_by_rules(customers, load_rulebook(RULES_DIR), shipped_scorer)
    assert 0 < len(expected) < POPULATION  # the population holds both kinds
    task_queue = f"scan-{uuid4()}"
    activities = build_scan_activities(engine, RULES_DIR, dev_client, task_queue, shipped_scorer)
    async with scan_worker(dev_client, [RunningJourney, PortfolioScan], activities, task_queue):
        first = await run_scan(dev_client, task_queue, page_size=PAGE_SIZE)
        journeys = await until_visible(dev_client, len(expected))
        second = await run_scan(dev_client, task_queue, page_size=PAGE_SIZE)

    assert first.status == "completed"
    assert (first.scored, first.at_risk, first.started) == (
        POPULATION,
        len(expected),
        len(expected),
    )
    assert (first.skipped, first.failed) == (0, 0)
    assert sorted(journeys) == sorted(journey_id(c) for c in expected)  # exactly them, once each
    assert first.pages == -(-POPULATION // PAGE_SIZE) == 6
    # continued as new after each run's DEFAULT_PARALLEL_PAGES pages
    assert first.runs == -(-first.pages // DEFAULT_PARALLEL_PAGES) == 2
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


def handful() -> list[CustomerSnapshot]:
    """Two critical, one wavering and two healthy customers, with ids of their own."""
    tag = uuid4().hex[:6]
    kinds = [AT_RISK, AT_RISK, WAVERING, {}, {}]
    return [
        make_customer(profile={"customer_id": f"h{n}-{tag}"}, **kind)
        for n, kind in enumerate(kinds)
    ]


@pytest.mark.database
async def test_the_schedule_runs_real_journeys_for_the_at_risk_and_then_skips_them(
    dev_client: Client, engine: Engine, tmp_path: Path
) -> None:
    customers = handful()
    save_customers_bulk(engine, customers)
    strategies = strategies_of(customers, load_rulebook(RULES_DIR), None)
    at_risk = {c for c, strategy in strategies.items() if strategy != "standard"}
    assert 0 < len(at_risk) < len(customers)
    task_queue = f"scan-{uuid4()}"
    settings = Settings(
        task_queue=task_queue,
        heavy_task_queue=task_queue,  # the test's one worker scores too
        portfolio_scan_every="P1D",
        portfolio_scan_page_size=2,
    )
    activities = build_activities(engine, RULES_DIR, tmp_path / "outbox")
    activities += build_scan_activities(engine, RULES_DIR, dev_client, task_queue)
    async with scan_worker(dev_client, WORKFLOWS, activities, task_queue):
        created = await keep_scan_schedule(dev_client, settings)
        again = await keep_scan_schedule(dev_client, settings)  # every worker start: idempotent
        assert created == "portfolio-scan schedule created: every 1 day, 0:00:00"
        assert again == "portfolio-scan schedule updated: every 1 day, 0:00:00"
        scheduled = await (await scan_now(dev_client, settings)).result()
        states = {c: await planned_state(dev_client, c) for c in at_risk}
        off = settings.model_copy(update={"portfolio_scan_every": timedelta(0)})
        assert await keep_scan_schedule(dev_client, off) == "portfolio-scan schedule deleted (off)"
        manual = await scan_now(dev_client, settings)  # no schedule: started directly
        again = await manual.result()
        for customer_id in at_risk:
            await end_journey(
                dev_client.get_workflow_handle(journey_id(customer_id), result_type=JourneyState)
            )

    assert scheduled.workflow_id.startswith(f"{SCHEDULE_ID}-")  # the schedule's, not by hand
    assert scheduled.workflow_id != MANUAL_SCAN_ID
    # the settings' 4 pages at once: 5 customers, 2 a page, are one run
    assert (scheduled.status, scheduled.scored, scheduled.pages, scheduled.runs) == (
        "completed",
        5,
        3,
        1,
    )
    assert (scheduled.at_risk, scheduled.started, scheduled.skipped) == (
        len(at_risk),
        len(at_risk),
        0,
    )
    for customer_id, state in states.items():
        assert state.strategy == strategies[customer_id]  # the journey decided as the scan did
    assert manual.id == MANUAL_SCAN_ID
    assert (again.status, again.started, again.skipped) == ("completed", 0, len(at_risk))


async def planned_state(client: Client, customer_id: str) -> JourneyState:
    handle = client.get_workflow_handle(journey_id(customer_id))
    for _ in range(120):
        state = await handle.query("state", result_type=JourneyState)
        if state.strategy is not None:
            return state
        await asyncio.sleep(0.5)
    raise AssertionError(f"the journey for {customer_id} was never planned")


async def end_journey(handle: WorkflowHandle[Any, Any]) -> None:
    """Cancel and wait for the close, so no journey outlives its test's worker."""
    await handle.execute_update("cancel", CancelRequest(reason="test done"))
    assert (await handle.result()).outcome == "cancelled"


async def test_a_retried_start_counts_its_own_journeys_as_started_and_others_as_skipped(
    dev_client: Client,
) -> None:
    task_queue = f"scan-{uuid4()}"
    ids = [f"r{n}-{uuid4().hex[:6]}" for n in range(3)]
    async with scan_worker(dev_client, [RunningJourney], [], task_queue):
        first = await start_journeys(
            dev_client, [*ids, "not an id!"], scan_id="A", task_queue=task_queue, retried=False
        )
        retried = await start_journeys(
            dev_client, ids, scan_id="A", task_queue=task_queue, retried=True
        )
        other = await start_journeys(
            dev_client, ids, scan_id="B", task_queue=task_queue, retried=True
        )
        for customer_id in ids:
            await dev_client.get_workflow_handle(journey_id(customer_id)).terminate("test done")
    assert (first.started, first.skipped) == (3, 0)
    assert [f.customer_id for f in first.failures] == ["not an id!"]
    assert "customer_id" in first.failures[0].reason
    assert (retried.started, retried.skipped, retried.failures) == (3, 0, [])
    assert (other.started, other.skipped) == (0, 3)


async def starter(env: dict[str, str], *args: str) -> tuple[int, str, str]:
    """`python starter.py ARGS` as a user types it (without blocking this test's worker)."""
    process = await asyncio.create_subprocess_exec(
        sys.executable, "starter.py", *args, cwd=ROOT, env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(process.communicate(), timeout=300)
    return process.returncode or 0, out.decode(), err.decode()


async def test_starter_scan_now_prints_the_figures_and_history_lists_the_run(
    dev_client: Client, tmp_path: Path
) -> None:
    database = tmp_path / "cli.db"
    engine = make_engine(f"sqlite:///{database}")
    customers = handful()
    save_customers_bulk(engine, customers)
    at_risk = at_risk_by_rules(customers, load_rulebook(RULES_DIR), None)
    task_queue = f"scan-{uuid4()}"
    env = os.environ | {
        "RETENTION_TEMPORAL_ADDRESS": dev_client.service_client.config.target_host,
        "RETENTION_DATABASE_URL": f"sqlite:///{database}",
        "RETENTION_TASK_QUEUE": task_queue,
        "RETENTION_HEAVY_TASK_QUEUE": task_queue,
        "RETENTION_PORTFOLIO_SCAN_PAGE_SIZE": "2",
        "RETENTION_PORTFOLIO_SCAN_PARALLEL_PAGES": "2",
        "COLUMNS": "200",
    }
    activities = build_scan_activities(engine, RULES_DIR, dev_client, task_queue)
    async with scan_worker(dev_client, [RunningJourney, PortfolioScan], activities, task_queue):
        now = await starter(env, "scan", "--now")
        history = await starter(env, "scan", "--history", "--json")
        neither = await starter(env, "scan")
        for customer_id in at_risk:
            await dev_client.get_workflow_handle(journey_id(customer_id)).terminate("test done")

    assert now[0] == 0, now[2]
    n = len(at_risk)
    assert re.search(
        rf"completed: scored 5 · at_risk {n} · started {n} · skipped 0 · failed 0 "
        r"\(3 pages, 2 runs\)",  # two pages a run: 2 + 2, then the last one
        now[1],
    ), now[1]
    [run] = json.loads(history[1])
    assert (run["status"], run["scored"], run["started"], run["runs"]) == ("completed", 5, n, 2)
    assert neither[0] == 2 and "exactly one of --now or --history" in neither[2]


async def test_a_scan_whose_pages_cannot_be_read_fails_named_and_is_recorded_failed(
    dev_client: Client, tmp_path: Path, history_name: str | None
) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'broken.db'}")
    with engine.begin() as connection:
        connection.execute(text("DROP TABLE customers"))  # every page read fails, every retry
    task_queue = f"scan-{uuid4()}"
    activities = build_scan_activities(engine, RULES_DIR, dev_client, task_queue)
    async with scan_worker(dev_client, [PortfolioScan], activities, task_queue):
        handle = await start_scan(dev_client, task_queue, page_size=10)
        with pytest.raises(WorkflowFailureError) as failed:
            await handle.result()
        await save_histories(dev_client, [handle], history_name)
    assert "portfolio scan failed" in str(failed.value.cause)
    assert "customers" in str(failed.value.cause)  # the cause names what went wrong
    [run] = list_scan_runs(engine)
    assert (run.status, run.scored, run.pages) == ("failed", 0, 0)
    assert run.finished_at is not None


async def test_a_scan_replays_from_its_history(
    dev_client: Client, tmp_path: Path, history_name: str | None
) -> None:
    """Determinism: each run of a finished scan, one page a run, replays against today's workflow
    code (and its first and last runs are recorded for tests/test_replay.py)."""
    result, progress, histories = await replayed_scan(
        dev_client, tmp_path, history_name, page_size=2, parallel_pages=1
    )
    assert result.runs == 3
    assert progress == result  # the query of the last run answers the figures
    # a run's history is one page's events, whatever the size of the portfolio
    assert all(len(history.events) < 40 for history in histories)


async def replayed_scan(
    client: Client, tmp_path: Path, history_name: str | None, page_size: int, parallel_pages: int
) -> tuple[ScanResult, ScanResult, list[WorkflowHistory]]:
    """A scan of `handful()`: its result, its last run's `progress`, and the histories of its
    first and last runs, each replayed against today's workflow code (and saved when
    recording)."""
    engine = make_engine(f"sqlite:///{tmp_path / 'replay.db'}")
    save_customers_bulk(engine, handful())
    task_queue = f"scan-{uuid4()}"
    activities = build_scan_activities(engine, RULES_DIR, client, task_queue)
    async with scan_worker(client, [RunningJourney, PortfolioScan], activities, task_queue):
        handle = await start_scan(client, task_queue, page_size, parallel_pages)
        result = await handle.result()
        await save_histories(client, [handle], history_name)
        progress = await client.get_workflow_handle(handle.id).query(PortfolioScan.progress)
        histories = [
            await client.get_workflow_handle(handle.id, run_id=run_id).fetch_history()
            for run_id in (handle.first_execution_run_id, None)
        ]
        await end_running_journeys(client)
    replayer = Replayer(workflows=[PortfolioScan], data_converter=DATA_CONVERTER)
    for history in histories:
        await replayer.replay_workflow(history)
    return result, progress, histories


async def end_running_journeys(client: Client) -> None:
    for workflow_id in await running_journeys(client):
        await client.get_workflow_handle(workflow_id).terminate("test done")


# ---- pages scored in parallel (docs/operators.md, "Portfolio scan") ---------------------------


def with_broken_customers(engine: Engine, generated: int, broken: int) -> None:
    """`generated` customers, and `broken` unreadable ones among them spread over every page."""
    save_customers_bulk(engine, generate_population(generated, seed=11).customers)
    spacing = generated // broken
    with session(engine) as db:
        for n in range(broken):
            snapshot = make_customer(profile={"customer_id": "x"}).model_dump(mode="json")
            snapshot["usage"]["total_features"] = 0
            db.add(CustomerRow(customer_id=f"gen-{n * spacing + 1:06d}b", snapshot=snapshot))


@pytest.mark.database
async def test_a_parallel_scan_has_the_figures_of_a_scan_one_page_at_a_time(
    dev_client: Client, engine: Engine, shipped_scorer: ModelScorer
) -> None:
    # 1,200 customers, 100 a page: 12 full pages and an empty 13th; 3 pages a run never ends a
    # run on the last page. 25 unreadable ones: more failures than the 20 listed with reasons.
    with_broken_customers(engine, generated=1_175, broken=25)
    task_queue = f"scan-{uuid4()}"
    activities = build_scan_activities(engine, RULES_DIR, dev_client, task_queue, shipped_scorer)
    async with scan_worker(dev_client, [RunningJourney, PortfolioScan], activities, task_queue):
        one_by_one = await run_scan(dev_client, task_queue, page_size=100, parallel_pages=1)
        await until_visible(dev_client, one_by_one.started)
        await end_running_journeys(dev_client)  # so the second scan starts them again
        parallel = await run_scan(dev_client, task_queue, page_size=100, parallel_pages=3)
        journeys = await until_visible(dev_client, parallel.started)
        await end_running_journeys(dev_client)

    assert parallel.figures == one_by_one.figures
    assert (parallel.pages, parallel.scored, parallel.failed) == (13, 1_175, 25)
    assert len(parallel.failures) == 20  # the first 20 in id order, as one page at a time
    assert 0 < parallel.at_risk == parallel.started == len(set(journeys)) == len(journeys)
    assert (one_by_one.runs, parallel.runs) == (13, 5)


class FlakyScanActivities:
    """The real scoring and starting, but the first attempt at the pages named is lost after
    its work is done: the worker died before Temporal heard back."""

    def __init__(self, activities: list[Callable[..., Any]], score: int, start: int) -> None:
        self._real = {getattr(a, "__name__", ""): a for a in activities}
        self._lost_score, self._lost_start = score, start
        self.attempts: list[str] = []

    def all(self) -> list[Callable[..., Any]]:
        kept = [a for name, a in self._real.items() if name not in ("score_page", "start_journeys")]
        return [*kept, self.score_page, self.start_journeys]

    @activity.defn(name="score_page")
    def score_page(self, request: PageRequest) -> ScoredPage:
        page: ScoredPage = self._real["score_page"](request)
        self._lose(f"score {request.page}", request.page == self._lost_score)
        return page

    @activity.defn(name="start_journeys")
    async def start_journeys(self, request: StartRequest) -> StartedJourneys:
        started: StartedJourneys = await self._real["start_journeys"](request)
        self._lose(f"start {request.page}", request.page == self._lost_start)
        return started

    def _lose(self, what: str, chosen: bool) -> None:
        self.attempts.append(what)
        if chosen and activity.info().attempt == 1:
            raise RuntimeError(f"worker lost after {what}")


@pytest.mark.database
async def test_a_lost_page_or_start_attempt_counts_nothing_twice_and_starts_nobody_twice(
    dev_client: Client, engine: Engine, shipped_scorer: ModelScorer
) -> None:
    customers = generate_population(600, seed=5).customers
    save_customers_bulk(engine, customers)
    expected = at_risk_by_rules(customers, load_rulebook(RULES_DIR), shipped_scorer)
    task_queue = f"scan-{uuid4()}"
    real = build_scan_activities(engine, RULES_DIR, dev_client, task_queue, shipped_scorer)
    flaky = FlakyScanActivities(real, score=2, start=3)
    # no workflow cache: each step resumes from the history alone, as on a fresh worker
    async with scan_worker(
        dev_client, [RunningJourney, PortfolioScan], flaky.all(), task_queue, cached_workflows=0
    ):
        result = await run_scan(dev_client, task_queue, page_size=100, parallel_pages=4)
        journeys = await until_visible(dev_client, len(expected))
        await end_running_journeys(dev_client)

    assert flaky.attempts.count("score 2") == flaky.attempts.count("start 3") == 2  # both lost
    assert (result.status, result.pages, result.runs, result.scored) == ("completed", 7, 2, 600)
    assert result.at_risk == result.started == len(expected)
    assert (result.skipped, result.failed) == (0, 0)
    assert sorted(journeys) == sorted(journey_id(c) for c in expected)  # each once


async def test_a_parallel_scan_replays_from_its_history(
    dev_client: Client, tmp_path: Path, history_name: str | None
) -> None:
    """Each run of a scan of two pages at a time replays against today's workflow code (its
    first and last runs are recorded for tests/test_replay.py)."""
    result, progress, histories = await replayed_scan(
        dev_client, tmp_path, history_name, page_size=1, parallel_pages=2
    )
    # 5 customers, 1 a page: 5 full pages and an empty one, 2 a run
    assert (result.status, result.scored, result.pages, result.runs) == ("completed", 5, 6, 3)
    assert progress == result
    # a run's own events: 10 (its start, the patch's marker and search attribute, the plan, the
    # record, continuing as new) and 6 a page (scoring, starting), whatever the portfolio;
    # besides them, the workflow tasks: three events for about each activity that completes,
    # more on a busy machine
    for history in histories:
        commands = [e for e in history.events if e.event_type not in WORKFLOW_TASK_EVENTS]
        assert len(commands) <= 10 + 6 * 2
