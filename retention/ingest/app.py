"""The ingest service's HTTP side: `POST /events/{source}`, `GET /health`, OpenAPI at /docs.

Order of checks on a webhook: unknown source 404; too large 413; bad or missing signature 401
(nothing is parsed or written before the signature holds); malformed 422 naming the field;
then the inbox row is written and the answer is 202 (200 for a delivery already in the inbox).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from typing import Literal

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from sqlalchemy import Engine

from retention.ingest import inbox
from retention.ingest.forwarder import Forwarder
from retention.ingest.signatures import BadSignature, verify
from retention.ingest.sources import MappingError, SourcesWatch, map_payload, parse_body
from retention.settings import Settings, get_settings
from retention.store.db import make_engine
from retention.temporal import connect

log = logging.getLogger(__name__)


class Accepted(BaseModel):
    status: Literal["accepted", "ignored", "recorded"]
    inbox_id: int
    duplicate: bool = False
    customer_id: str | None = None
    type: str | None = None


def _answer_status(status: str) -> Literal["accepted", "ignored", "recorded"]:
    return "ignored" if status == "ignored" else "recorded" if status == "recorded" else "accepted"


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


def create_app(settings: Settings | None = None, engine: Engine | None = None) -> FastAPI:
    settings = settings or get_settings()
    engine = engine or make_engine(settings.database_url)
    sources = SourcesWatch(settings.rules_dir)
    forwarder = Forwarder(
        engine,
        sources,
        lambda: connect(settings),
        rate=settings.ingest_forward_rate,
        concurrency=settings.ingest_forward_concurrency,
    )

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        task = asyncio.create_task(forwarder.run(), name="inbox-forwarder")
        yield
        task.cancel()
        with suppress(asyncio.CancelledError):
            await task

    app = FastAPI(
        title="Retention event ingestion",
        description="Helpdesk, billing and analytics webhooks → `customer_event` signals.",
        lifespan=lifespan,
    )
    refusals: dict[int | str, dict[str, object]] = {
        code: {"model": Refused} for code in (401, 404, 413, 422)
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
        current = sources()
        rule = current.rule(source)
        if rule is None:
            known = ", ".join(current.file.sources)
            return _refuse(404, f"unknown source {source!r} (known: {known})")
        try:
            body = await _read_limited(request, settings.ingest_max_bytes)
        except TooLarge:
            return _refuse(413, f"body larger than {settings.ingest_max_bytes} bytes")
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
