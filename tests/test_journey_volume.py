"""A journey at production event volume: thousands of events from concurrent senders, on the
real dev server and worker.py (bench/event_flood.py drives them and reports what it saw).

Figures of speed are not asserted (these machines are noisy); what must hold at any speed is."""

from __future__ import annotations

import pytest
from temporalio.service import RPCError, RPCStatusCode
from test_bench import bench_figures

from retention.journey_state import JourneyOptions
from retention.runtime.operations import JourneyBusy, _rpc_error

EVENTS = 4_000
SMALL_KIB = 64  # the state answer and each run's input, whatever the volume
IN_FLIGHT_UPDATES = 10  # Temporal's default `history.maxInFlightUpdates`


@pytest.mark.e2e
@pytest.mark.timeout(300)
def test_a_journey_flooded_by_concurrent_senders_keeps_running_and_counts_every_event() -> None:
    """Through `send_event`, as the CLI and the ingest service send. Raw signals at this rate
    fail it: runs that cannot continue as new while signals keep arriving (bench/RESULTS.md)."""
    flood = bench_figures("event_flood.py", "--events", str(EVENTS), "--senders", "32")

    assert flood["accounted"] == EVENTS and flood["running"]
    assert flood["failed_tasks"] == 0, flood["failed_task_kinds"]
    assert flood["unhandled_command"] == 0  # each continue-as-new found its quiet moment
    assert flood["state_failures"] == 0 and flood["state_answers"] > 0
    # it continued as new while the events kept coming, each run holding its share and no more
    limit = JourneyOptions().continue_as_new_after_events
    assert flood["runs"] >= EVENTS // limit
    assert flood["max_events_per_run"] < limit + IN_FLIGHT_UPDATES
    assert flood["state_kib"] < SMALL_KIB and flood["max_run_input_kib"] < SMALL_KIB


@pytest.mark.parametrize(
    ("status", "message"),
    [
        (RPCStatusCode.RESOURCE_EXHAUSTED, "Workflow is busy."),
        (RPCStatusCode.INVALID_ARGUMENT, "exceeded workflow execution limit for signal events"),
        (RPCStatusCode.UNAVAILABLE, "workflow update was aborted"),
        (
            RPCStatusCode.FAILED_PRECONDITION,
            "Unable to perform workflow execution update due to Workflow Task in failed state.",
        ),
    ],
)
def test_a_journey_refusing_signals_for_the_moment_is_busy_not_gone(
    status: RPCStatusCode, message: str
) -> None:
    refused = _rpc_error(RPCError(message, status, b""), "acme")

    assert isinstance(refused, JourneyBusy)  # senders wait it out; the forwarder keeps the rows
    assert "acme" in str(refused)
