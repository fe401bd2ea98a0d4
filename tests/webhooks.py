"""Webhook bodies shaped like each upstream system's, and how a sender signs them."""

from __future__ import annotations

import http.client
import json
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from pydantic import SecretStr

from retention.ingest.signatures import sign
from retention.ingest.sources import Sources


def zendesk_ticket(event_id: str, customer_id: str, kind: str = "ticket.created") -> dict[str, Any]:
    return {
        "id": event_id,
        "type": f"zen:event-type:{kind}",
        "time": "2026-11-26T09:00:00Z",
        "zendesk_event_version": "2022-11-06",
        "detail": {
            "id": "4711",
            "subject": "Export broken",
            "organization_external_id": customer_id,
        },
        "event": {"comment": {"body": "Still broken, this is frustrating"}},
    }


def stripe_invoice(
    event_id: str, customer_id: str, kind: str = "invoice.payment_failed", reason: str = "manual"
) -> dict[str, Any]:
    return {
        "id": event_id,
        "object": "event",
        "type": kind,
        "created": 1_764_150_000,
        "data": {
            "object": {
                "id": "in_1",
                "customer": "cus_9",
                "amount_due": 120_000,
                "currency": "usd",
                "billing_reason": reason,
                "metadata": {"customer_id": customer_id},
            }
        },
    }


def segment_track(event_id: str, customer_id: str, event: str = "Logged In") -> dict[str, Any]:
    return {
        "type": "track",
        "messageId": event_id,
        "event": event,
        "userId": "user-7",
        "timestamp": "2026-11-26T09:05:00.000Z",
        "context": {"groupId": customer_id},
        "properties": {"feature": "dashboards"},
    }


def generic(event_id: str, customer_id: str, kind: str = "login", **data: Any) -> dict[str, Any]:
    return {"id": event_id, "customer_id": customer_id, "type": kind, "data": data}


def nested_body(levels: int, customer_id: str = "acme") -> bytes:
    """A generic login whose `data` (two levels down) holds lists `levels` deep."""
    body = json.dumps(generic("gen-deep", customer_id, "login", blob="X"))
    return body.replace('"X"', "[" * levels + "]" * levels).encode()


def signed(
    sources: Sources, source: str, secret: str, payload: Any, at: float | None = None
) -> tuple[bytes, dict[str, str]]:
    """The body as bytes and the headers a sender holding `secret` puts on it."""
    body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    rule = sources.file.sources[source].signature
    headers = sign(rule, SecretStr(secret), body, time.time() if at is None else at)
    return body, {"Content-Type": "application/json", **headers}


@dataclass(frozen=True)
class Post:
    """One signed webhook, ready to send: `POST /events/{source}`."""

    source: str
    body: bytes
    headers: dict[str, str]


def prepare(sources: Sources, secrets: dict[str, str], source: str, payload: Any) -> Post:
    return Post(source, *signed(sources, source, secrets[source], payload))


def post_all(port: int, posts: Sequence[Post], senders: int) -> list[int]:
    """Every post sent by `senders` concurrent senders (one kept-alive connection each), as
    fast as the service answers; the HTTP statuses in the order of `posts` (0: no answer)."""
    statuses = [0] * len(posts)
    local = threading.local()
    opened: list[http.client.HTTPConnection] = []

    def send(i: int) -> None:
        if getattr(local, "connection", None) is None:
            local.connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
            opened.append(local.connection)
        post = posts[i]
        try:
            local.connection.request("POST", f"/events/{post.source}", post.body, post.headers)
            answer = local.connection.getresponse()
            answer.read()
            statuses[i] = answer.status
        except (OSError, http.client.HTTPException):
            local.connection.close()
            local.connection = None

    try:
        with ThreadPoolExecutor(max_workers=senders) as pool:
            list(pool.map(send, range(len(posts))))
    finally:
        for connection in opened:
            connection.close()
    return statuses
