"""Webhooks per second into the ingest service and out to running journeys, on the real dev
server, worker.py and `python -m retention.ingest` (each a subprocess, state in a temporary
folder, the shipped rules unless told otherwise).

    .venv/bin/python bench/ingest.py [--journeys 1000] [--events 200] [--senders 32]
        [--mix analytics|forward] [--coalesce-seconds S] [--database-url URL]
        [--outage-minutes K --outage-webhooks W] [--services N --database-url URL]

N journeys are started (the sample nurture customer under N ids) and each answers its `state`
query (the worker is past their first steps), then N × M signed webhooks
are posted, interleaved across customers, by concurrent senders as fast as the service answers.
`analytics` (default): three in four Segment `Feature Used`, one in five `Logged In`, the rest
Zendesk tickets; `forward`: only tickets, one signal each (the forwarder's worst case).
`--coalesce-seconds` shortens the shipped coalescing intervals so a short run drains in seconds
rather than minutes (it changes when rows go out, not how many signals a second go out).

Prints one JSON line: accepted_per_s (webhooks answered 202 a second while sending),
forwarded_per_s (rows settled a second, from the first webhook until the inbox is empty),
forwarded_while_sending_per_s, backlog_at_end_of_sending (rows waiting when the last webhook
was answered) and due_backlog_at_end_of_sending (those of them no longer inside a coalescing
interval: behind), steady_* (the backlog sampled every SAMPLE_S over the second half of the
sending: its growth, rows a second by least squares — about 0 when forwarding keeps up — and
the largest due backlog seen), signals (customer_event signals in the journeys' histories), lost and
duplicated (per journey: rows forwarded minus the events its signals stand for, `count` summed;
negative is a duplicate), wedged (a journey not running, whose `state` query fails, or whose
last workflow task failed or timed out — and still so after GRACE_S; slow_to_answer: those that
recovered within it), journeys_with_a_failed_workflow_task
(retried since: not stuck, but each a wobble to look into; `--logs DIR` keeps the logs).
With `--services N` (PostgreSQL only), N ingest services share the inbox, each with its own
forward rate, and the webhooks are spread over them round-robin, the senders shared. On
PostgreSQL, claim_lock_held_share and claim_lock_waited_share: of samples every 20 ms from the
first webhook until the inbox is empty, while rows wait, the share in which a claim holds the
claim lock, and in which another claim waits for it (the cost of serialised claims).
With `--outage-minutes K`: the Temporal server is stopped, W webhooks are posted, the
server is started again after K minutes; outage_backlog_at_restart (rows waiting then),
outage_drain_s (from the restart until the inbox is empty) and outage_drained_per_s (the two
divided). Before the outage and the audit the figures so far go to stderr.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from dataclasses import asdict, dataclass, field
from datetime import timedelta
from pathlib import Path
from statistics import linear_regression
from typing import Any

from pydantic import BaseModel
from sqlalchemy import Engine, func, text
from sqlmodel import col, select
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client, WorkflowExecutionStatus

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.append(str(ROOT / "tests"))  # after bench/: its journeys.py, not the tests'

from journey_throughput import exit_on_sigterm, quiet_runtime, sample_customer  # noqa: E402
from webhooks import Post, post_all, prepare, segment_track, zendesk_ticket  # noqa: E402

from retention.ingest import inbox  # noqa: E402
from retention.ingest.claims import CLAIM_LOCK  # noqa: E402
from retention.ingest.sources import Sources, load_sources  # noqa: E402
from retention.journey_state import JourneyOptions, journey_id  # noqa: E402
from retention.runtime.devserver import free_port, start_dev_server, stop  # noqa: E402
from retention.runtime.operations import recorded_event, start_journey  # noqa: E402
from retention.runtime.temporal import connect  # noqa: E402
from retention.store.db import make_engine, session  # noqa: E402
from retention.store.tables import InboxRow, utcnow  # noqa: E402

SECRETS = {"segment": "bench-segment-secret", "zendesk": "bench-zendesk-secret"}
READY_S = 180
DRAIN_TIMEOUT_S = 3_600
POLL_S = 0.5
PREFIX = "bi-"
QUERY_TIMEOUT = timedelta(seconds=30)
WARM_UP_S = 900
SAMPLE_S = 5.0  # the backlog, while sending
MIN_SAMPLES = 3
GRACE_S = 300  # a journey that fails the audit has this long to answer before it is wedged


class Audit(BaseModel):
    """What the journeys' histories and queries say after a run."""

    signals: int = 0
    lost: int = 0
    duplicated: int = 0
    wedged: int = 0
    slow_to_answer: int = 0
    journeys_with_a_failed_workflow_task: int = 0


class Figures(Audit):
    bench: str = "ingest"
    journeys: int
    services: int = 1
    events_per_journey: int
    webhooks: int
    senders: int
    mix: str
    database: str
    forward_rate: float
    coalesce_seconds: float | None
    accepted_per_s: float
    forwarded_per_s: float
    forwarded_while_sending_per_s: float
    backlog_at_end_of_sending: int
    due_backlog_at_end_of_sending: int
    refused: int
    steady_backlog_slope_per_s: float | None = None
    steady_due_backlog_slope_per_s: float | None = None
    steady_due_backlog_max: int | None = None
    steady_samples: int = 0
    claim_lock_held_share: float | None = None
    claim_lock_waited_share: float | None = None
    outage_minutes: float | None = None
    outage_webhooks: int | None = None
    outage_backlog_at_restart: int | None = None
    outage_drain_s: float | None = None
    outage_drained_per_s: float | None = None


@dataclass
class Stack:
    tmp: Path
    env: dict[str, str]
    engine: Engine
    sources: Sources
    server_port: int
    ingest_ports: list[int]
    server: subprocess.Popen[bytes] | None = None
    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.server_port}"

    def start_server(self) -> None:
        db = self.tmp / "temporal.db"
        self.server = start_dev_server(db, port=self.server_port, ui_port=free_port())

    def stop_server(self) -> None:
        if self.server is not None:
            stop(self.server)


# ---- the stack -------------------------------------------------------------------------------


@contextmanager
def running_stack(args: argparse.Namespace) -> Iterator[Stack]:
    with tempfile.TemporaryDirectory(prefix="bench-ingest-") as name, ExitStack() as cleanup:
        tmp = Path(name)
        if args.logs:  # runs last: after every process has stopped
            cleanup.callback(keep_logs, tmp, Path(args.logs))
        rules = rules_copy(tmp, args.coalesce_seconds)
        url = args.database_url or f"sqlite:///{tmp / 'retention.db'}"
        ports = [free_port() for _ in range(args.services)]
        stack = Stack(tmp, stack_env(tmp, rules, url), make_engine(url), load_sources(rules),
                      free_port(), ports)  # fmt: skip
        cleanup.callback(stack.engine.dispose)
        stack.start_server()
        cleanup.callback(stack.stop_server)
        worker = spawn(stack, [sys.executable, "worker.py"], "worker.log")
        cleanup.callback(stop, worker)
        until(lambda: "worker polling" in (tmp / "worker.log").read_text(), "worker.py", READY_S)
        for n, port in enumerate(ports):
            service = [sys.executable, "-m", "retention.ingest", "--port", str(port)]
            cleanup.callback(stop, spawn(stack, service, f"ingest-{n}.log"))
        for port in ports:
            until(lambda p=port: health(p) is not None, "the ingest services", READY_S)
        yield stack


def keep_logs(tmp: Path, folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for log in tmp.glob("*.log"):
        shutil.copy(log, folder / log.name)


def rules_copy(tmp: Path, coalesce_seconds: float | None) -> Path:
    rules = Path(shutil.copytree(ROOT / "rules", tmp / "rules"))
    if coalesce_seconds is not None:
        path = rules / "sources.yaml"
        lines = path.read_text().splitlines()
        shorter = [_shorter(line, coalesce_seconds) for line in lines]
        path.write_text("\n".join(shorter) + "\n")
    return rules


def _shorter(line: str, seconds: float) -> str:
    if "{coalesce:" not in line or line.lstrip().startswith("#"):
        return line
    return line[: line.index("{coalesce:")] + f"{{coalesce: {seconds:g}s}}"


def stack_env(tmp: Path, rules: Path, url: str) -> dict[str, str]:
    return {
        **os.environ,
        "RETENTION_DATABASE_URL": url,
        "RETENTION_RULES_DIR": str(rules),
        "RETENTION_OUTBOX_DIR": str(tmp / "outbox"),
        "RETENTION_MODEL_DIR": "baseline",
        "RETENTION_METRICS_ADDRESS": "",
        "RETENTION_INGEST_HEALTH_ADDRESS": "",
        "RETENTION_PORTFOLIO_SCAN_EVERY": "off",
        "RETENTION_MODEL_RETRAIN_EVERY": "off",
        "RETENTION_DATA_PURGE_EVERY": "off",
        **{f"RETENTION_INGEST_SECRET_{s.upper()}": key for s, key in SECRETS.items()},
    }


def spawn(stack: Stack, command: list[str], log: str) -> subprocess.Popen[bytes]:
    env = {**stack.env, "RETENTION_TEMPORAL_ADDRESS": stack.address}
    with (stack.tmp / log).open("ab") as out:
        process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=out, stderr=out)
    stack.processes.append(process)
    return process


def health(port: int) -> dict[str, Any] | None:
    try:
        url = f"http://127.0.0.1:{port}/health"
        with urllib.request.urlopen(url, timeout=10) as answer:
            found: dict[str, Any] = json.loads(answer.read())
            return found
    except OSError:
        return None


def until(probe: Callable[[], object], what: str, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while not probe():
        if time.monotonic() > deadline:
            raise SystemExit(f"gave up waiting for {what}")
        time.sleep(POLL_S)


# ---- webhooks and the inbox ------------------------------------------------------------------


def webhooks(stack: Stack, customers: list[str], events: int, mix: str, tag: str) -> list[Post]:
    """Interleaved across customers, so every customer has rows waiting at once."""
    return [_webhook(stack, c, f"{tag}-{c}-{m}", m, mix) for m in range(events) for c in customers]


def _webhook(stack: Stack, customer_id: str, event_id: str, m: int, mix: str) -> Post:
    if mix == "forward" or m % 20 == 19:
        return prepare(stack.sources, SECRETS, "zendesk", zendesk_ticket(event_id, customer_id))
    kind = "Logged In" if m % 5 == 1 else "Feature Used"
    return prepare(stack.sources, SECRETS, "segment", segment_track(event_id, customer_id, kind))


def rows_by_customer(engine: Engine) -> dict[str, Counter[str]]:
    """Rows forwarded, by customer and event type."""
    query = (
        select(InboxRow.customer_id, InboxRow.event_type, func.count())
        .where(col(InboxRow.status) == "forwarded")
        .group_by(col(InboxRow.customer_id), col(InboxRow.event_type))
    )
    found: dict[str, Counter[str]] = {}
    with session(engine) as db:
        for customer_id, event_type, n in db.exec(query).all():
            found.setdefault(str(customer_id), Counter())[str(event_type)] = int(n)
    return found


@dataclass
class Sending:
    accepted_per_s: float
    refused: int
    backlog: int
    due_backlog: int
    settled_at_end: int
    seconds: float
    samples: list[Sample]


@dataclass(frozen=True)
class Sample:
    """The inbox at one moment of the sending: rows waiting, and those of them due."""

    at: float
    backlog: int
    due: int


def send(stack: Stack, posts: list[Post], senders: int) -> Sending:
    start = time.monotonic()
    with sampling(stack, start) as samples:
        statuses = post_spread(stack.ingest_ports, posts, senders)
    seconds = time.monotonic() - start
    accepted = statuses.count(202)
    backlog, due = inbox.pending_count(stack.engine), inbox.pending_count(stack.engine, utcnow())
    return Sending(accepted / seconds, len(posts) - accepted, backlog, due, accepted - backlog,
                   seconds, samples)  # fmt: skip


@contextmanager
def sampling(stack: Stack, start: float) -> Iterator[list[Sample]]:
    """The backlog every SAMPLE_S while the block runs."""
    samples: list[Sample] = []
    done = threading.Event()

    def sample() -> None:
        while not done.wait(SAMPLE_S):
            backlog = inbox.pending_count(stack.engine)
            due = inbox.pending_count(stack.engine, utcnow())
            samples.append(Sample(time.monotonic() - start, backlog, due))

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        yield samples
    finally:
        done.set()
        sampler.join()


LOCK_SAMPLE_S = 0.02
_CLAIM_LOCK_STATE = text(
    "SELECT EXISTS (SELECT 1 FROM inbox WHERE status IN ('pending', 'forwarding')),"
    " coalesce(bool_or(granted), false), coalesce(bool_or(NOT granted), false)"
    " FROM pg_locks WHERE locktype = 'advisory' AND objid = :key"
)


@contextmanager
def claim_lock_sampling(stack: Stack) -> Iterator[dict[str, float]]:
    """PostgreSQL: the shares of LOCK_SAMPLE_S samples, while rows wait, in which a claim
    holds the claim lock and in which another waits for it (filled in when the block ends)."""
    shares: dict[str, float] = {}
    if stack.engine.dialect.name != "postgresql":
        yield shares
        return
    seen: Counter[str] = Counter()
    done = threading.Event()

    def sample() -> None:
        with stack.engine.connect() as db:
            while not done.wait(LOCK_SAMPLE_S):
                waiting, held, waited = db.execute(_CLAIM_LOCK_STATE, {"key": CLAIM_LOCK}).one()
                db.rollback()  # each sample its own snapshot
                if waiting:
                    seen.update(samples=1, held=int(held), waited=int(waited))

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        yield shares
    finally:
        done.set()
        sampler.join()
        for name in ("held", "waited"):
            shares[f"claim_lock_{name}_share"] = round(seen[name] / max(1, seen["samples"]), 3)


@dataclass(frozen=True)
class Steady:
    """The second half of the sending (past the coalescing intervals' filling up): how fast
    the backlog grew, rows a second by least squares (about 0: forwarding keeps up)."""

    backlog_slope_per_s: float | None = None
    due_backlog_slope_per_s: float | None = None
    due_backlog_max: int | None = None
    samples: int = 0


def steady(sending: Sending) -> Steady:
    later = [s for s in sending.samples if s.at >= sending.seconds / 2]
    if len(later) < MIN_SAMPLES:
        return Steady(samples=len(later))
    at = [s.at for s in later]
    return Steady(
        round(linear_regression(at, [s.backlog for s in later]).slope, 2),
        round(linear_regression(at, [s.due for s in later]).slope, 2),
        max(s.due for s in later),
        len(later),
    )


def drained(stack: Stack) -> float:
    """Seconds until nothing waits in the inbox."""
    start = time.monotonic()
    until(lambda: inbox.pending_count(stack.engine) == 0, "the inbox to drain", DRAIN_TIMEOUT_S)
    return time.monotonic() - start


# ---- the journeys ----------------------------------------------------------------------------


async def start_all(client: Client, customers: list[str]) -> None:
    limit = asyncio.Semaphore(64)

    async def one(customer_id: str) -> None:
        async with limit:
            await start_journey(client, sample_customer(customer_id), None, JourneyOptions())

    await asyncio.gather(*(one(c) for c in customers))


async def all_answering(client: Client, customers: list[str]) -> None:
    limit = asyncio.Semaphore(16)

    async def answers(customer_id: str) -> bool:
        async with limit:
            return await _answers(client, journey_id(customer_id))

    waiting, deadline = customers, time.monotonic() + WARM_UP_S
    while waiting and time.monotonic() < deadline:
        found = await asyncio.gather(*(answers(c) for c in waiting))
        waiting = [c for c, ok in zip(waiting, found, strict=True) if not ok]
    if waiting:
        raise SystemExit(f"{len(waiting)} journeys never answered their state query")


@dataclass
class Seen:
    """What one journey's history shows."""

    counted: Counter[str] = field(default_factory=Counter)
    signals: int = 0
    failures: int = 0  # workflow tasks that failed (and were retried)
    stuck: bool = False  # its last workflow task failed: nothing moves until one succeeds


async def audit(client: Client, engine: Engine, customers: list[str]) -> Audit:
    """Each journey's signals against its forwarded rows, and whether it still works: one that
    does not is given GRACE_S to catch up (a worker behind on its tasks is slow, not wedged)."""
    rows = await asyncio.to_thread(rows_by_customer, engine)
    result = Audit()
    flagged: list[str] = []
    limit = asyncio.Semaphore(16)

    async def one(customer_id: str) -> None:
        async with limit:
            seen = await _history(client, journey_id(customer_id))
            works = not seen.stuck and await _answers(client, journey_id(customer_id))
        result.signals += seen.signals
        result.journeys_with_a_failed_workflow_task += seen.failures > 0
        if not works:
            flagged.append(customer_id)
        mine = rows.get(customer_id, Counter())
        for kind in set(seen.counted) | set(mine):
            diff = mine[kind] - seen.counted[kind]
            result.lost += max(diff, 0)
            result.duplicated += max(-diff, 0)

    await asyncio.gather(*(one(c) for c in customers))
    still = await _still_failing(client, flagged)
    result.slow_to_answer, result.wedged = len(flagged) - len(still), len(still)
    for customer_id in still:
        print(f"wedged: {journey_id(customer_id)}", file=sys.stderr)
    return result


async def _still_failing(client: Client, flagged: list[str]) -> list[str]:
    deadline = time.monotonic() + GRACE_S
    while flagged and time.monotonic() < deadline:
        await asyncio.sleep(5)
        works = await asyncio.gather(*(_works(client, c) for c in flagged))
        flagged = [c for c, ok in zip(flagged, works, strict=True) if not ok]
    return flagged


async def _works(client: Client, customer_id: str) -> bool:
    seen = await _history(client, journey_id(customer_id))
    return not seen.stuck and await _answers(client, journey_id(customer_id))


_TASK_ENDS = {
    EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED: False,
    EventType.EVENT_TYPE_WORKFLOW_TASK_FAILED: True,
    EventType.EVENT_TYPE_WORKFLOW_TASK_TIMED_OUT: True,
}


async def _history(client: Client, workflow_id: str) -> Seen:
    seen = Seen()
    async for event in client.get_workflow_handle(workflow_id).fetch_history_events():
        if event.event_type in _TASK_ENDS:
            seen.stuck = _TASK_ENDS[event.event_type]
            seen.failures += event.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_FAILED
        if (sent := await recorded_event(client, event)) is not None:
            seen.counted[sent["type"]] += int(sent.get("count", 1))
            seen.signals += 1
    return seen


async def _answers(client: Client, workflow_id: str) -> bool:
    handle = client.get_workflow_handle(workflow_id)
    try:
        running = (await handle.describe()).status == WorkflowExecutionStatus.RUNNING
        await handle.query("state", rpc_timeout=QUERY_TIMEOUT)
    except Exception:  # any failure to answer is what is counted
        return False
    return running


# ---- the run ---------------------------------------------------------------------------------


def post_spread(ports: list[int], posts: list[Post], senders: int) -> list[int]:
    """`posts` round-robin over the services at `ports`, the senders shared among them."""
    n = len(ports)
    with ThreadPoolExecutor(max_workers=n) as pool:
        parts = pool.map(lambda i: post_all(ports[i], posts[i::n], max(1, senders // n)), range(n))
        return [status for part in parts for status in part]


async def measure(args: argparse.Namespace) -> Figures:
    customers = [f"{PREFIX}{n}" for n in range(args.journeys)]
    with running_stack(args) as stack:
        client = await connect(address=stack.address, runtime=quiet_runtime())
        await start_all(client, customers)
        await all_answering(client, customers)  # started and past their first steps
        posts = webhooks(stack, customers, args.events, args.mix, "e")
        start = time.monotonic()
        with claim_lock_sampling(stack) as lock:
            sent = await asyncio.to_thread(send, stack, posts, args.senders)
            await asyncio.to_thread(drained, stack)
        figures = _figures(args, stack, len(posts), sent, time.monotonic() - start)
        figures = figures.model_copy(update=lock)
        print(f"drained, not audited yet: {figures.model_dump_json()}", file=sys.stderr, flush=True)
        outage = await _outage(stack, args, customers) if args.outage_minutes else None
        client = await connect(address=stack.address, runtime=quiet_runtime())
        checked = await audit(client, stack.engine, customers)
    return figures.model_copy(update={**checked.model_dump(), **(outage or {})})


def _figures(
    args: argparse.Namespace, stack: Stack, webhooks: int, sent: Sending, total: float
) -> Figures:
    return Figures(
        journeys=args.journeys,
        services=args.services,
        events_per_journey=args.events,
        webhooks=webhooks,
        senders=args.senders,
        mix=args.mix,
        database=stack.engine.dialect.name,
        forward_rate=float(stack.env.get("RETENTION_INGEST_FORWARD_RATE", 200)),
        coalesce_seconds=args.coalesce_seconds,
        accepted_per_s=round(sent.accepted_per_s, 1),
        forwarded_per_s=round((webhooks - sent.refused) / total, 1),
        forwarded_while_sending_per_s=round(sent.settled_at_end / sent.seconds, 1),
        backlog_at_end_of_sending=sent.backlog,
        due_backlog_at_end_of_sending=sent.due_backlog,
        refused=sent.refused,
        **{f"steady_{k}": v for k, v in asdict(steady(sent)).items()},
    )


async def _outage(
    stack: Stack, args: argparse.Namespace, customers: list[str]
) -> dict[str, float | int]:
    """Temporal stopped while W webhooks arrive, started again after K minutes; the drain."""
    per_customer = max(1, args.outage_webhooks // len(customers))
    posts = webhooks(stack, customers, per_customer, args.mix, "o")
    stack.stop_server()
    down = time.monotonic()
    await asyncio.to_thread(send, stack, posts, args.senders)
    await asyncio.sleep(max(0.0, args.outage_minutes * 60 - (time.monotonic() - down)))
    backlog = inbox.pending_count(stack.engine)
    stack.start_server()
    seconds = await asyncio.to_thread(drained, stack)
    return {
        "outage_minutes": args.outage_minutes,
        "outage_webhooks": len(posts),
        "outage_backlog_at_restart": backlog,
        "outage_drain_s": round(seconds, 1),
        "outage_drained_per_s": round(backlog / seconds, 1),
    }


def main() -> None:
    exit_on_sigterm()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--journeys", type=int, default=1000)
    parser.add_argument("--events", type=int, default=200, help="webhooks per journey")
    parser.add_argument("--senders", type=int, default=32, help="concurrent senders")
    parser.add_argument("--mix", choices=["analytics", "forward"], default="analytics")
    parser.add_argument("--coalesce-seconds", type=float, default=None)
    parser.add_argument("--database-url", default=None, help="an empty database (default SQLite)")
    parser.add_argument("--logs", default=None, help="a folder to keep the processes' logs in")
    parser.add_argument("--outage-minutes", type=float, default=0.0)
    parser.add_argument("--outage-webhooks", type=int, default=5000)
    parser.add_argument("--services", type=int, default=1, help="ingest services on one inbox")
    args = parser.parse_args()
    if min(args.journeys, args.events, args.senders, args.services) < 1:
        parser.error("--journeys, --events, --senders and --services must be at least 1")
    if args.services > 1 and not (args.database_url or "").startswith("postgresql"):
        parser.error("--services above 1 needs --database-url postgresql+psycopg://...")
    figures = asyncio.run(measure(args)).model_dump()
    print(json.dumps({"bench": figures.pop("bench"), **figures}))


if __name__ == "__main__":
    main()
