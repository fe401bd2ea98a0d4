"""One journey flooded with customer events: does it keep running, answering and counting?

    .venv/bin/python bench/event_flood.py [--events 50000] [--senders 64] [--bursts 5]

A dev server and worker.py (a subprocess, as users run it, with its own SQLite database and the
capture-only outbox, baseline-0 scoring) run one nurture journey. `--senders` concurrent senders
send events (mostly `feature_used`, a login in every 50) as fast as they are taken, in
`--bursts` bursts with a pause between: `--via update` (the default) through `send_event`, as
`starter.py event` and the ingest service do (the `record_event` update, which the journey may
refuse for a moment while it continues as new; send_event waits that out), `--via signal` as
raw `customer_event` signals, sending again what the server refuses for the moment. Meanwhile
the `state` query is asked every half second from a process of its own at normal priority, as an
operator's `starter.py show` would be. The senders run at a lower CPU priority than the server,
the worker and that operator, as if on machines of their own: on two cores, 64 senders at full
speed otherwise take the CPU the worker needs to keep up (and, asked from the senders' own
event loop, the query would time their queue, not the journey's answer).

Prints one JSON line:
- events, senders, via, seconds, events_per_s: what was sent and how fast it was taken;
- send_p50_s, send_p99_s, send_max_s: how long a sender waited for one event to be taken;
- resent: signals refused for the moment and sent again (the server's own back-pressure);
- gave_up: events send_event gave up on after `BUSY_PATIENCE` of a busy journey (sent again);
- refused_by_limit: of those, refused because a run held Temporal's 10,000 signals (must be 0);
- accounted: events the journey's summary counts (must equal events); running: still open;
- state_kib: the size of the `state` answer at the end;
- state_answers / state_failures, state_p50_s, state_p99_s, state_max_s: the `state` query
  throughout the flood;
- runs, max_events_per_run (signals and accepted updates), max_history_events_per_run,
  max_history_kib_per_run,
  max_run_input_kib: the journey's runs (continue-as-new) and the largest of them;
- failed_tasks: workflow tasks that failed other than by Temporal's own "signals arrived while
  continuing as new" (UnhandledCommand), which it retries at once; unhandled_command: those.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import multiprocessing.queues
import multiprocessing.synchronize
import os
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

from journey_throughput import dev_server, exit_on_sigterm, sample_customer
from worker_memory import TASK_QUEUE, start_worker

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from temporalio.api.enums.v1 import EventType, WorkflowTaskFailedCause  # noqa: E402
from temporalio.client import Client, WorkflowHandle  # noqa: E402
from temporalio.service import RPCError, RPCStatusCode  # noqa: E402

from retention.customer import CustomerEvent  # noqa: E402
from retention.journey_state import JourneyOptions, JourneyState, journey_id  # noqa: E402
from retention.runtime.devserver import stop  # noqa: E402
from retention.runtime.operations import (  # noqa: E402
    BUSY_FIRST_PAUSE,
    BUSY_MAX_PAUSE,
    BUSY_PATIENCE,
    SIGNAL_LIMIT,
    JourneyBusy,
    recorded_event,
    send_event,
    start_journey,
)
from retention.runtime.temporal import connect  # noqa: E402

CUSTOMER = "flood"
PROBE_EVERY_S = 0.5
PAUSE_BETWEEN_BURSTS_S = 2.0
SETTLE_TIMEOUT_S = 300
SENDER_NICE = 10
QUERY_TIMEOUT = timedelta(seconds=15)  # the CLI's own (`starter.py show`)
# Refusals a sender waits out: the server holds signals back while a run continues as new, and
# a loaded machine may time a call out; anything else is a defect and stops the benchmark.
TRANSIENT = {RPCStatusCode.RESOURCE_EXHAUSTED, RPCStatusCode.UNAVAILABLE,
             RPCStatusCode.DEADLINE_EXCEEDED, RPCStatusCode.FAILED_PRECONDITION}  # fmt: skip


@dataclass
class Refusals:
    resent: int = 0
    by_limit: int = 0
    gave_up: int = 0
    waits: list[float] = field(default_factory=list)


@dataclass
class Probes:
    answers: int = 0
    failures: Counter[str] = field(default_factory=Counter)
    seconds: list[float] = field(default_factory=list)


def event(n: int) -> dict[str, object]:
    kind = "login" if n % 50 == 0 else "feature_used"
    return {"type": kind, "data": {"n": n, "feature": f"f{n % 7}"}}


async def send_all(client: Client, via: str, numbers: list[int], refusals: Refusals) -> None:
    """Send each numbered event, each once it is taken; note how long each took."""
    for n in numbers:
        start = time.perf_counter()
        if via == "update":
            await record(client, n, refusals)
        else:
            await signal(client.get_workflow_handle(journey_id(CUSTOMER)), n, refusals)
        refusals.waits.append(time.perf_counter() - start)


async def record(client: Client, n: int, refusals: Refusals) -> None:
    """Through `send_event`; sent again when it gives up on a busy journey, as the ingest
    service's forwarder keeps the rows for its next pass."""
    while True:
        try:
            await send_event(client, CUSTOMER, CustomerEvent.model_validate(event(n)))
            return
        except JourneyBusy:
            refusals.gave_up += 1


async def signal(handle: WorkflowHandle[object, object], n: int, refusals: Refusals) -> None:
    """A raw `customer_event` signal, sent again while the server refuses it for the moment."""
    pause = BUSY_FIRST_PAUSE
    while True:
        try:
            return await handle.signal("customer_event", event(n))
        except RPCError as exc:
            over_limit = SIGNAL_LIMIT in exc.message
            if exc.status not in TRANSIENT and not over_limit:
                raise
            refusals.resent += 1
            refusals.by_limit += over_limit
            await asyncio.sleep(pause)  # as send_event waits a busy journey out
            pause = min(pause * 2, BUSY_MAX_PAUSE)


async def probe(address: str, workflow_id: str, stop: multiprocessing.synchronize.Event) -> Probes:
    client = await connect(address=address)
    handle = client.get_workflow_handle(workflow_id)
    probes = Probes()
    while not stop.is_set():
        start = time.perf_counter()
        try:
            await handle.query("state", result_type=JourneyState, rpc_timeout=QUERY_TIMEOUT)
            probes.answers += 1
        except Exception as exc:  # every kind of failure is counted, by its first words
            probes.failures[" ".join(str(exc).split()[:8])] += 1
        probes.seconds.append(time.perf_counter() - start)
        await asyncio.sleep(PROBE_EVERY_S)
    return probes


def operator(
    address: str,
    workflow_id: str,
    stop: multiprocessing.synchronize.Event,
    answers: multiprocessing.queues.Queue[Probes],
) -> None:
    """The prober's process: asks `state` until told to stop, then hands its figures back."""
    answers.put(asyncio.run(probe(address, workflow_id, stop)))


async def flood(client: Client, via: str, events: int, senders: int, bursts: int) -> Refusals:
    """Every event, `senders` at a time, in `bursts`."""
    per_burst = -(-events // bursts)
    refusals = Refusals()
    for start in range(0, events, per_burst):
        numbers = list(range(start, min(events, start + per_burst)))
        shares = [numbers[i::senders] for i in range(senders)]
        await asyncio.gather(*(send_all(client, via, s, refusals) for s in shares if s))
        await asyncio.sleep(PAUSE_BETWEEN_BURSTS_S)
    return refusals


async def settled(handle: WorkflowHandle[object, JourneyState], events: int) -> JourneyState:
    """The state once the journey counts every event (or as it is when time runs out)."""
    deadline = time.monotonic() + SETTLE_TIMEOUT_S
    while True:
        state = await handle.query("state", result_type=JourneyState)
        if state.events.received >= events or time.monotonic() > deadline:
            return state
        await asyncio.sleep(PROBE_EVERY_S)


async def run_figures(client: Client, workflow_id: str) -> dict[str, object]:
    """Per run of the journey: signals, history events and bytes; and failed workflow tasks."""
    unhandled = runs = most_sent = most_events = most_bytes = 0
    slowest_task_s = 0.0
    largest_input = 0
    failed: Counter[str] = Counter()
    async for listed in client.list_workflows(f'WorkflowId = "{workflow_id}"'):
        runs += 1
        history = await client.get_workflow_handle(
            workflow_id, run_id=listed.run_id
        ).fetch_history()
        sent = [await recorded_event(client, e) for e in history.events]
        most_sent = max(most_sent, sum(e is not None for e in sent))
        most_events = max(most_events, len(history.events))
        most_bytes = max(most_bytes, sum(e.ByteSize() for e in history.events))
        start = history.events[0].workflow_execution_started_event_attributes
        largest_input = max(largest_input, start.input.ByteSize())
        started = None
        for e in history.events:
            if e.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_STARTED:
                started = e.event_time.ToDatetime()
            elif e.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED and started:
                slowest_task_s = max(
                    slowest_task_s, (e.event_time.ToDatetime() - started).total_seconds()
                )
            if e.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_FAILED:
                cause = e.workflow_task_failed_event_attributes.cause
                if cause == WorkflowTaskFailedCause.WORKFLOW_TASK_FAILED_CAUSE_UNHANDLED_COMMAND:
                    unhandled += 1
                else:
                    message = e.workflow_task_failed_event_attributes.failure.message
                    failed[
                        " ".join(message.split()[:12]) or WorkflowTaskFailedCause.Name(cause)
                    ] += 1
    return {
        "runs": runs,
        "max_events_per_run": most_sent,
        "max_history_events_per_run": most_events,
        "max_history_kib_per_run": most_bytes // 1024,
        "max_run_input_kib": round(largest_input / 1024, 1),
        "failed_tasks": sum(failed.values()),
        "failed_task_kinds": dict(failed),
        "unhandled_command": unhandled,
        "slowest_task_s": round(slowest_task_s, 2),
    }


async def measure(via: str, events: int, senders: int, bursts: int) -> dict[str, object]:
    with (
        tempfile.TemporaryDirectory(prefix="bench-flood-") as name,
        dev_server(Path(name)) as address,
    ):
        worker = start_worker(Path(name), address)
        try:
            client = await connect(address=address)
            handle = await start_journey(
                client, sample_customer(CUSTOMER), None, JourneyOptions(), task_queue=TASK_QUEUE
            )
            spawn = multiprocessing.get_context("spawn")  # no fork of a process with gRPC threads
            stop_probing, answers = spawn.Event(), spawn.Queue()
            prober = spawn.Process(
                target=operator, args=(address, handle.id, stop_probing, answers)
            )
            prober.start()
            os.nice(SENDER_NICE)  # the server, the worker and the operator keep their priority
            start = time.perf_counter()
            refusals = await flood(client, via, events, senders, bursts)
            seconds = time.perf_counter() - start
            state = await settled(handle, events)
            stop_probing.set()
            probes = await asyncio.to_thread(answers.get)
            prober.join()
            figures = await run_figures(client, handle.id)
        finally:
            stop(worker)
    return {
        "bench": "event_flood",
        "events": events,
        "senders": senders,
        "bursts": bursts,
        "via": via,
        "seconds": round(seconds, 1),
        "events_per_s": round(events / seconds),
        **quantiles("send", refusals.waits),
        "resent": refusals.resent,
        "gave_up_after_s": BUSY_PATIENCE.total_seconds() if refusals.gave_up else None,
        "gave_up": refusals.gave_up,
        "refused_by_limit": refusals.by_limit,
        "accounted": state.events.received,
        "state_kib": round(len(state.model_dump_json()) / 1024, 1),
        "running": state.outcome is None,
        "state_answers": probes.answers,
        "state_failures": sum(probes.failures.values()),
        "state_failure_kinds": dict(probes.failures),
        **quantiles("state", probes.seconds),
        **figures,
    }


def quantiles(name: str, seconds: list[float]) -> dict[str, float | None]:
    ordered = sorted(seconds)

    def at(share: float) -> float | None:
        if not ordered:
            return None
        return round(ordered[min(len(ordered) - 1, int(share * len(ordered)))], 3)

    return {f"{name}_p50_s": at(0.5), f"{name}_p99_s": at(0.99), f"{name}_max_s": at(1.0)}


def main() -> None:
    exit_on_sigterm()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=50_000)
    parser.add_argument("--senders", type=int, default=64)
    parser.add_argument("--bursts", type=int, default=5)
    parser.add_argument("--via", choices=("update", "signal"), default="update")
    args = parser.parse_args()
    if min(args.events, args.senders, args.bursts) < 1:
        parser.error("--events, --senders and --bursts must be at least 1")
    print(json.dumps(asyncio.run(measure(args.via, args.events, args.senders, args.bursts))))


if __name__ == "__main__":
    main()
