"""The real thing, as a user runs it: `temporal server start-dev`, worker.py and starter.py.

Every process is a subprocess on free ports, with its database, outbox and Temporal history in
the test's tmp_path. Waits are bounded polls on what the CLI reports, never wall-clock checks.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import pytest
from factories import customer_data
from sqlalchemy import create_engine, inspect, text

from retention.runtime.devserver import free_port, start_dev_server, stop, temporal_cli

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(180)]

ROOT = Path(__file__).resolve().parent.parent
T = TypeVar("T")

AT_RISK = {
    "profile": {"customer_id": "acme-crit", "company": "Acme Analytics"},
    "usage": {"days_since_last_login": 21, "logins_per_week": 1.0, "logins_per_week_prior": 6.0},
    "relationship": {"champion_status": "left", "nps": 3, "executive_engaged": False},
    "financial": {"annual_contract_value": 90_000.0, "payment_delays_90d": 2},
    "support": {"avg_ticket_sentiment": -0.7, "tickets_90d": 6},
}
WAVERING_USAGE = {"usage": {"days_since_last_login": 10, "logins_per_week": 2.0}}
WAVERING = {
    "profile": {"customer_id": "globex-nur", "company": "Globex", "email": "hank@globex.example"},
    **WAVERING_USAGE,
}


@dataclass
class Stack:
    address: str
    env: dict[str, str]
    tmp: Path

    def cli(self, *args: str, ok: bool = True) -> subprocess.CompletedProcess[str]:
        """`python starter.py ARGS` as a user types it."""
        done = subprocess.run(
            [sys.executable, "starter.py", *args],
            cwd=ROOT,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        if ok:
            assert done.returncode == 0, f"starter.py {' '.join(args)}:\n{done.stderr}"
        return done

    def state(self, customer_id: str) -> dict[str, Any]:
        return json.loads(self.cli("show", customer_id, "--json").stdout)

    def temporal(self, *args: str) -> subprocess.CompletedProcess[str]:
        """The `temporal` CLI against this stack's server."""
        done = subprocess.run(
            [temporal_cli(), *args, "--address", self.address],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == 0, done.stderr
        return done


def until(probe: Callable[[], T | None], what: str, seconds: float = 60) -> T:
    """Poll `probe` until it returns something truthy; fail naming `what` if it never does."""
    deadline = time.monotonic() + seconds
    while True:
        found = probe()
        if found:
            return found
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up waiting for {what}")
        time.sleep(0.3)


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """One server and one worker for the module; each test uses its own customers."""
    tmp_path = tmp_path_factory.mktemp("stack")
    port = free_port()
    server = start_dev_server(tmp_path / "temporal.db", port=port, ui_port=free_port())
    address = f"127.0.0.1:{port}"
    env = {
        **os.environ,
        "RETENTION_TEMPORAL_ADDRESS": address,
        "RETENTION_DATABASE_URL": f"sqlite:///{tmp_path / 'retention.db'}",
        "RETENTION_OUTBOX_DIR": str(tmp_path / "outbox"),
        # The story's strategies are baseline-0's; the shipped model is tested in
        # test_model_scorer.py and test_journey_model.py.
        "RETENTION_MODEL_DIR": "baseline",
        "RETENTION_METRICS_ADDRESS": f"127.0.0.1:{free_port()}",
        "RETENTION_LOG_FORMAT": "json",
        "COLUMNS": "200",
    }
    worker_log = tmp_path / "worker.log"
    worker: subprocess.Popen[bytes] | None = None
    try:
        with worker_log.open("wb") as log:
            worker = subprocess.Popen(
                [sys.executable, "worker.py"], cwd=ROOT, env=env, stdout=log, stderr=log
            )
        until(lambda: _worker_ready(worker, worker_log), "worker.py to poll", seconds=30)
        yield Stack(address=address, env=env, tmp=tmp_path)
    finally:
        if worker is not None:
            stop(worker)
        stop(server)


def _worker_ready(worker: subprocess.Popen[bytes], log: Path) -> bool:
    text = log.read_text(errors="replace")
    if worker.poll() is not None:
        raise AssertionError(f"worker.py exited ({worker.returncode}):\n{text}")
    return "worker polling" in text


def write_customer(stack: Stack, name: str, overrides: dict[str, Any]) -> Path:
    path = stack.tmp / f"{name}.json"
    path.write_text(json.dumps(customer_data(**overrides)), encoding="utf-8")
    return path


def test_operator_session_from_start_to_outcomes(stack: Stack) -> None:
    critical = write_customer(stack, "acme", AT_RISK)
    nurture = write_customer(stack, "globex", WAVERING)

    imported = stack.cli("customers", "import", str(nurture))
    assert "imported 1 customer" in imported.stdout

    started = stack.cli("start", str(critical), "--time-scale", "5000")
    assert "retention-acme-crit" in started.stdout

    again = stack.cli("start", str(critical), "--time-scale", "5000", ok=False)
    assert again.returncode == 1
    assert again.stderr.strip() == (
        "error: a journey is already running for acme-crit (retention-acme-crit)"
    )

    # list reads search attributes from visibility (eventually consistent): poll its JSON
    def critical_rows() -> list[dict[str, Any]] | None:
        rows = json.loads(stack.cli("list", "--tier", "critical", "--json").stdout)
        return rows or None

    rows = until(critical_rows, "the critical journey in `list --tier critical`")
    assert [r["customer_id"] for r in rows] == ["acme-crit"]
    assert rows[0]["strategy"] == "critical_save" and rows[0]["status"] == "running"
    table = stack.cli("list", "--tier", "critical").stdout
    assert "acme-crit" in table and "critical_save" in table

    # the critical plan spans ~4.6 min at this time scale: the event ends it well before
    stack.cli("event", "acme-crit", "meeting_booked", "--data", '{"via": "calendly"}')
    stack.cli("start", "--customer-id", "globex-nur")
    listed = stack.temporal("workflow", "list", "--query", 'RiskTier="critical"').stdout
    assert "retention-acme-crit" in listed and "retention-globex-nur" not in listed
    until(lambda: stack.state("globex-nur")["strategy"], "the nurture journey to be planned")
    paused = stack.cli("pause", "globex-nur", "--reason", "legal hold", "--by", "alice")
    assert "paused: legal hold" in paused.stdout
    refused = stack.cli("pause", "globex-nur", ok=False)
    assert (refused.returncode, refused.stderr.strip()) == (
        1,
        "error: pause refused: journey is already paused",
    )
    stack.cli("resume", "globex-nur")
    cancelled = stack.cli("cancel", "globex-nur", "--reason", "customer asked for no contact")
    assert "cancelled: customer asked for no contact" in cancelled.stdout

    acme = until(lambda: _closed(stack, "acme-crit"), "acme-crit to close")
    globex = until(lambda: _closed(stack, "globex-nur"), "globex-nur to close")
    assert acme["outcome"] == "exited:meeting_booked"
    [first, *_] = acme["events"]["recent"]
    assert first["type"] == "meeting_booked" and first["accepted"]
    assert globex["outcome"] == "cancelled" and globex["strategy"] == "nurture"

    shown = stack.cli("show", "acme-crit").stdout
    assert "exited:meeting_booked" in shown and "critical_save" in shown
    assert "executive_call" in shown and "meeting_booked" in shown
    assert "cancelled" in stack.cli("show", "globex-nur").stdout

    late = stack.cli("event", "acme-crit", "login", ok=False)
    assert late.returncode == 1 and "has ended" in late.stderr
    # the account timelines: the event as sent from here, the commands as their authors'
    acme_events = [e for e in _timeline(stack, "acme-crit") if e["kind"] == "event"]
    assert [(e["sender"], e["event_type"]) for e in acme_events] == [("cli", "meeting_booked")]
    commands = [
        (e["actor"], e["action"])
        for e in reversed(_timeline(stack, "globex-nur"))
        if e["kind"] == "audit" and e["actor"].startswith("operator:")
    ]
    assert [action for _, action in commands] == ["pause", "resume", "cancel"]
    assert commands[0] == ("operator:alice", "pause")
    missing = stack.cli("show", "nobody", ok=False)
    assert (missing.returncode, missing.stderr.strip()) == (1, "error: no journey for nobody")


def _timeline(stack: Stack, customer_id: str) -> list[dict[str, Any]]:
    entries: list[dict[str, Any]] = json.loads(stack.cli("timeline", customer_id, "--json").stdout)[
        "entries"
    ]
    return entries


def _closed(stack: Stack, customer_id: str) -> dict[str, Any] | None:
    state = stack.state(customer_id)
    return state if state["stage"] == "closed" else None


def test_a_journey_started_by_the_temporal_cli_runs(stack: Stack) -> None:
    request = {
        "customer": customer_data(profile={"customer_id": "cli-started"}, **WAVERING_USAGE),
        "options": {"time_scale": 50000},
    }

    stack.temporal(
        "workflow", "start",
        "--type", "RetentionJourney",
        "--task-queue", "retention-journeys",
        "--workflow-id", "retention-cli-started",
        "--input", json.dumps(request),
    )  # fmt: skip

    state = until(lambda: _planned(stack, "cli-started"), "the CLI-started journey's plan")
    assert state["strategy"] == "nurture" and state["customer_id"] == "cli-started"
    assert "nurture" in stack.cli("show", "cli-started").stdout
    stack.cli("cancel", "cli-started", "--reason", "test over")


def _planned(stack: Stack, customer_id: str) -> dict[str, Any] | None:
    state = stack.state(customer_id)
    return state if state["strategy"] else None


def test_the_worker_serves_metrics_and_its_logs_name_the_journey(stack: Stack) -> None:
    customer = write_customer(stack, "initech", {"profile": {"customer_id": "initech-ops"}})
    stack.cli("start", str(customer), "--time-scale", "50000")
    until(lambda: _planned(stack, "initech-ops"), "initech-ops to be planned")
    stack.cli("event", "initech-ops", "meeting_booked")
    until(lambda: _closed(stack, "initech-ops"), "initech-ops to close")

    # counters are exported on the SDK's interval: poll until the closed journey is counted
    metrics = until(
        lambda: _metric_lines(stack, 'retention_journeys_closed_total{outcome="exited"'),
        "the closed journey on /metrics",
    )
    assert metrics, "retention_journeys_closed_total"
    scraped = _scrape(stack)
    for counted in (
        "retention_journeys_started_total{",
        "retention_rule_decisions_total{",
        'retention_assessments_total{model_version="baseline-0"',
        "retention_sends_total{",
        "temporal_workflow_completed_total{",  # the SDK's own metrics, on the same endpoint
    ):
        assert counted in scraped or _labelled(scraped, counted), counted

    lines = [json.loads(line) for line in (stack.tmp / "worker.log").read_text().splitlines()
             if line.startswith("{")]  # fmt: skip
    about = [line for line in lines if line.get("customer_id") == "initech-ops"]
    assert {line["journey_id"] for line in about} == {"retention-initech-ops"}
    assert any(line["message"].startswith("journey closed: exited") for line in about)


def _scrape(stack: Stack) -> str:
    with urllib.request.urlopen(f"http://{stack.env['RETENTION_METRICS_ADDRESS']}/metrics") as got:
        return got.read().decode()


def _labelled(scraped: str, prefix: str) -> bool:
    """`name{a="b"` matches a line whose labels include a="b" in any position."""
    name, _, label = prefix.partition("{")
    return any(line.startswith(name + "{") and label in line for line in scraped.splitlines())


def _metric_lines(stack: Stack, prefix: str) -> list[str] | None:
    return [line for line in _scrape(stack).splitlines() if _labelled(line, prefix)] or None


def test_forget_erases_the_customer_everywhere_and_the_purge_is_scheduled(stack: Stack) -> None:
    customer = write_customer(
        stack, "umbrella", {"profile": {"customer_id": "umbrella-gdpr", "email": "ada@umb.example"}}
    )
    stack.cli("customers", "import", str(customer))
    stack.cli("start", "--customer-id", "umbrella-gdpr")
    until(lambda: _waiting_after_a_step(stack, "umbrella-gdpr"), "umbrella-gdpr's first step")

    dry_run = stack.cli("forget", "umbrella-gdpr").stdout
    assert "would be erased" in dry_run and "nothing changed" in dry_run
    assert "umbrella-gdpr" in _database_text(stack)

    done = stack.cli("forget", "umbrella-gdpr", "--yes", "--by", "dpo").stdout
    assert "Temporal: 1 journey run of umbrella-gdpr deleted" in done and "forgotten" in done
    gone = stack.cli("show", "umbrella-gdpr", ok=False)
    assert gone.stderr.strip() == "error: no journey for umbrella-gdpr"
    left = _database_text(stack)
    assert "umbrella-gdpr" not in left and "ada@umb.example" not in left
    assert "customer_forgotten" in left and "cli:dpo" in left
    assert not (stack.tmp / "outbox" / "retention-umbrella-gdpr").exists()

    schedule = stack.temporal("schedule", "describe", "--schedule-id", "data-purge").stdout
    assert "DataPurge" in schedule


def _waiting_after_a_step(stack: Stack, customer_id: str) -> dict[str, Any] | None:
    state = stack.state(customer_id)
    done = any(step["status"] == "done" for step in state["steps"])
    return state if done and state["stage"] == "waiting" else None


def _database_text(stack: Stack) -> str:
    """Every row of every table of the stack's database, as text."""
    engine = create_engine(stack.env["RETENTION_DATABASE_URL"])
    with engine.connect() as connection:
        rows = [
            repr(tuple(row))
            for table in inspect(connection).get_table_names()
            for row in connection.execute(text(f'SELECT * FROM "{table}"'))
        ]
    engine.dispose()
    return "\n".join(rows)
