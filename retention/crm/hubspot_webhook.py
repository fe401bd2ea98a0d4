"""HubSpot's webhooks for our tasks: the v3 signature, and the completions in a delivery.

HubSpot signs `method + URI + body + timestamp` with the app's client secret (HMAC-SHA256,
base64) in `X-HubSpot-Signature-v3`, the timestamp (milliseconds) in
`X-HubSpot-Request-Timestamp`; a timestamp older than five minutes is refused, so a captured
request cannot be replayed later. A delivery is a JSON array of events; a task's `hs_task_status`
changing to `COMPLETED` is the one we act on, every other event is ignored.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

from pydantic import SecretStr

from retention.errors import InvalidInput

SIGNATURE_HEADER = "X-HubSpot-Signature-v3"
TIMESTAMP_HEADER = "X-HubSpot-Request-Timestamp"
TOLERANCE_MS = 5 * 60 * 1000
# The characters HubSpot decodes in the URI before signing it.
_DECODED = {
    "%3A": ":", "%2F": "/", "%3F": "?", "%40": "@", "%21": "!", "%24": "$",
    "%27": "'", "%28": "(", "%29": ")", "%2A": "*", "%2C": ",", "%3B": ";",
}  # fmt: skip


class BadHubSpotSignature(Exception):
    """Not signed by HubSpot with our app's secret; the message says what is wrong."""


@dataclass(frozen=True)
class TaskCompleted:
    event_id: str
    crm_id: str
    at: datetime


def sign(secret: SecretStr, method: str, uri: str, body: bytes, at_ms: int) -> dict[str, str]:
    """The headers HubSpot puts on a delivery (the tests and docs/crm.md use it)."""
    return {SIGNATURE_HEADER: _signature(secret, method, uri, body, str(at_ms)),
            TIMESTAMP_HEADER: str(at_ms)}  # fmt: skip


def verify(
    secret: SecretStr | None,
    method: str,
    uri: str,
    body: bytes,
    headers: Mapping[str, str],
    now_ms: int,
) -> None:
    """Raise `BadHubSpotSignature` unless `headers` carry HubSpot's v3 signature of the request.
    `headers` is case-insensitive (Starlette's) or lower-case keyed."""
    if secret is None:
        raise BadHubSpotSignature("no HubSpot client secret is configured")
    given, stamp = headers.get(SIGNATURE_HEADER.lower()), headers.get(TIMESTAMP_HEADER.lower())
    if not given or not stamp:
        raise BadHubSpotSignature(f"missing {SIGNATURE_HEADER} or {TIMESTAMP_HEADER} header")
    if not stamp.isdigit() or abs(now_ms - int(stamp)) > TOLERANCE_MS:
        raise BadHubSpotSignature(f"{TIMESTAMP_HEADER} is not within five minutes of now")
    expected = _signature(secret, method, uri, body, stamp)
    if not hmac.compare_digest(expected.encode(), given.strip().encode()):
        raise BadHubSpotSignature(f"{SIGNATURE_HEADER} does not match the request")


def _signature(secret: SecretStr, method: str, uri: str, body: bytes, stamp: str) -> str:
    for encoded, plain in _DECODED.items():
        uri = uri.replace(encoded, plain).replace(encoded.lower(), plain)
    message = method.upper().encode() + uri.encode() + body + stamp.encode()
    digest = hmac.new(secret.get_secret_value().encode(), message, hashlib.sha256).digest()
    return base64.b64encode(digest).decode()


def completions(body: bytes) -> list[TaskCompleted]:
    """The task completions in a delivery; raises InvalidInput naming what is malformed."""
    try:
        events = json.loads(body)
    except ValueError:
        raise InvalidInput("body: not JSON") from None
    if not isinstance(events, list):
        raise InvalidInput("body: HubSpot sends a JSON array of events")
    return [done for i, e in enumerate(events) if (done := _completion(i, e)) is not None]


def _completion(index: int, event: object) -> TaskCompleted | None:
    if not isinstance(event, dict):
        raise InvalidInput(f"[{index}]: an event is a JSON object")
    if event.get("propertyName") != "hs_task_status" or event.get("propertyValue") != "COMPLETED":
        return None
    for name in ("eventId", "objectId", "occurredAt"):
        if not isinstance(event.get(name), int | str) or isinstance(event.get(name), bool):
            raise InvalidInput(f"[{index}].{name}: missing or not a number")
    try:
        at = datetime.fromtimestamp(int(event["occurredAt"]) / 1000, UTC)
    except (ValueError, OverflowError):
        raise InvalidInput(f"[{index}].occurredAt: not milliseconds since 1970") from None
    return TaskCompleted(str(event["eventId"]), str(event["objectId"]), at)
