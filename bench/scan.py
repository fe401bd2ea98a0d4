"""The portfolio scan across heavy workers: a generated portfolio in a PostgreSQL database of its
own, scanned with one `worker.py --role heavy` process and then with two.

    .venv/bin/python bench/scan.py [--customers 100000] [--page-size 500] [--parallel-pages 4]
        [--database-url postgresql+psycopg://127.0.0.1:5432/bench_scan] [--seed 3]

The database is created afresh (and dropped at the end) and filled with `--customers` generated
customers (`retention.model.generator`); each scan runs on a dev server of its own, so both start
every at-risk customer's journey. The heavy workers are `worker.py --role heavy` subprocesses
with the shipped churn model (RETENTION_HEAVY_ACTIVITY_SLOTS, 2 pages each at once); the
`PortfolioScan` workflow, `plan_pages`, `record_scan` and `start_journeys` run on a worker in
this process. The journeys are started on a task queue no worker polls: the scan pays for
starting them, not for running 20,000 journeys beside it. Between the scans the score rows the
first wrote are deleted.

Prints one JSON line: customers, page_size, parallel_pages, and for each number of heavy
workers the seconds from start to result, customers_per_s, pages, runs, history_events (the
largest of the first and the last run's), heavy_cpu_s (the heavy workers' CPU time during the
scan) and customers_per_heavy_cpu_s (what a heavy worker with a core of its own would reach,
less swayed by a busy machine), load_average (1 minute, at the end); scored, at_risk and
started; speedup (two workers' rate ÷ one's) and same_figures (both scans' figures equal).
"""

from __future__ import annotations

import argparse
import asyncio
import concurrent.futures
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, delete, insert, text
from sqlalchemy.engine import Connection, Engine, make_url

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from activities.scan import JourneyStarter, ScanActivities  # noqa: E402
from retention.model.generator import generate_population  # noqa: E402
from retention.rulebook.source import RulebookSource  # noqa: E402
from retention.runtime.devserver import free_port, start_dev_server, stop  # noqa: E402
from retention.runtime.temporal import connect  # noqa: E402
from retention.scan.requests import (  # noqa: E402
    DEFAULT_PAGE_SIZE,
    DEFAULT_PARALLEL_PAGES,
    ScanRequest,
    ScanResult,
)
from retention.scan.schedule import start_scan  # noqa: E402
from retention.store.db import make_engine  # noqa: E402
from retention.store.tables import (  # noqa: E402
    ChurnPredictionRow,
    CustomerRow,
    ExpansionOpportunityRow,
    HealthScoreRow,
    ScanRunRow,
    SentimentRow,
    customer_columns,
    utcnow,
)
from worker import make_worker  # noqa: E402
from workflows.portfolio_scan import PortfolioScan  # noqa: E402

DATABASE_URL = "postgresql+psycopg://127.0.0.1:5432/bench_scan"
TASK_QUEUE = "bench-scan"
HEAVY_QUEUE = "bench-scan-heavy"
UNPOLLED_QUEUE = "bench-scan-journeys"  # the journeys are started, never run
INSERT_CHUNK = 5_000
READY_S = 120
WRITTEN_BY_A_SCAN = (
    HealthScoreRow,
    ChurnPredictionRow,
    SentimentRow,
    ExpansionOpportunityRow,
    ScanRunRow,
)


def fresh_database(url: str) -> Engine:
    """The database `url` names, dropped and created again, its schema at the newest revision."""
    drop_database(url)
    with _server(url) as connection:
        connection.execute(text(f'CREATE DATABASE "{make_url(url).database}"'))
    return make_engine(url)


def drop_database(url: str) -> None:
    with _server(url) as connection:
        connection.execute(text(f'DROP DATABASE IF EXISTS "{make_url(url).database}" WITH (FORCE)'))


@contextmanager
def _server(url: str) -> Iterator[Connection]:
    """A connection to the server's `postgres` database, outside any transaction."""
    admin = create_engine(make_url(url).set(database="postgres"), isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as connection:
            yield connection
    finally:
        admin.dispose()


def save_portfolio(engine: Engine, customers: int, seed: int) -> None:
    population = generate_population(customers, seed=seed).customers
    now = utcnow()
    rows = [
        {
            "customer_id": c.customer_id,
            **customer_columns(c.model_dump(mode="json")),
            "updated_at": now,
        }
        for c in population
    ]
    with engine.begin() as connection:
        for offset in range(0, len(rows), INSERT_CHUNK):
            connection.execute(insert(CustomerRow), rows[offset : offset + INSERT_CHUNK])


def forget_scores(engine: Engine) -> None:
    with engine.begin() as connection:
        for table in WRITTEN_BY_A_SCAN:
            connection.execute(delete(table))


def cpu_seconds(processes: list[subprocess.Popen[bytes]]) -> float:
    """User and system CPU time the processes used so far (Linux: /proc/PID/stat)."""
    ticks = 0
    for process in processes:
        fields = Path(f"/proc/{process.pid}/stat").read_text().rsplit(")", 1)[1].split()
        ticks += int(fields[11]) + int(fields[12])  # utime, stime
    return ticks / os.sysconf("SC_CLK_TCK")


@contextmanager
def heavy_workers(
    tmp: Path, address: str, url: str, count: int
) -> Iterator[list[subprocess.Popen[bytes]]]:
    env = {
        **os.environ,
        "RETENTION_TEMPORAL_ADDRESS": address,
        "RETENTION_DATABASE_URL": url,
        "RETENTION_TASK_QUEUE": TASK_QUEUE,
        "RETENTION_HEAVY_TASK_QUEUE": HEAVY_QUEUE,
        "RETENTION_OUTBOX_DIR": str(tmp / "outbox"),
        "RETENTION_METRICS_ADDRESS": "",
        "RETENTION_HEALTH_ADDRESS": "",
        "RETENTION_PORTFOLIO_SCAN_EVERY": "off",
        "RETENTION_MODEL_RETRAIN_EVERY": "off",
        "RETENTION_DATA_PURGE_EVERY": "off",
    }
    processes, logs = [], []
    try:
        for n in range(count):
            logs.append(tmp / f"heavy-{n}.log")
            with logs[-1].open("wb") as out:
                command = [sys.executable, "worker.py", "--role", "heavy"]
                processes.append(
                    subprocess.Popen(command, cwd=ROOT, env=env, stdout=out, stderr=out)
                )
        deadline = time.monotonic() + READY_S
        while not all("worker polling" in log.read_text() for log in logs):
            if time.monotonic() > deadline or any(p.poll() is not None for p in processes):
                raise SystemExit(f"a heavy worker did not start: see {logs}")
            time.sleep(0.2)
        yield processes
    finally:
        for process in processes:
            stop(process)


async def scan_once(
    tmp: Path, engine: Engine, url: str, heavy: int, request: ScanRequest
) -> dict[str, Any]:
    """One scan on a dev server of its own with `heavy` heavy workers: its figures and time."""
    port = free_port()
    server = start_dev_server(tmp / f"temporal-{heavy}.db", port=port, ui_port=free_port())
    try:
        client = await connect(address=f"127.0.0.1:{port}")
        scan = ScanActivities(engine, RulebookSource(ROOT / "rules"))
        starter = JourneyStarter(client, UNPOLLED_QUEUE)
        activities: list[Callable[..., Any]] = [
            scan.plan_pages,
            scan.record_scan,
            starter.start_journeys,
        ]
        with (
            concurrent.futures.ThreadPoolExecutor(max_workers=8) as executor,
            heavy_workers(tmp, f"127.0.0.1:{port}", url, heavy) as processes,
        ):
            worker = make_worker(client, TASK_QUEUE, [PortfolioScan], activities, executor, 8)
            async with worker:
                began, cpu_before = time.perf_counter(), cpu_seconds(processes)
                handle = await start_scan(client, TASK_QUEUE, request)
                result: ScanResult = await handle.result()
                seconds = time.perf_counter() - began
                cpu = cpu_seconds(processes) - cpu_before
                runs = (handle.first_execution_run_id, None)  # the first and the last
                histories = [
                    await client.get_workflow_handle(handle.id, run_id=r).fetch_history()
                    for r in runs
                ]
    finally:
        stop(server)
    return {
        "heavy_workers": heavy,
        "seconds": round(seconds, 1),
        "customers_per_s": round(result.scored / seconds),
        "pages": result.pages,
        "runs": result.runs,
        "history_events": max(len(history.events) for history in histories),
        "heavy_cpu_s": round(cpu, 1),
        "customers_per_heavy_cpu_s": round(result.scored / cpu),
        "load_average": round(os.getloadavg()[0], 1),
        "figures": result.figures.model_dump(exclude={"failures"}),
    }


async def measure(args: argparse.Namespace) -> dict[str, Any]:
    request = ScanRequest(
        page_size=args.page_size, parallel_pages=args.parallel_pages, heavy_task_queue=HEAVY_QUEUE
    )
    scans = []
    with tempfile.TemporaryDirectory(prefix="bench-scan-") as name, ExitStack() as cleanup:
        engine = fresh_database(args.database_url)
        cleanup.callback(drop_database, args.database_url)
        cleanup.callback(engine.dispose)
        save_portfolio(engine, args.customers, args.seed)
        for heavy in (1, 2):
            forget_scores(engine)
            scans.append(await scan_once(Path(name), engine, args.database_url, heavy, request))
    figures = [scan.pop("figures") for scan in scans]
    return {
        "bench": "scan",
        "customers": args.customers,
        "page_size": args.page_size,
        "parallel_pages": args.parallel_pages,
        **{f"heavy_{scan['heavy_workers']}": scan for scan in scans},
        "scored": figures[0]["scored"],
        "at_risk": figures[0]["at_risk"],
        "started": figures[0]["started"],
        "speedup": round(scans[1]["customers_per_s"] / scans[0]["customers_per_s"], 2),
        "same_figures": figures[0] == figures[1],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=100_000)
    parser.add_argument("--page-size", type=int, default=DEFAULT_PAGE_SIZE)
    parser.add_argument("--parallel-pages", type=int, default=DEFAULT_PARALLEL_PAGES)
    parser.add_argument("--database-url", default=DATABASE_URL)
    parser.add_argument("--seed", type=int, default=3)
    print(json.dumps(asyncio.run(measure(parser.parse_args()))))


if __name__ == "__main__":
    main()
