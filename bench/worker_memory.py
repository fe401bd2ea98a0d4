"""Worker memory over many journeys: worker.py's resident size after the last journey against
after the first thousand.

    .venv/bin/python bench/worker_memory.py [--journeys 10000] [--first 1000] [--batch 100]

worker.py runs as a subprocess (its own process, so its VmRSS is its alone), as users run it,
on a dev server, a temporary SQLite database and the capture-only outbox, baseline-0 scoring.
Journeys (the nurture sample customer) go through it `--batch` at a time: started, waited for
until their first intervention is in the outbox, then ended by a `meeting_booked` event and
waited for until closed, so the server holds no more than a batch of open journeys.

Prints one JSON line: journeys, rss_first_kib (after the first `--first`), rss_last_kib (after
the last), rss_growth_pct (target: within 10 %), seconds and journeys_per_s.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from journey_throughput import (
    dev_server,
    exit_on_sigterm,
    sample_customers,
    start_journeys,
    until_delivered,
)

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sqlalchemy import Engine  # noqa: E402
from temporalio.client import Client  # noqa: E402

from retention.customer import CustomerEvent  # noqa: E402
from retention.journey_state import journey_id  # noqa: E402
from retention.runtime.devserver import free_port, stop  # noqa: E402
from retention.runtime.operations import send_event  # noqa: E402
from retention.runtime.temporal import connect  # noqa: E402
from retention.store.db import make_engine  # noqa: E402

TASK_QUEUE = "bench-worker-memory"
READY_TIMEOUT_S = 60
EXIT = CustomerEvent(type="meeting_booked", data={"via": "benchmark"})


def worker_env(tmp: Path, address: str) -> dict[str, str]:
    return {
        **os.environ,
        "RETENTION_TEMPORAL_ADDRESS": address,
        "RETENTION_TASK_QUEUE": TASK_QUEUE,
        "RETENTION_DATABASE_URL": f"sqlite:///{tmp / 'retention.db'}",
        "RETENTION_OUTBOX_DIR": str(tmp / "outbox"),
        "RETENTION_MODEL_DIR": "baseline",
        "RETENTION_METRICS_ADDRESS": f"127.0.0.1:{free_port()}",
        "RETENTION_LOG_FORMAT": "json",
    }


def start_worker(
    tmp: Path, address: str, env: dict[str, str] | None = None, log_name: str = "worker.log"
) -> subprocess.Popen[bytes]:
    """worker.py (with `env`, else `worker_env`), once its log says it polls the task queue."""
    log = tmp / log_name
    with log.open("wb") as out:
        worker = subprocess.Popen(
            [sys.executable, "worker.py"], cwd=ROOT, env=env or worker_env(tmp, address),
            stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip
    deadline = time.monotonic() + READY_TIMEOUT_S
    while "worker polling" not in log.read_text(errors="replace"):
        if worker.poll() is not None or time.monotonic() > deadline:
            stop(worker)
            raise RuntimeError(f"worker.py did not start polling; see its log:\n{log.read_text()}")
        time.sleep(0.2)
    return worker


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError(f"/proc/{pid}/status has no VmRSS line")


async def journey_batch(client: Client, engine: Engine, prefix: str, n: int) -> None:
    """`n` journeys to their first intervention, then each ended by the exit event."""
    ids = await start_journeys(client, sample_customers(prefix, n), TASK_QUEUE)
    await until_delivered(engine, journey_id(prefix), n)
    await asyncio.gather(*(send_event(client, f"{prefix}{i}", EXIT) for i in range(n)))
    await asyncio.gather(*(client.get_workflow_handle(i).result() for i in ids))


async def measure(n: int, first: int, batch: int) -> dict[str, object]:
    with (
        tempfile.TemporaryDirectory(prefix="bench-memory-") as name,
        dev_server(Path(name)) as address,
    ):
        tmp = Path(name)
        worker = start_worker(tmp, address)
        engine = make_engine(worker_env(tmp, address)["RETENTION_DATABASE_URL"])
        try:
            client = await connect(address=address)
            done, rss_first, start = 0, 0, time.perf_counter()
            while done < n:
                size = min(batch, n - done, first - done if done < first else n)
                await journey_batch(client, engine, f"mem-{done}-", size)
                done += size
                if done == first:
                    rss_first = rss_kib(worker.pid)
            seconds = time.perf_counter() - start
            rss_last = rss_kib(worker.pid)
        finally:
            engine.dispose()
            stop(worker)
    return {
        "bench": "worker_memory",
        "journeys": n,
        "first": first,
        "rss_first_kib": rss_first,
        "rss_last_kib": rss_last,
        "rss_growth_pct": round(100 * (rss_last - rss_first) / rss_first, 2),
        "seconds": round(seconds, 1),
        "journeys_per_s": round(n / seconds, 1),
    }


def main() -> None:
    exit_on_sigterm()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--journeys", type=int, default=10_000)
    parser.add_argument("--first", type=int, default=1_000, help="RSS is read after these")
    parser.add_argument("--batch", type=int, default=100, help="journeys open at once")
    args = parser.parse_args()
    if not 1 <= args.first < args.journeys or args.batch < 1:
        parser.error("need 1 <= --first < --journeys and --batch >= 1")
    print(json.dumps(asyncio.run(measure(args.journeys, args.first, args.batch))))


if __name__ == "__main__":
    main()
