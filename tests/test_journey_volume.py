"""A journey at production event volume: thousands of events from concurrent senders, on the
real dev server and worker.py (bench/event_flood.py drives them and reports what it saw).

Figures of speed are not asserted (these machines are noisy); what must hold at any speed is."""

from __future__ import annotations

import pytest
from test_bench import bench_figures

from retention.journey import JourneyOptions

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]

EVENTS = 4_000
SMALL_KIB = 64  # the state answer and each run's input, whatever the volume


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
