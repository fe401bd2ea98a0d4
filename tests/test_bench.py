"""The benchmarks still run and print their one JSON line (figures are not asserted: timing)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import Any
from uuid import uuid4

import pytest
from sqlalchemy.engine import make_url

from retention.runtime.settings import ROOT

# Each runs a benchmark script in a process of its own: `make check` leaves them to `make test`.
pytestmark = pytest.mark.slow


def bench_figures(script: str, *args: str) -> dict[str, Any]:
    """Run bench/SCRIPT with ARGS; the JSON line it printed last."""
    run = subprocess.run(
        [sys.executable, str(ROOT / "bench" / script), *args],
        capture_output=True,
        text=True,
        timeout=240,
        check=True,
    )
    figures: dict[str, Any] = json.loads(run.stdout.strip().splitlines()[-1])
    return figures


def test_rules_benchmark_prints_its_figures() -> None:
    figures = bench_figures("rules.py", "--decisions", "400")

    assert figures["bench"] == "rules" and figures["decisions"] == 400
    assert figures["live_sessions_after"] == 0
    assert figures["full_per_s"] > 0 and figures["floor_per_s"] > 0


def test_scoring_benchmark_prints_its_figures() -> None:
    figures = bench_figures("scoring.py", "--customers", "300")

    assert figures["bench"] == "scoring" and figures["customers"] == 300
    assert figures["end_to_end_per_s"] > 0 and figures["floor_per_s"] > 0
    assert 0 < figures["ratio"] <= 2
    assert set(figures["us_per_customer"]) == {
        "features",
        "model_score",
        "risk_factors",
        "drivers_and_objects",
    }


@pytest.mark.skipif(
    not os.environ.get("RETENTION_TEST_DATABASE_URL"),
    reason="creates PostgreSQL databases of its own (RETENTION_TEST_DATABASE_URL names the server)",
)
def test_contacts_benchmark_imports_stores_reads_back_and_scores_every_account() -> None:
    server = make_url(os.environ["RETENTION_TEST_DATABASE_URL"])
    url = server.set(database=f"bench_contacts_{uuid4().hex[:8]}")
    figures = bench_figures(
        "contacts_scale.py",
        *("--customers", "40", "--contacts", "6", "--page-size", "15"),
        *("--database-url", url.render_as_string(hide_password=False)),
    )

    assert figures["bench"] == "contacts_scale"
    assert (figures["customers"], figures["contacts"]) == (40, 6)
    baseline, with_contacts = figures["baseline"], figures["with_contacts"]
    for population in (baseline, with_contacts):
        assert population["imported"] == population["scored"] == 40
        assert population["failures"] == 0 and population["read_back_customers"] == 40
        assert population["imported_per_s"] > 0 and population["scored_per_cpu_s"] > 0
    assert (baseline["contacts_stored"], baseline["contacts_read_back"]) == (0, 0)
    assert with_contacts["contacts_stored"] == with_contacts["contacts_read_back"] == 40 * 6
    assert with_contacts["file_bytes_per_account"] > baseline["file_bytes_per_account"]
    assert figures["same_at_risk"] is True  # the contacts show the champion status drawn
    assert figures["score_cpu_ratio"] > 0 and figures["import_cpu_ratio"] > 0


@pytest.mark.e2e
def test_journeys_benchmark_prints_its_figures() -> None:
    figures = bench_figures("journey_throughput.py", "--journeys", "4", "--rounds", "1")

    assert figures["bench"] == "journeys" and figures["journeys"] == 4
    # assess_and_decide, record, deliver: read from a real journey's history
    assert figures["shape"]["activities"] >= 3 and figures["shape"]["timers"] >= 0
    assert figures["journeys_per_s"] > 0 and figures["noop_per_s"] > 0
    assert figures["ratio"] > 0
    for workload in ("journey", "noop"):  # the worker's CPU and the dev server's, both counted
        assert figures["cpu_ms"][workload]["worker"] > 0, figures
        assert figures["cpu_ms"][workload]["server"] > 0, figures
    assert figures["cpu_ratio"] > 0


@pytest.mark.e2e
def test_worker_memory_benchmark_prints_its_figures() -> None:
    figures = bench_figures("worker_memory.py", "--journeys", "6", "--first", "3", "--batch", "3")

    assert figures["bench"] == "worker_memory" and figures["journeys"] == 6
    assert figures["rss_first_kib"] > 0 and figures["rss_last_kib"] > 0
    assert figures["journeys_per_s"] > 0


@pytest.mark.e2e
def test_signal_cost_benchmark_prints_its_figures() -> None:
    figures = bench_figures("signal_cost.py", "--signals", "200", "--batch", "50", "--rounds", "1")

    assert figures["bench"] == "signal_cost" and figures["signals"] == 200
    costs = figures["cpu_ms_per_1000_signals"]
    assert set(costs) == {"journey", "sink"}
    assert set(costs["journey"]) == {"worker", "sdk_sandbox", "unsandboxed"}
    assert figures["journey_over_sink"] > 0


@pytest.mark.e2e
def test_retrain_beside_journeys_benchmark_prints_its_figures() -> None:
    figures = bench_figures(
        "retrain_beside_journeys.py", "--journeys", "3", "--rate", "5", "--history", "1500"
    )

    assert figures["bench"] == "retrain_beside_journeys" and figures["journeys"] == 3
    assert figures["quiet"]["overlap"] is None  # no retrain to overlap with
    for layout in ("quiet", "one_queue", "all", "split"):
        delays = figures[layout]
        assert 0 < delays["median_s"] <= delays["p95_s"] <= delays["max_s"]
    assert all(figures[layout]["retrain_s"] > 0 for layout in ("one_queue", "all", "split"))


@pytest.mark.e2e
def test_ingest_benchmark_prints_its_figures() -> None:
    figures = bench_figures(
        "ingest.py",
        "--journeys",
        "3",
        "--events",
        "20",
        "--senders",
        "4",
        "--coalesce-seconds",
        "1",
    )

    assert figures["bench"] == "ingest" and figures["webhooks"] == 60
    assert figures["accepted_per_s"] > 0 and figures["forwarded_per_s"] > 0
    assert (figures["refused"], figures["lost"], figures["duplicated"]) == (0, 0, 0)
    assert figures["wedged"] == 0 and 0 < figures["signals"] < 60
    steady = ("backlog_slope_per_s", "due_backlog_slope_per_s", "due_backlog_max", "samples")
    assert {f"steady_{k}" for k in steady} <= set(figures)  # None: too short to sample


def test_every_strategy_costs_at_most_one_and_a_half_times_what_its_plan_needs() -> None:
    figures = bench_figures("journey_cost.py")

    for strategy in ("critical_save", "proactive_engagement", "nurture"):
        today, before = figures[strategy]["today"], figures[strategy]["before"]
        assert today["ratio"] <= 1.5, (strategy, today)
        assert today["history_kib"] < before["history_kib"], strategy
