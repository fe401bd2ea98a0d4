"""The worker's CPU per `customer_event` signal, in the workflow sandbox and without it, against a
workflow that only counts signals, measured by replaying the same flood.

    .venv/bin/python bench/signal_cost.py [--signals 3000] [--batch 100] [--rounds 5]

A dev server and an in-process worker (worker.py's workflows and real activities, a temporary
SQLite database, the capture-only outbox, baseline-0 scoring) run one nurture journey until it
waits for its next step, and a no-op `BenchSignalSink` (bench/signal_sink.py) until it waits for
signals; both histories are fetched and the server stopped. Each history then has the same
flood appended: `--signals` signals (bench/event_flood.py's events: mostly `feature_used`, a
login in every 50), `--batch` to a workflow task, 2.5 ms apart (400 signals/s). Built rather
than sent so every run replays the same workflow tasks, whatever the machine's load.

Each history is replayed with `temporalio.worker.Replayer` and the pydantic converter, with
and without the flood, by three runners: worker.py's (`retention.runtime.sandbox`), the SDK's
default sandbox (what worker.py ran before) and the SDK's unsandboxed runner;
the flood's cost is the difference, in CPU seconds of this process (`time.process_time()`:
Python, the SDK's core threads; not wall-clock, so a busy machine does not inflate it), the
median over `--rounds` alternating rounds.

Prints one JSON line:
- cpu_ms_per_1000_signals: journey and sink, by each runner;
- in_activations_ms_per_1000_signals: of that, the CPU of activations (workflow code and the
  SDK's dispatch, on the workflow thread: what the 2 s deadlock detector watches);
- journey_over_sink: the journey's cost ÷ the sink's, worker.py's runner (what our handler
  adds to what the SDK costs anyway);
- sandbox_over_unsandboxed: the journey's cost in worker.py's runner ÷ unsandboxed.
"""

from __future__ import annotations

import argparse
import asyncio
import concurrent.futures
import json
import statistics
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

from event_flood import event
from journey_throughput import dev_server, exit_on_sigterm, quiet_runtime, sample_customer
from signal_sink import SignalSink

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from temporalio.api.common.v1 import Payloads  # noqa: E402
from temporalio.api.enums.v1 import EventType  # noqa: E402
from temporalio.api.history.v1 import (  # noqa: E402
    HistoryEvent,
    WorkflowExecutionSignaledEventAttributes,
)
from temporalio.bridge.proto.workflow_activation import WorkflowActivation  # noqa: E402
from temporalio.bridge.proto.workflow_completion import WorkflowActivationCompletion  # noqa: E402
from temporalio.client import Client, WorkflowHandle, WorkflowHistory  # noqa: E402
from temporalio.converter import SerializationContext  # noqa: E402
from temporalio.converter._extstore import StorageDriverStoreContext  # noqa: E402
from temporalio.worker import (  # noqa: E402
    Replayer,
    UnsandboxedWorkflowRunner,
    Worker,
    WorkflowInstance,
    WorkflowInstanceDetails,
    WorkflowRunner,
)
from temporalio.worker._command_aware_visitor import CommandInfo  # noqa: E402
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner  # noqa: E402
from temporalio.workflow import Info, _Definition  # noqa: E402

from retention.journey_state import JourneyOptions  # noqa: E402
from retention.runtime.operations import start_journey  # noqa: E402
from retention.runtime.sandbox import workflow_runner  # noqa: E402
from retention.runtime.temporal import DATA_CONVERTER, connect  # noqa: E402
from retention.store.db import make_engine  # noqa: E402
from worker import WORKFLOWS, build_activities  # noqa: E402

TASK_QUEUE = "bench-signal-cost"
CUSTOMER = "signal-cost"
SIGNAL_GAP = timedelta(milliseconds=2.5)  # 400 signals/s, as bench/event_flood.py at 64 senders
NEVER = 10**9  # neither workflow ends or continues as new during the flood
IDLE_TIMEOUT_S = 120
POLL_S = 0.2
RUNNERS = {
    "worker": workflow_runner(DATA_CONVERTER),  # worker.py's, with connect()'s converter
    "sdk_sandbox": SandboxedWorkflowRunner(),  # the SDK's default, as worker.py ran before
    "unsandboxed": UnsandboxedWorkflowRunner(),
}
TASK_EVENTS = (
    EventType.EVENT_TYPE_WORKFLOW_TASK_SCHEDULED,
    EventType.EVENT_TYPE_WORKFLOW_TASK_STARTED,
    EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED,
)


@asynccontextmanager
async def recording_worker(client: Client, tmp: Path) -> AsyncIterator[None]:
    """worker.py's workflows and real activities, plus the sink, on one in-process worker."""
    engine = make_engine(f"sqlite:///{tmp / 'retention.db'}")
    with concurrent.futures.ThreadPoolExecutor(max_workers=4) as executor:
        async with Worker(
            client,
            task_queue=TASK_QUEUE,
            workflows=[*WORKFLOWS, SignalSink],
            activities=build_activities(engine, ROOT / "rules", tmp / "outbox"),
            activity_executor=executor,
        ):
            yield


async def idle_history(handle: WorkflowHandle[Any, Any]) -> WorkflowHistory:
    """The history once the workflow waits: no workflow task or activity pending, and no new
    event for a poll."""
    async with asyncio.timeout(IDLE_TIMEOUT_S):
        seen = -1
        while True:
            raw = (await handle.describe()).raw_description
            history = await handle.fetch_history()
            idle = not raw.pending_activities and not raw.HasField("pending_workflow_task")
            if idle and len(history.events) == seen:
                return history
            seen = len(history.events)
            await asyncio.sleep(POLL_S)


async def record_prefixes() -> tuple[WorkflowHistory, WorkflowHistory]:
    """A journey waiting for its next step and a sink waiting for signals: their histories."""
    with (
        tempfile.TemporaryDirectory(prefix="bench-signal-cost-") as name,
        dev_server(Path(name)) as address,
    ):
        client = await connect(address=address, runtime=quiet_runtime())
        async with recording_worker(client, Path(name)):
            options = JourneyOptions(continue_as_new_after_events=NEVER)
            journey = await start_journey(
                client, sample_customer(CUSTOMER), None, options, task_queue=TASK_QUEUE
            )
            sink = await client.start_workflow(
                SignalSink.run, NEVER, id="bench-signal-sink", task_queue=TASK_QUEUE
            )
            return await idle_history(journey), await idle_history(sink)


def flooded(prefix: WorkflowHistory, signals: int, batch: int) -> WorkflowHistory:
    """`prefix` and then `signals` customer events, `batch` to a workflow task; the tasks are
    copies of the prefix's last (no commands: neither workflow answers a signal with one)."""
    templates = {e.event_type: e for e in prefix.events if e.event_type in TASK_EVENTS}
    events = list(prefix.events)
    at = events[-1].event_time.ToDatetime()
    for start in range(0, signals, batch):
        for n in range(start, min(signals, start + batch)):
            at += SIGNAL_GAP
            events.append(_signaled(len(events) + 1, at, n))
        scheduled, started, completed = (
            _copy(templates[kind], len(events) + 1 + i, at) for i, kind in enumerate(TASK_EVENTS)
        )
        scheduled.workflow_task_scheduled_event_attributes.attempt = 1
        started.workflow_task_started_event_attributes.scheduled_event_id = scheduled.event_id
        done = completed.workflow_task_completed_event_attributes
        done.scheduled_event_id, done.started_event_id = scheduled.event_id, started.event_id
        done.ClearField("sdk_metadata")  # flags are recorded once, at first use
        events += [scheduled, started, completed]
    return WorkflowHistory(prefix.workflow_id, events)


def _signaled(event_id: int, at: object, n: int) -> HistoryEvent:
    payloads = DATA_CONVERTER.payload_converter.to_payloads([event(n)])
    signaled = HistoryEvent(
        event_id=event_id,
        event_type=EventType.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED,
        workflow_execution_signaled_event_attributes=WorkflowExecutionSignaledEventAttributes(
            signal_name="customer_event", input=Payloads(payloads=payloads), identity="bench"
        ),
    )
    signaled.event_time.FromDatetime(at)  # type: ignore[arg-type]
    return signaled


def _copy(template: HistoryEvent, event_id: int, at: object) -> HistoryEvent:
    event = HistoryEvent()
    event.CopyFrom(template)
    event.event_id = event_id
    event.event_time.FromDatetime(at)  # type: ignore[arg-type]
    return event


class _TimedActivations(WorkflowInstance):
    """`inner`, adding the CPU each activation takes (on its thread) to `spent`."""

    def __init__(self, inner: WorkflowInstance, spent: list[float]) -> None:
        self._inner, self._spent = inner, spent

    def activate(self, act: WorkflowActivation) -> WorkflowActivationCompletion:
        start = time.thread_time()
        try:
            return self._inner.activate(act)
        finally:
            self._spent[0] += time.thread_time() - start

    def get_serialization_context(
        self, command_info: CommandInfo | None
    ) -> SerializationContext | None:
        return self._inner.get_serialization_context(command_info)

    def get_external_store_context(
        self, command_info: CommandInfo | None
    ) -> StorageDriverStoreContext:
        return self._inner.get_external_store_context(command_info)

    def get_info(self) -> Info:
        return self._inner.get_info()

    def get_thread_id(self) -> int | None:
        return self._inner.get_thread_id()


@dataclass(frozen=True)
class TimedRunner(WorkflowRunner):
    """`inner`, timing its instances' activations: the part of a workflow task that runs
    workflow code (and that the deadlock detector watches); the rest is the SDK decoding and
    encoding payloads on the event loop's thread."""

    inner: WorkflowRunner
    spent: list[float] = field(default_factory=lambda: [0.0])

    def prepare_workflow(self, defn: _Definition) -> None:
        self.inner.prepare_workflow(defn)

    def create_instance(self, det: WorkflowInstanceDetails) -> WorkflowInstance:
        return _TimedActivations(self.inner.create_instance(det), self.spent)

    def set_worker_level_failure_exception_types(
        self, types: Sequence[type[BaseException]]
    ) -> None:
        self.inner.set_worker_level_failure_exception_types(types)


async def replay_cpu(
    replayer: Replayer, runner: TimedRunner, history: WorkflowHistory
) -> tuple[float, float]:
    """CPU seconds of this process to replay `history`, and of them in activations."""
    start, activations = time.process_time(), runner.spent[0]
    await replayer.replay_workflow(history, raise_on_replay_failure=True)
    return time.process_time() - start, runner.spent[0] - activations


async def measure(signals: int, batch: int, rounds: int) -> dict[str, object]:
    journey, sink = await record_prefixes()
    workflows = [*WORKFLOWS, SignalSink]
    runners = {name: TimedRunner(runner) for name, runner in RUNNERS.items()}
    replayers = {
        name: Replayer(workflows=workflows, data_converter=DATA_CONVERTER, workflow_runner=runner)
        for name, runner in runners.items()
    }
    prefixes = {"journey": journey, "sink": sink}
    floods = {kind: flooded(h, signals, batch) for kind, h in prefixes.items()}
    costs: dict[tuple[str, str], list[tuple[float, float]]] = {}
    for r in range(rounds + 1):  # the first round warms imports and caches: not counted
        for name, replayer in replayers.items():
            for kind in prefixes:
                full = await replay_cpu(replayer, runners[name], floods[kind])
                base = await replay_cpu(replayer, runners[name], prefixes[kind])
                if r:
                    costs.setdefault((kind, name), []).append(
                        (full[0] - base[0], full[1] - base[1])
                    )

    def per_1000(part: int) -> dict[str, dict[str, float]]:
        return {
            kind: {
                name: round(
                    statistics.median(c[part] for c in costs[(kind, name)]) / signals * 1e6, 1
                )
                for name in runners
            }
            for kind in prefixes
        }

    total = per_1000(0)
    return {
        "bench": "signal_cost",
        "signals": signals,
        "batch": batch,
        "rounds": rounds,
        "cpu_ms_per_1000_signals": total,
        "in_activations_ms_per_1000_signals": per_1000(1),
        "journey_over_sink": round(total["journey"]["worker"] / total["sink"]["worker"], 2),
        "sandbox_over_unsandboxed": round(
            total["journey"]["worker"] / total["journey"]["unsandboxed"], 2
        ),
    }


def main() -> None:
    exit_on_sigterm()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--signals", type=int, default=3000, help="in the flood replayed")
    parser.add_argument("--batch", type=int, default=100, help="signals per workflow task")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    if min(args.signals, args.batch, args.rounds) < 1:
        parser.error("--signals, --batch and --rounds must be at least 1")
    print(json.dumps(asyncio.run(measure(args.signals, args.batch, args.rounds))))


if __name__ == "__main__":
    main()
