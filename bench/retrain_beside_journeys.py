"""How late are due journey steps while a model retrain runs beside them, by worker layout?

    .venv/bin/python bench/retrain_beside_journeys.py [--journeys 200] [--rate 5] [--history 60000]

A generated labelled history of `--history` customers is saved once (SQLite, copied for each
layout). For each layout a fresh dev server and worker.py processes (as users run them, the
capture-only outbox, the shipped model) serve `--journeys` nurture journeys started at
`--rate` a second, each due to send its first email at once; in every layout but `quiet`, a
`ModelRetrain` is started first and the journeys begin once its training activity runs.

Layouts:
- quiet: one `--role all` worker, no retrain (the baseline of the same run);
- one_queue: one worker whose heavy queue is its journey queue (the layout before the roles:
  training takes a journey activity slot and shares the process);
- all: one `--role all` worker (its own slots for heavy work, one process);
- split: a `--role journeys` worker and a `--role heavy` worker (two processes).

A step's delay is the time from the journey's start to its first outbox row. Prints one JSON
line: per layout the delay's median, p95 and max in seconds, and `overlap`, the share of
journeys delivered while the retrain was still running (the comparison holds where it is
near 1); `retrain_s` is the retrain's own duration.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

from journey_throughput import dev_server, exit_on_sigterm, sample_customer
from worker_memory import start_worker, worker_env

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.append(str(ROOT / "tests"))  # after bench/: its journeys.py, not the tests'

from labelled import labelled_population  # noqa: E402
from sqlalchemy import Engine, text  # noqa: E402
from temporalio.client import Client, WorkflowHandle  # noqa: E402

from retention.journey_state import JourneyOptions  # noqa: E402
from retention.model.history import save_history  # noqa: E402
from retention.retraining import RETRAIN_WORKFLOW_TYPE, RetrainRequest  # noqa: E402
from retention.runtime.devserver import stop  # noqa: E402
from retention.runtime.operations import start_journey  # noqa: E402
from retention.runtime.temporal import connect  # noqa: E402
from retention.store.db import make_engine  # noqa: E402

JOURNEY_QUEUE = "bench-retrain-journeys"
HEAVY_QUEUE = "bench-retrain-heavy"
LAYOUTS = {  # layout: (role of each worker.py, its heavy queue)
    "quiet": [("all", HEAVY_QUEUE)],
    "one_queue": [("all", JOURNEY_QUEUE)],
    "all": [("all", HEAVY_QUEUE)],
    "split": [("journeys", HEAVY_QUEUE), ("heavy", HEAVY_QUEUE)],
}
TRAINING_START_TIMEOUT_S = 120
DELIVERY_TIMEOUT_S = 900
POLL_S = 0.2


def seeded_database(tmp: Path, customers: int) -> Path:
    """A SQLite database holding the labelled history the retrain learns from."""
    path = tmp / "seed.db"
    engine = make_engine(f"sqlite:///{path}")
    save_history(engine, labelled_population(customers, seed=3))
    with engine.connect() as db:  # all of it into the file that is copied, none left in the WAL
        db.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
    engine.dispose()
    return path


def spawn(tmp: Path, address: str, role: str, heavy_queue: str) -> subprocess.Popen[bytes]:
    env = worker_env(tmp, address) | {
        "RETENTION_TASK_QUEUE": JOURNEY_QUEUE,
        "RETENTION_HEAVY_TASK_QUEUE": heavy_queue,
        "RETENTION_WORKER_ROLE": role,
        "RETENTION_MODEL_DIR": str(ROOT / "models" / "churn-default"),
        "RETENTION_MODELS_ROOT": str(tmp / "models"),  # a promotion stays in the run's folder
        "RETENTION_HEALTH_ADDRESS": "",
        "RETENTION_MODEL_RETRAIN_EVERY": "off",
        "RETENTION_PORTFOLIO_SCAN_EVERY": "off",
        "RETENTION_DATA_PURGE_EVERY": "off",
    }
    return start_worker(tmp, address, env, f"worker-{role}.log")


@contextmanager
def workers(tmp: Path, address: str, layout: str) -> Iterator[None]:
    started: list[subprocess.Popen[bytes]] = []
    try:
        for role, heavy_queue in LAYOUTS[layout]:
            started.append(spawn(tmp, address, role, heavy_queue))
        yield
    finally:
        for worker in started:
            stop(worker)


async def start_retrain(client: Client, heavy_queue: str) -> WorkflowHandle[object, object]:
    """A retrain, once its training activity is running (or it is done already: a small
    `--history` trains in moments)."""
    handle: WorkflowHandle[object, object] = await client.start_workflow(
        RETRAIN_WORKFLOW_TYPE,
        RetrainRequest(seed=3, heavy_task_queue=heavy_queue),
        id=f"bench-retrain-{time.time_ns()}",
        task_queue=JOURNEY_QUEUE,
        execution_timeout=timedelta(hours=1),
    )
    async with asyncio.timeout(TRAINING_START_TIMEOUT_S):
        while True:
            described = await handle.describe()
            if described.raw_description.pending_activities or described.close_time:
                return handle
            await asyncio.sleep(POLL_S)


async def trickle(client: Client, journeys: int, rate: float) -> dict[str, datetime]:
    """Start the journeys at `rate` a second; when each started, by workflow id."""
    started: dict[str, datetime] = {}
    first = time.monotonic()
    for i in range(journeys):
        await asyncio.sleep(max(0.0, first + i / rate - time.monotonic()))
        at = datetime.now(UTC)
        handle = await start_journey(
            client, sample_customer(f"due-{i}"), None, JourneyOptions(), task_queue=JOURNEY_QUEUE
        )
        started[handle.id] = at
    return started


def first_rows(engine: Engine) -> dict[str, datetime]:
    query = text("SELECT journey_id, MIN(created_at) FROM outbox GROUP BY journey_id")
    with engine.connect() as db:
        rows = db.execute(query).all()
    return {str(j): datetime.fromisoformat(str(at)).replace(tzinfo=UTC) for j, at in rows}


async def delivered(database: Path, ids: set[str]) -> dict[str, datetime]:
    engine = make_engine(f"sqlite:///{database}")  # one for the whole wait, not one a poll
    try:
        async with asyncio.timeout(DELIVERY_TIMEOUT_S):
            while not ids <= (rows := await asyncio.to_thread(first_rows, engine)).keys():
                await asyncio.sleep(POLL_S)
    finally:
        engine.dispose()
    return {j: at for j, at in rows.items() if j in ids}


async def retrain_end(handle: WorkflowHandle[object, object] | None) -> datetime | None:
    if handle is None:
        return None
    await handle.result()
    close_time = (await handle.describe()).close_time
    assert close_time is not None
    return close_time


async def run_layout(tmp: Path, seed: Path, layout: str, journeys: int, rate: float) -> dict:
    shutil.copy(seed, tmp / "retention.db")
    with dev_server(tmp) as address, workers(tmp, address, layout):
        client = await connect(address=address)
        began = datetime.now(UTC)
        retrain = None if layout == "quiet" else await start_retrain(client, LAYOUTS[layout][-1][1])
        started = await trickle(client, journeys, rate)
        firsts = await delivered(tmp / "retention.db", set(started))
        ended = await retrain_end(retrain)
    delays = sorted((firsts[j] - at).total_seconds() for j, at in started.items())
    overlap = sum(at <= ended for at in firsts.values()) / journeys if ended else None
    return {
        "median_s": round(statistics.median(delays), 2),
        "p95_s": round(delays[int(0.95 * (len(delays) - 1))], 2),
        "max_s": round(delays[-1], 2),
        "overlap": None if overlap is None else round(overlap, 2),
        "retrain_s": None if ended is None else round((ended - began).total_seconds(), 1),
    }


async def measure(journeys: int, rate: float, history: int) -> dict[str, object]:
    with tempfile.TemporaryDirectory(prefix="bench-retrain-") as root:
        seed = seeded_database(Path(root), history)
        results = {}
        for layout in LAYOUTS:
            tmp = Path(root) / layout
            tmp.mkdir()
            results[layout] = await run_layout(tmp, seed, layout, journeys, rate)
    return {"bench": "retrain_beside_journeys", "journeys": journeys, "rate": rate,
            "history": history, **results}  # fmt: skip


def main() -> None:
    exit_on_sigterm()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--journeys", type=int, default=200, help="journeys per layout")
    parser.add_argument("--rate", type=float, default=5.0, help="journeys started per second")
    parser.add_argument("--history", type=int, default=60_000, help="customers the retrain reads")
    args = parser.parse_args()
    if args.journeys < 1 or args.rate <= 0 or args.history < 100:
        parser.error("--journeys ≥ 1, --rate > 0 and --history ≥ 100")
    print(json.dumps(asyncio.run(measure(args.journeys, args.rate, args.history))))


if __name__ == "__main__":
    main()
