"""A process's readiness (not a customer's health score) at `GET /health`: worker.py's beside
`/metrics`, the ingest service's apart from its webhooks (docs/deployment.md). 200 `ready` once
it is connected and working; 503 while it starts, while Temporal does not answer, and while it
drains on SIGTERM."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import sys
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Literal, NoReturn

Status = Literal["starting", "ready", "unreachable", "draining"]
CHECK_EVERY_S = 5.0  # how often a ready worker asks Temporal whether it is still there

log = logging.getLogger(__name__)


class Readiness:
    def __init__(self) -> None:
        self.status: Status = "starting"
        self._stopped = asyncio.Event()

    async def watch(self, server_answers: Callable[[timedelta], Awaitable[bool]]) -> None:
        """While polling, follow whether Temporal answers its health check, until `stop()`.
        A check is never cancelled half-way: the SDK's core would answer it after the
        interpreter began to exit, so each has its own deadline and `stop()` waits for it."""
        while not self._stopped.is_set():
            try:
                await asyncio.wait_for(self._stopped.wait(), CHECK_EVERY_S)
            except TimeoutError:
                if self.status in ("ready", "unreachable"):
                    answered = await _answers(server_answers)
                    self.status = "ready" if answered else "unreachable"

    def stop(self) -> None:
        self._stopped.set()
        self.status = "draining"


async def serve_health(
    address: str, readiness: Readiness, setting: str = "RETENTION_HEALTH_ADDRESS"
) -> asyncio.Server | None:
    """The endpoint at `address` (host:port, from `setting`); None when empty, or taken
    (logged: journeys and webhooks matter more than a probe)."""
    if not address:
        return None
    host, _, port = address.rpartition(":")

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        request = await reader.readline()
        path = request.split(b" ")[1] if request.count(b" ") >= 2 else b""
        code, body = _response(path, readiness.status)
        writer.write(
            f"HTTP/1.1 {code}\r\nContent-Type: application/json\r\nContent-Length: {len(body)}"
            f"\r\nConnection: close\r\n\r\n".encode()
            + body
        )
        await writer.drain()
        writer.close()

    try:
        server = await asyncio.start_server(answer, host, int(port))
    except (OSError, ValueError) as exc:
        log.warning("no health endpoint at %s: %s (set %s)", address, exc, setting)
        return None
    log.info("health at http://%s/health", address)
    return server


def _response(path: bytes, status: Status) -> tuple[str, bytes]:
    if path != b"/health":
        return "404 Not Found", b'{"error": "only /health is here"}'
    code = "200 OK" if status == "ready" else "503 Service Unavailable"
    return code, json.dumps({"status": status}).encode()


async def _answers(server_answers: Callable[[timedelta], Awaitable[bool]]) -> bool:
    try:
        return await server_answers(timedelta(seconds=CHECK_EVERY_S))
    except Exception:  # any failure to answer is "not there"; the worker keeps polling
        return False


def leave() -> NoReturn:
    """Exit 0 without finalizing the interpreter: the SDK core's threads may still be retrying
    calls to a server that went away, and finalizing under them can abort the process."""
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)
