"""The ingest service: `POST /events/{source}`, `GET /health`, OpenAPI at /docs; its forwarder,
its readiness probe (`RETENTION_INGEST_HEALTH_ADDRESS`) and its drain (docs/deployment.md).

`POST /crm/hubspot` takes HubSpot's task webhooks (v3 signature; docs/crm.md).

Order of checks on a webhook: draining 503; unknown source 404; too large 413; bad or missing
signature 401 (nothing is parsed or written before the signature holds); malformed 422 naming
the field; then the inbox row is written and the answer is 202 (200 for a delivery already in
the inbox).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from datetime import timedelta
from typing import Literal

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from sqlalchemy import Engine

from retention.crm.hubspot_webhook import BadHubSpotSignature, TaskCompleted, completions
from retention.crm.hubspot_webhook import verify as verify_hubspot
from retention.errors import InvalidInput
from retention.ingest import inbox
from retention.ingest.forwarder import Forwarder
from retention.ingest.signatures import BadSignature, verify
from retention.ingest.sources import MappingError, SourcesWatch, map_payload, parse_body
from retention.runtime.readiness import Readiness, serve_health
from retention.runtime.settings import Settings, get_settings
from retention.runtime.temporal import connect
from retention.store.crm_tasks import complete_from_crm
from retention.store.db import make_engine

log = logging.getLogger(__name__)


class Accepted(BaseModel):
    status: Literal["accepted", "ignored", "recorded"]
    inbox_id: int
    duplicate: bool = False
    customer_id: str | None = None
    type: str | None = None


def _answer_status(status: str) -> Literal["accepted", "ignored", "recorded"]:
    return "ignored" if status == "ignored" else "recorded" if status == "recorded" else "accepted"


class CrmCompleted(BaseModel):
    completed: list[int]  # our tasks this delivery completed (a repeat completes none)
    seen: int  # task completions in the delivery


class Refused(BaseModel):
    detail: str
    field: str | None = None


class Health(BaseModel):
    status: Literal["ok"]
    temporal_connected: bool
    pending: int
    sources: list[str]


class TooLarge(Exception):
    pass


# Read raw (the signature covers the exact bytes), so the schema is declared by hand.
_WEBHOOK_BODY = {
    "requestBody": {
        "required": True,
        "description": "The source's own JSON, signed as its `signature` rule says",
        "content": {"application/json": {"schema": {"type": "object"}}},
    }
}


DRAINING = (
    "draining: this ingest instance is stopping and takes no more webhooks; send it again "
    "(to another instance, or to this one once it is back)"
)
RETRY_AFTER_S = 5  # what a draining instance asks senders to wait
RELEASE_MARGIN_S = 5.0  # after the drain: for cancelled forwards to put their rows back


class IngestService:
    """The HTTP app, the forwarder behind it and their readiness: what `python -m
    retention.ingest` serves, and stops with `drain()`."""

    def __init__(self, settings: Settings | None = None, engine: Engine | None = None) -> None:
        self.settings = settings = settings or get_settings()
        self.engine = engine or make_engine(settings.database_url)
        self.sources = SourcesWatch(settings.rules_dir)
        self.readiness = Readiness()
        self.forwarder = Forwarder(
            self.engine,
            self.sources,
            lambda: connect(settings),
            rate=settings.ingest_forward_rate,
            concurrency=settings.ingest_forward_concurrency,
            lease=timedelta(seconds=settings.ingest_claim_lease_seconds),
        )
        self._forwarding: asyncio.Task[None] | None = None
        self._draining: asyncio.Task[None] | None = None
        self.app = self._routes(
            FastAPI(
                title="Retention event ingestion",
                description="Helpdesk, billing and analytics webhooks → `customer_event` signals.",
                lifespan=self._lifespan,
            )
        )

    async def drain(self) -> None:
        """Stop: webhooks are answered 503 and `/health` says `draining`; the forwarder claims
        nothing more, its signals in flight get `RETENTION_INGEST_DRAIN_SECONDS` and the rest
        of its claims goes back to pending (left to the lease if the database is away too)."""
        if self._draining is None:
            self._draining = asyncio.create_task(self._drain())
        await asyncio.shield(self._draining)

    async def _drain(self) -> None:
        self.readiness.stop()
        self.forwarder.stop()
        if self._forwarding is None:
            return
        seconds = self.settings.ingest_drain_seconds
        log.info("draining: no new webhooks; signals in flight have %s s", seconds)
        done, _ = await asyncio.wait({self._forwarding}, timeout=seconds)
        if not done:  # e.g. Temporal gone mid-signal: give up on it, put the rows back
            log.warning("forwards still in flight after %s s: cancelled, rows released", seconds)
            self._forwarding.cancel()
            await asyncio.wait({self._forwarding}, timeout=RELEASE_MARGIN_S)
        log.info("drained")

    @asynccontextmanager
    async def _lifespan(self, _app: FastAPI) -> AsyncIterator[None]:
        self._forwarding = asyncio.create_task(self.forwarder.run(), name="inbox-forwarder")
        health = await serve_health(
            self.settings.ingest_health_address, self.readiness, "RETENTION_INGEST_HEALTH_ADDRESS"
        )
        watching = asyncio.create_task(self.readiness.watch(self._answers))
        ready = asyncio.create_task(self._ready_once_working())
        yield
        await self.drain()  # at once when a signal drained it already
        ready.cancel()
        await watching
        if health is not None:
            health.close()
        self._forwarding.cancel()
        with suppress(asyncio.CancelledError):
            await self._forwarding

    async def _ready_once_working(self) -> None:
        await self.forwarder.working.wait()
        if self.readiness.status == "starting":
            self.readiness.status = "ready"

    async def _answers(self, deadline: timedelta) -> bool:
        """Ready: the forwarder runs, connected, and the database and Temporal answer."""
        client = self.forwarder.client
        if client is None or self._forwarding is None or self._forwarding.done():
            return False
        database = asyncio.to_thread(inbox.pending_count, self.engine)
        await asyncio.wait_for(database, deadline.total_seconds())
        return await client.service_client.check_health(timeout=deadline)

    async def _body(self, request: Request) -> bytes | JSONResponse:
        """The raw body, or the 413 refusing it."""
        limit = self.settings.ingest_max_bytes
        try:
            return await _read_limited(request, limit)
        except TooLarge:
            return _refuse(413, f"body larger than {limit} bytes")

    def _routes(self, app: FastAPI) -> FastAPI:
        settings, sources, forwarder, engine = (
            self.settings,
            self.sources,
            self.forwarder,
            self.engine,
        )
        refusals: dict[int | str, dict[str, object]] = {
            code: {"model": Refused} for code in (401, 404, 413, 422, 503)
        }

        @app.post(
            "/events/{source}",
            status_code=202,
            response_model=Accepted,
            responses=refusals,
            openapi_extra=_WEBHOOK_BODY,
            summary="Receive one webhook from a source declared in rules/sources.yaml",
        )
        async def receive_event(source: str, request: Request) -> JSONResponse:
            if self.readiness.status == "draining":
                return _draining()
            current = sources()
            rule = current.rule(source)
            if rule is None:
                known = ", ".join(current.file.sources)
                return _refuse(404, f"unknown source {source!r} (known: {known})")
            body = await self._body(request)
            if isinstance(body, JSONResponse):
                return body
            try:
                verify(rule.signature, settings.ingest_secret(source), request.headers, body)
            except BadSignature as exc:
                log.warning("refused %s webhook: %s", source, exc)
                return _refuse(401, f"signature refused: {exc}")
            try:
                mapped = map_payload(rule, parse_body(body))
            except MappingError as exc:
                return _refuse(422, str(exc), field=exc.field)
            mode = current.mode(mapped.event)
            received = await asyncio.to_thread(inbox.receive, engine, source, mapped, mode)
            if not received.duplicate and mapped.event is not None and mode.name == "forward":
                forwarder.wake()
            row = received.row
            answer = Accepted(
                status=_answer_status(row.status),
                inbox_id=int(row.id or 0),
                duplicate=received.duplicate,
                customer_id=row.customer_id,
                type=mapped.event.type if mapped.event else None,
            )
            return JSONResponse(answer.model_dump(), status_code=200 if received.duplicate else 202)

        @app.post(
            "/crm/hubspot",
            response_model=CrmCompleted,
            responses=refusals,
            openapi_extra=_WEBHOOK_BODY,
            summary="HubSpot's task webhooks: a task completed there completes ours (docs/crm.md)",
        )
        async def receive_hubspot(request: Request) -> JSONResponse:
            if self.readiness.status == "draining":
                return _draining()
            body = await self._body(request)
            if isinstance(body, JSONResponse):
                return body
            secret, now_ms = settings.hubspot_client_secret, int(time.time() * 1000)
            try:
                verify_hubspot(
                    secret, request.method, str(request.url), body, request.headers, now_ms
                )
            except BadHubSpotSignature as exc:
                log.warning("refused HubSpot webhook: %s", exc)
                return _refuse(401, f"signature refused: {exc}")
            try:
                done = completions(body)
            except InvalidInput as exc:
                return _refuse(422, str(exc))
            completed = await asyncio.to_thread(_complete_all, engine, done)
            if completed:
                forwarder.wake()
            return JSONResponse(CrmCompleted(completed=completed, seen=len(done)).model_dump())

        @app.get("/health", response_model=Health)
        async def health() -> Health:
            pending = await asyncio.to_thread(inbox.pending_count, engine)
            return Health(
                status="ok",
                temporal_connected=forwarder.connected,
                pending=pending,
                sources=list(sources().file.sources),
            )

        return app


def _complete_all(engine: Engine, done: list[TaskCompleted]) -> list[int]:
    """Complete our tasks HubSpot says are done; a task done before (a repeat) is left alone."""
    found = (complete_from_crm(engine, "hubspot", d.crm_id, d.at) for d in done)
    return [task.id for task in found if task is not None and task.id is not None]


def _draining() -> JSONResponse:
    refused = _refuse(503, DRAINING)
    refused.headers["Retry-After"] = str(RETRY_AFTER_S)
    return refused


async def _read_limited(request: Request, limit: int) -> bytes:
    """The body, refused as soon as it is known to be over `limit`: by its declared
    Content-Length, and by the bytes actually read (a chunked body declares none)."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise TooLarge
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise TooLarge
        chunks.append(chunk)
    return b"".join(chunks)


def _refuse(status: int, detail: str, field: str | None = None) -> JSONResponse:
    return JSONResponse(Refused(detail=detail, field=field).model_dump(), status_code=status)
