"""Journeys per second from start to first intervention, against a no-op workflow of the same
shape, on one dev server and one worker, in the same run.

    .venv/bin/python bench/journey_throughput.py [--journeys 200] [--rounds 5]

The worker runs in this process (a `Worker` with the real activities from worker.py's
`build_activities`, a temporary SQLite database, the capture-only outbox, baseline-0 scoring)
so the same worker can also serve the no-op workflow; bench/worker_memory.py runs worker.py
itself as a subprocess for its memory.

Prints one JSON line:
- journeys_per_s: N journeys (a nurture customer: one immediate email) started at once, until
  each has its first outbox row (the first intervention delivered, captured); median of rounds;
- noop_per_s: N no-op workflows started at once, each with as many activities and timers as a
  journey took to its first intervention (`shape`, read from a journey's history), until each
  has run its last activity (bench/noop_journey.py); median of rounds;
- ratio = journeys ÷ no-op, the median over alternating rounds (target ≥ 0.7);
- cpu_ms: the CPU time a journey and a no-op took, worker (this process) and dev server apart,
  in milliseconds each, over the same clocks (medians of rounds); cpu_ratio = a no-op's total ÷
  a journey's. Both workloads keep the two cores about equally busy, so the ratio follows it.
Journeys are terminated after each round, outside the clock, so rounds do not pile up.
"""

from __future__ import annotations

import argparse
import asyncio
import concurrent.futures
import json
import os
import signal
import statistics
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import Engine, text
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client
from temporalio.runtime import LoggingConfig, Runtime, TelemetryConfig, TelemetryFilter
from temporalio.worker import Worker

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from noop_journey import REACHED, NoopJourney, noop_step  # noqa: E402
from noop_models import NoopShape  # noqa: E402

from retention.customer import CustomerSnapshot, parse_customer  # noqa: E402
from retention.journey_state import JourneyOptions, journey_id  # noqa: E402
from retention.runtime.devserver import free_port, start_dev_server, stop  # noqa: E402
from retention.runtime.operations import start_journey  # noqa: E402
from retention.runtime.sandbox import workflow_runner  # noqa: E402
from retention.runtime.temporal import connect  # noqa: E402
from retention.store.db import make_engine  # noqa: E402
from worker import WORKFLOWS, build_activities  # noqa: E402

TASK_QUEUE = "bench-journeys"
SAMPLE = ROOT / "examples" / "customers" / "cyberdyne.json"  # nurture: an immediate email
POLL_S = 0.05
ROUND_TIMEOUT_S = 600


def quiet_runtime() -> Runtime:
    """The SDK's core logs errors only: a journey terminated at the end of a round while its
    workflow task is in flight is expected, and its warning would crowd the one JSON line."""
    quiet = TelemetryFilter(core_level="ERROR", other_level="ERROR")
    return Runtime(telemetry=TelemetryConfig(logging=LoggingConfig(filter=quiet)))


def sample_customer(customer_id: str) -> CustomerSnapshot:
    """The sample nurture customer under another id (one journey per customer id) and an address
    of its own: the shipped frequency caps count messages per person across journeys, so
    customers sharing one address would hold each other's messages back."""
    customer = parse_customer(json.loads(SAMPLE.read_text()), str(SAMPLE))
    update = {"customer_id": customer_id, "email": f"{customer_id}@cyberdyne.example"}
    return customer.model_copy(update={"profile": customer.profile.model_copy(update=update)})


def sample_customers(prefix: str, n: int) -> list[CustomerSnapshot]:
    """`n` sample customers, `{prefix}0` on."""
    return [sample_customer(f"{prefix}{i}") for i in range(n)]


@contextmanager
def dev_server_process(tmp: Path) -> Iterator[tuple[str, int]]:
    """A dev server on free ports with its history in `tmp`; yields its address and pid."""
    port = free_port()
    server = start_dev_server(tmp / "temporal.db", port=port, ui_port=free_port())
    try:
        yield f"127.0.0.1:{port}", server.pid
    finally:
        stop(server)


@contextmanager
def dev_server(tmp: Path) -> Iterator[str]:
    """`dev_server_process`, for who needs only its address."""
    with dev_server_process(tmp) as (address, _pid):
        yield address


@dataclass(frozen=True)
class Round:
    """What a round of n workflows measured: per second, and CPU milliseconds each."""

    per_s: float
    worker_ms: float
    server_ms: float


@dataclass
class RoundClock:
    """Wall time, and CPU time of this process and of the dev server (Linux /proc), since
    `start`: one clock for both, so the CPU covers what the rate does."""

    server_pid: int
    _since: tuple[float, float, float] = (0.0, 0.0, 0.0)

    def start(self) -> None:
        self._since = (time.perf_counter(), time.process_time(), self._server_cpu())

    def stop(self, n: int) -> Round:
        wall, worker, server = self._since
        return Round(
            per_s=n / (time.perf_counter() - wall),
            worker_ms=1000 * (time.process_time() - worker) / n,
            server_ms=1000 * (self._server_cpu() - server) / n,
        )

    def _server_cpu(self) -> float:
        fields = Path(f"/proc/{self.server_pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def first_deliveries(engine: Engine, prefix: str) -> int:
    """How many journeys whose id starts with `prefix` have at least one outbox row: a range
    of the indexed journey key (`{workflow id}/{run id}`), so a poll reads only this round's
    rows, not the whole outbox (the poll's CPU counts against the journeys)."""
    query = text(
        "SELECT COUNT(DISTINCT journey_key) FROM outbox"
        " WHERE journey_key >= :lo AND journey_key < :hi"
    )
    after = prefix[:-1] + chr(ord(prefix[-1]) + 1)  # the first key past every key with prefix
    with engine.connect() as db:
        return int(db.execute(query, {"lo": prefix, "hi": after}).scalar_one())


async def until_delivered(engine: Engine, prefix: str, n: int) -> None:
    async with asyncio.timeout(ROUND_TIMEOUT_S):
        while await asyncio.to_thread(first_deliveries, engine, prefix) < n:
            await asyncio.sleep(POLL_S)


async def until_reached(prefix: str, n: int) -> None:
    """Polled like the outbox (same interval), so both clocks stop alike."""
    async with asyncio.timeout(ROUND_TIMEOUT_S):
        # a copy (one C call under the GIL): activity threads add to the set meanwhile
        while sum(w.startswith(prefix) for w in REACHED.copy()) < n:
            await asyncio.sleep(POLL_S)


async def start_journeys(
    client: Client, customers: list[CustomerSnapshot], task_queue: str
) -> list[str]:
    """Start a journey for each customer at once; their workflow ids."""
    handles = await asyncio.gather(
        *(
            start_journey(client, customer, None, JourneyOptions(), task_queue=task_queue)
            for customer in customers
        )
    )
    return [h.id for h in handles]


async def journey_round(
    client: Client, engine: Engine, name: str, n: int, clock: RoundClock
) -> Round:
    """Journeys to their first intervention; the journeys are ended afterwards."""
    prefix = f"bench-{name}-"
    # made before the clock: an upstream system has its customers at hand, as the no-op its input
    customers = sample_customers(prefix, n)
    clock.start()
    ids = await start_journeys(client, customers, TASK_QUEUE)
    await until_delivered(engine, journey_id(prefix), n)
    measured = clock.stop(n)
    await asyncio.gather(
        *(client.get_workflow_handle(i).terminate(reason="benchmark round done") for i in ids)
    )
    return measured


async def noop_round(
    client: Client, name: str, n: int, shape: NoopShape, clock: RoundClock
) -> Round:
    """No-ops to their last activity; they finish afterwards, off the clock."""
    prefix = f"noop-{name}-"
    clock.start()
    handles = await asyncio.gather(
        *(
            client.start_workflow(NoopJourney.run, shape, id=f"{prefix}{i}", task_queue=TASK_QUEUE)
            for i in range(n)
        )
    )
    await until_reached(prefix, n)
    measured = clock.stop(n)
    await asyncio.wait_for(asyncio.gather(*(h.result() for h in handles)), ROUND_TIMEOUT_S)
    return measured


async def journey_shape(client: Client, workflow_id: str) -> NoopShape:
    """Activities scheduled and timers started in the journey's history up to and including
    its first `deliver` activity (the one that writes the first outbox row)."""
    activities = timers = 0
    async for event in client.get_workflow_handle(workflow_id).fetch_history_events():
        if event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
            activities += 1
            if event.activity_task_scheduled_event_attributes.activity_type.name == "deliver":
                return NoopShape(activities=activities, timers=timers)
        elif event.event_type == EventType.EVENT_TYPE_TIMER_STARTED:
            timers += 1
    raise RuntimeError(f"{workflow_id}: no deliver activity in its history")


@asynccontextmanager
async def bench_worker(client: Client, tmp: Path) -> AsyncIterator[Engine]:
    """worker.py's workflows and real activities, plus the no-op, on one in-process worker
    with worker.py's activity executor; yields the database it writes."""
    engine = make_engine(f"sqlite:///{tmp / 'retention.db'}")
    activities = [*build_activities(engine, ROOT / "rules", tmp / "outbox"), noop_step]
    with concurrent.futures.ThreadPoolExecutor(max_workers=8) as executor:
        async with Worker(
            client,
            task_queue=TASK_QUEUE,
            workflows=[*WORKFLOWS, NoopJourney],
            activities=activities,
            activity_executor=executor,
            workflow_runner=workflow_runner(
                client.data_converter
            ),  # worker.py's, so both workloads run as shipped
        ):
            yield engine


async def measure(n: int, rounds: int) -> dict[str, object]:
    with (
        tempfile.TemporaryDirectory(prefix="bench-journeys-") as name,
        dev_server_process(Path(name)) as (address, server_pid),
    ):
        client = await connect(address=address, runtime=quiet_runtime())
        clock = RoundClock(server_pid)
        async with bench_worker(client, Path(name)) as engine:
            await journey_round(client, engine, "warmup", 1, clock)
            shape = await journey_shape(client, journey_id("bench-warmup-0"))
            await noop_round(client, "warmup", 1, shape, clock)
            journeys: list[Round] = []
            noops: list[Round] = []
            for r in range(rounds):  # alternating, so drifting machine noise hits both alike
                journeys.append(await journey_round(client, engine, f"r{r}", n, clock))
                noops.append(await noop_round(client, f"r{r}", n, shape, clock))
    ratios = [j.per_s / o.per_s for j, o in zip(journeys, noops, strict=True)]
    journey_ms, noop_ms = median_cpu(journeys), median_cpu(noops)
    return {
        "bench": "journeys",
        "journeys": n,
        "rounds": rounds,
        "shape": shape.model_dump(),
        "journeys_per_s": round(statistics.median(j.per_s for j in journeys), 1),
        "noop_per_s": round(statistics.median(o.per_s for o in noops), 1),
        "ratio": round(statistics.median(ratios), 3),
        "cpu_ms": {"journey": journey_ms, "noop": noop_ms},
        "cpu_ratio": round(sum(noop_ms.values()) / sum(journey_ms.values()), 3),
    }


def median_cpu(rounds: list[Round]) -> dict[str, float]:
    return {
        "worker": round(statistics.median(r.worker_ms for r in rounds), 1),
        "server": round(statistics.median(r.server_ms for r in rounds), 1),
    }


def exit_on_sigterm() -> None:
    """SIGTERM as SystemExit, so a stopped benchmark still stops its server and worker."""
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))


def main() -> None:
    exit_on_sigterm()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--journeys", type=int, default=200, help="started at once per round")
    parser.add_argument("--rounds", type=int, default=5, help="journey rounds (and as many no-op)")
    args = parser.parse_args()
    if args.journeys < 1 or args.rounds < 1:
        parser.error("--journeys and --rounds must be at least 1")
    print(json.dumps(asyncio.run(measure(args.journeys, args.rounds))))


if __name__ == "__main__":
    main()
