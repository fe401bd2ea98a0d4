"""`python -m retention.ingest [--host H] [--port P]`: the ingest service under uvicorn; SIGTERM
or SIGINT drains it, then it exits 0 (docs/deployment.md)."""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
from collections.abc import Iterator
from contextlib import contextmanager

import uvicorn
from pydantic import ValidationError

from retention.errors import RetentionError
from retention.ingest.app import IngestService
from retention.runtime.logs import configure_logging
from retention.runtime.readiness import leave
from retention.runtime.settings import get_settings, settings_problem

CLOSE_S = 5  # after the drain: uvicorn answers the requests it holds, then closes them
# ... and the rest of the shutdown (a readiness check ends, the forwarder is cancelled); a
# shutdown stuck past this (Temporal gone mid-call) exits anyway.
SHUTDOWN_MARGIN_S = 3 * CLOSE_S


class _Server(uvicorn.Server):
    """uvicorn without its own signal handlers: they would close the port at once, and a
    sender would see its connection refused rather than a 503 while the service drains."""

    @contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


async def serve(service: IngestService, host: str, port: int) -> None:
    """Serve until SIGTERM or SIGINT, drain (bounded), then close the port."""
    config = uvicorn.Config(
        service.app,
        host=host,
        port=port,
        log_level="info",
        timeout_graceful_shutdown=CLOSE_S,
    )
    server = _Server(config)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    serving = asyncio.create_task(server.serve())
    stopping = asyncio.create_task(stop.wait())
    await asyncio.wait({serving, stopping}, return_when=asyncio.FIRST_COMPLETED)
    stopping.cancel()
    if not serving.done():
        await service.drain()
        server.should_exit = True
        await asyncio.wait({serving}, timeout=SHUTDOWN_MARGIN_S)
    if not serving.done():
        logging.warning("not stopped %s s after the drain; exiting", SHUTDOWN_MARGIN_S)
    else:
        serving.result()  # uvicorn could not start (e.g. the port taken): its exit status


def main() -> None:
    try:
        settings = get_settings()
    except ValidationError as exc:  # a setting out of range: named, not a traceback
        raise SystemExit(f"error: {settings_problem(exc)}") from None
    parser = argparse.ArgumentParser(prog="python -m retention.ingest", description=__doc__)
    parser.add_argument("--host", default=settings.ingest_host)
    parser.add_argument("--port", type=int, default=settings.ingest_port)
    args = parser.parse_args()
    try:
        service = IngestService(settings)
    except RetentionError as exc:  # e.g. a broken sources.yaml, named at file:line
        raise SystemExit(f"error: {exc}") from None
    configure_logging(settings.log_format)
    print(f"ingest service on http://{args.host}:{args.port} (OpenAPI at /docs)", flush=True)
    asyncio.run(serve(service, args.host, args.port))
    leave()  # the SDK core may still be retrying a server that went away: do not wait for it


if __name__ == "__main__":
    main()
