"""A journey at production event volume: thousands of events from concurrent senders, on the
real dev server and worker.py (bench/event_flood.py drives them and reports what it saw).

Figures of speed are not asserted (these machines are noisy); what must hold at any speed is."""

from __future__ import annotations

import pytest
from temporalio.service import RPCError, RPCStatusCode
from test_bench import bench_figures

from retention.journey import JourneyOptions
from retention.runtime.operations import JourneyBusy, _rpc_error

EVENTS = 4_000
SMALL_KIB = 64  # the state answer and each run's input, whatever the volume


@pytest.mark.e2e
@pytest.mark.timeout(300)
def test_a_journey_flooded_by_concurrent_senders_keeps_running_and_counts_every_event() -> None:
    flood = bench_figures("event_flood.py", "--events", str(EVENTS), "--senders", "8")

    assert flood["accounted"] == EVENTS and flood["running"]
    assert flood["failed_tasks"] == 0, flood["failed_task_kinds"]
    assert flood["refused_by_limit"] == 0
    assert flood["state_failures"] == 0 and flood["state_answers"] > 0
    # it continued as new while the events kept coming, each run well inside Temporal's limits
    limit = JourneyOptions().continue_as_new_after_events
    assert flood["runs"] > EVENTS // limit // 2
    assert flood["max_signals_per_run"] < 10_000
    assert flood["state_kib"] < SMALL_KIB and flood["max_run_input_kib"] < SMALL_KIB


@pytest.mark.parametrize(
    ("status", "message"),
    [
        (RPCStatusCode.RESOURCE_EXHAUSTED, "Workflow is busy."),
        (RPCStatusCode.INVALID_ARGUMENT, "exceeded workflow execution limit for signal events"),
    ],
)
def test_a_journey_refusing_signals_for_the_moment_is_busy_not_gone(
    status: RPCStatusCode, message: str
) -> None:
    refused = _rpc_error(RPCError(message, status, b""), "acme")

    assert isinstance(refused, JourneyBusy)  # senders wait it out; the forwarder keeps the rows
    assert "acme" in str(refused)
