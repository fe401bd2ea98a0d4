"""Processes a fault test can kill and bring back: a supervised subprocess (worker.py, the
ingest service) and the Temporal dev server, restarted on the same port and database file."""

from __future__ import annotations

import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from test_ingest_service import _spawn

from retention.runtime.devserver import free_port, start_dev_server, stop


@dataclass
class Supervised:
    """One long-running subprocess, started again after each kill; every run appends to `log`
    and is ready once `ready_marker` appears in what that run wrote."""

    name: str
    command: list[str]
    env: dict[str, str]
    log: Path
    ready_marker: str
    process: subprocess.Popen[bytes] | None = None
    starts: int = 0
    kills: int = 0
    _offset: int = 0

    def start(self) -> None:
        self._offset = self.log.stat().st_size if self.log.exists() else 0
        self.process = _spawn(self.command, self.env, self.log)
        self.starts += 1

    def ready(self) -> bool:
        """True once this run said it is ready; fails naming the process if it exited."""
        assert self.process is not None, f"{self.name} was never started"
        with self.log.open("rb") as log:
            log.seek(self._offset)
            text = log.read().decode(errors="replace")
        if self.process.poll() is not None:
            raise AssertionError(f"{self.name} exited ({self.process.returncode}):\n{text}")
        return self.ready_marker in text

    def kill(self) -> None:
        """SIGKILL: no shutdown hook runs, whatever it was doing is cut off."""
        assert self.process is not None and self.process.poll() is None, f"{self.name} not up"
        self.process.send_signal(signal.SIGKILL)
        self.process.wait()
        self.kills += 1

    def stop(self) -> None:
        if self.process is not None:
            stop(self.process)


@dataclass
class DevServer:
    """`temporal server start-dev` whose restarts keep their state (same port, same db file)."""

    db_file: Path
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None
    restarts: int = 0

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> None:
        self.process = start_dev_server(self.db_file, port=self.port, ui_port=free_port())

    def stop(self) -> None:
        if self.process is not None:
            stop(self.process)

    def restart(self, down_for: float) -> None:
        """Stop it (SIGTERM), leave it down for `down_for` seconds, start it again."""
        self.stop()
        time.sleep(down_for)
        self.start()
        self.restarts += 1
