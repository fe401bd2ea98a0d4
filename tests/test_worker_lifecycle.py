"""worker.py as an orchestrator runs it: `/health` says whether it can work, and SIGTERM stops
it cleanly, also once the Temporal server has gone away."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from test_end_to_end import ROOT, _worker_ready, until
from test_end_to_end_delivery import health

from retention.devserver import free_port, start_dev_server, stop

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(240)]


def test_a_worker_whose_server_went_away_says_so_and_still_stops_on_sigterm(
    tmp_path: Path,
) -> None:
    port, probe = free_port(), f"127.0.0.1:{free_port()}"
    server = start_dev_server(tmp_path / "temporal.db", port=port, ui_port=free_port())
    env = {
        **os.environ,
        "RETENTION_TEMPORAL_ADDRESS": f"127.0.0.1:{port}",
        "RETENTION_DATABASE_URL": f"sqlite:///{tmp_path / 'retention.db'}",
        "RETENTION_OUTBOX_DIR": str(tmp_path / "outbox"),
        "RETENTION_MODEL_DIR": "baseline",
        "RETENTION_METRICS_ADDRESS": "",
        "RETENTION_HEALTH_ADDRESS": probe,
    }
    log = tmp_path / "worker.log"
    with log.open("wb") as out:
        worker = subprocess.Popen(
            [sys.executable, "worker.py"], cwd=ROOT, env=env, stdout=out, stderr=out
        )
    try:
        until(lambda: _worker_ready(worker, log), "worker.py to poll", seconds=60)
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
