"""Webhook bodies shaped like each upstream system's, and how a sender signs them."""

from __future__ import annotations

import json
import time
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
