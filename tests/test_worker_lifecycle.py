"""worker.py as an orchestrator runs it: `/health` says whether it can work, and SIGTERM stops
it cleanly, also once the Temporal server has gone away."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from factories import customer_data
from test_end_to_end import ROOT, Stack, _worker_ready, until
from test_end_to_end_delivery import health

from retention.runtime.devserver import free_port, start_dev_server, stop, temporal_cli
from retention.scan.schedule import MANUAL_SCAN_ID
from worker import HEAVY_NICENESS, activity_threads

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(240)]


def test_a_worker_whose_server_went_away_says_so_and_still_stops_on_sigterm(
    tmp_path: Path,
) -> None:
    probe = f"127.0.0.1:{free_port()}"
    server, env = stack(tmp_path, RETENTION_HEALTH_ADDRESS=probe)
    log = tmp_path / "worker.log"
    worker = spawn(env, log, "all")
    try:
        until(lambda: health(probe) == (200, "ready"), "the worker to say it is ready")

        stop(server)
        until(lambda: health(probe) == (503, "unreachable"), "the worker to see the server gone")
        worker.send_signal(signal.SIGTERM)

        assert worker.wait(timeout=60) == 0, log.read_text()
        assert "worker stopped" in log.read_text() or "exiting" in log.read_text()
    finally:
        if worker.poll() is None:
            worker.kill()
        stop(server)


def test_a_scan_scores_only_on_a_heavy_worker_and_journeys_on_theirs(tmp_path: Path) -> None:
    # `scan --now` starts the scan by hand when there is no schedule
    server, env = stack(tmp_path, RETENTION_PORTFOLIO_SCAN_EVERY="off", COLUMNS="200")
    files = [tmp_path / "at-risk.json", tmp_path / "healthy.json"]
    for file, data in zip(files, [customer_data(**AT_RISK), customer_data()], strict=True):
        file.write_text(json.dumps(data))
    workers: list[subprocess.Popen[bytes]] = []
    try:
        workers.append(spawn(env, tmp_path / "journeys.log", "journeys"))
        starter(env, "customers", "import", *map(str, files))
        scan = subprocess.Popen(
            [sys.executable, "starter.py", "scan", "--now"],
            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        # no heavy worker yet: the scan's first page waits on the heavy queue, unscored
        until(lambda: scheduled_on(env, "retention-heavy"), "the page to wait for a heavy worker")
        assert scan.poll() is None

        workers.append(spawn(env, tmp_path / "heavy.log", "heavy"))
        out, err = scan.communicate(timeout=120)
        assert scan.returncode == 0, err
        assert "completed: scored 2 · at_risk 1 · started 1" in out
        state = json.loads(starter(env, "show", "tls-crit", "--json"))
        assert state["strategy"] == "critical_save"  # the journey ran on the journeys worker
    finally:
        for worker in workers:
            stop(worker)
        stop(server)


def stack(tmp_path: Path, **settings: str) -> tuple[subprocess.Popen[bytes], dict[str, str]]:
    """A dev server of its own, and the environment a worker.py or starter.py needs for it."""
    port = free_port()
    server = start_dev_server(tmp_path / "temporal.db", port=port, ui_port=free_port())
    return server, {
        **os.environ,
        "RETENTION_TEMPORAL_ADDRESS": f"127.0.0.1:{port}",
        "RETENTION_DATABASE_URL": f"sqlite:///{tmp_path / 'retention.db'}",
        "RETENTION_OUTBOX_DIR": str(tmp_path / "outbox"),
        "RETENTION_MODEL_DIR": "baseline",
        "RETENTION_METRICS_ADDRESS": "",
        "RETENTION_HEALTH_ADDRESS": "",
        **settings,
    }


AT_RISK = {
    "profile": {"customer_id": "tls-crit", "company": "Initech"},
    "usage": {"days_since_last_login": 21, "logins_per_week": 1.0, "logins_per_week_prior": 6.0},
    "relationship": {"champion_status": "left", "nps": 3, "executive_engaged": False},
    "financial": {"annual_contract_value": 90_000.0, "payment_delays_90d": 2},
}


def spawn(env: dict[str, str], log: Path, role: str) -> subprocess.Popen[bytes]:
    with log.open("wb") as out:
        worker = subprocess.Popen(
            [sys.executable, "worker.py", "--role", role], cwd=ROOT, env=env, stdout=out, stderr=out
        )
    until(lambda: _worker_ready(worker, log), f"the {role} worker to poll", seconds=60)
    return worker


def starter(env: dict[str, str], *args: str) -> str:
    """`starter.py ARGS` as a user types it (test_end_to_end's Stack), its output."""
    return Stack(env["RETENTION_TEMPORAL_ADDRESS"], env, ROOT).cli(*args).stdout


def scheduled_on(env: dict[str, str], queue: str) -> bool:
    """A scan activity is scheduled on `queue` and not yet started."""
    done = subprocess.run(
        [temporal_cli(), "workflow", "describe", "--workflow-id", MANUAL_SCAN_ID, "-o", "json",
         "--address", env["RETENTION_TEMPORAL_ADDRESS"]],
        capture_output=True, text=True,
    )  # fmt: skip
    if done.returncode != 0:
        return False
    pending = json.loads(done.stdout).get("pendingActivities", [])
    return any(
        a.get("activityType", {}).get("name") == "score_page"
        and a.get("state") != "PENDING_ACTIVITY_STATE_STARTED"
        for a in pending
    )


def own_niceness() -> int:
    return os.getpriority(os.PRIO_PROCESS, threading.get_native_id())


def test_heavy_work_runs_on_threads_nicer_than_the_journeys_steps() -> None:
    """A retrain beside journeys on one machine takes only the CPU their due steps leave."""
    worker = os.getpriority(os.PRIO_PROCESS, 0)
    with activity_threads(1, HEAVY_NICENESS) as heavy, activity_threads(1, 0) as journeys:
        assert heavy.submit(own_niceness).result() == min(19, worker + HEAVY_NICENESS)
        assert journeys.submit(own_niceness).result() == worker


def test_a_worker_setting_out_of_range_stops_it_at_once_in_one_line_naming_it() -> None:
    env = {**os.environ, "RETENTION_WORKER_DRAIN_SECONDS": "-1"}
    done = subprocess.run(
        [sys.executable, "worker.py"], cwd=ROOT, env=env, capture_output=True, text=True,
        timeout=60,
    )  # fmt: skip
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert done.stderr.strip() == (
        "worker: RETENTION_WORKER_DRAIN_SECONDS: Input should be greater than or equal to 0"
    )
