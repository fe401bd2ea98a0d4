"""Webhook signatures: HMAC-SHA256 over the raw body, in the shape each source sends it.

Every comparison is constant-time, and no message here ever carries the secret or the
signature it was given (they end up in logs and HTTP answers).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from collections.abc import Mapping

from pydantic import SecretStr

from retention.ingest.sources import SignatureRule


class BadSignature(Exception):
    """The request is not signed with the source's secret; the message says what is wrong."""


def _mac(secret: SecretStr, message: bytes) -> bytes:
    return hmac.new(secret.get_secret_value().encode(), message, hashlib.sha256).digest()


def verify(
    rule: SignatureRule,
    secret: SecretStr | None,
    headers: Mapping[str, str],
    body: bytes,
    now: float | None = None,
) -> None:
    """Raise `BadSignature` unless `headers` carry a valid signature of `body`. `headers` is
    case-insensitive (Starlette's Headers) or lower-case keyed."""
    if secret is None:
        raise BadSignature("no secret is configured for this source")
    given = headers.get(rule.header.lower())
    if not given:
        raise BadSignature(f"missing {rule.header} header")
    if rule.scheme == "hex":
        _check_hex(rule, secret, given, body)
    elif rule.scheme == "zendesk":
        _check_zendesk(rule, secret, headers, given, body)
    else:
        _check_stripe(rule, secret, given, body, time.time() if now is None else now)


def sign(rule: SignatureRule, secret: SecretStr, body: bytes, at: float) -> dict[str, str]:
    """The headers a sender puts on `body` (tests and docs/ingestion.md's curl examples use it)."""
    if rule.scheme == "hex":
        return {rule.header: rule.prefix + _mac(secret, body).hex()}
    if rule.scheme == "zendesk":
        stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(at))
        digest = base64.b64encode(_mac(secret, stamp.encode() + body)).decode()
        return {rule.header: digest, str(rule.timestamp_header): stamp}
    t = str(int(at))
    return {rule.header: f"t={t},v1={_mac(secret, t.encode() + b'.' + body).hex()}"}


def _check_hex(rule: SignatureRule, secret: SecretStr, given: str, body: bytes) -> None:
    expected = rule.prefix + _mac(secret, body).hex()
    if not hmac.compare_digest(expected.encode(), given.strip().encode()):
        raise BadSignature(f"{rule.header} does not match the body")


def _check_zendesk(
    rule: SignatureRule, secret: SecretStr, headers: Mapping[str, str], given: str, body: bytes
) -> None:
    stamp = headers.get(str(rule.timestamp_header).lower())
    if not stamp:
        raise BadSignature(f"missing {rule.timestamp_header} header")
    expected = base64.b64encode(_mac(secret, stamp.encode() + body))
    if not hmac.compare_digest(expected, given.strip().encode()):
        raise BadSignature(f"{rule.header} does not match the body")


def _check_stripe(
    rule: SignatureRule, secret: SecretStr, given: str, body: bytes, now: float
) -> None:
    """`t=<unix>,v1=<hex>[,v1=...]`: any v1 may match (Stripe sends several while a secret
    is being rolled); the timestamp is signed too, so a replay cannot refresh it."""
    parts = [item.partition("=") for item in given.split(",")]
    stamps = [value for key, _, value in parts if key.strip() == "t"]
    candidates = [value.strip().encode() for key, _, value in parts if key.strip() == "v1"]
    if len(stamps) != 1 or not stamps[0].strip().isdigit() or not candidates:
        raise BadSignature(f"{rule.header} is not of the form t=<unix time>,v1=<signature>")
    stamp = stamps[0].strip()
    if abs(now - int(stamp)) > rule.tolerance:
        raise BadSignature(f"{rule.header} timestamp is outside the {rule.tolerance:g} s tolerance")
    expected = _mac(secret, stamp.encode() + b"." + body).hex().encode()
    if not any(hmac.compare_digest(expected, c) for c in candidates):
        raise BadSignature(f"{rule.header} does not match the body")
