"""Email through SendGrid and SMS through Twilio (their official SDKs), answers classified.

A provider never raises for an answer it got: `send` returns a `ProviderAnswer` saying whether
the message was delivered, may be retried, or can never succeed. Error texts are the provider's
words with every credential taken out, so they can go into the database and a journey's history.

Each send builds its own SDK client: SendGrid's keeps request headers in one shared dict and
Twilio's keeps the last response on the client, neither safe to share between activity threads.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import Any, Literal, Protocol

import python_http_client
import requests
from pydantic import SecretStr
from sendgrid import SendGridAPIClient
from twilio.base.exceptions import TwilioRestException
from twilio.http.http_client import TwilioHttpClient
from twilio.http.response import Response as TwilioResponse
from twilio.rest import Client as TwilioClient

from retention.plan import Channel
from retention.runtime.settings import Settings

log = logging.getLogger(__name__)


class _NoBearerToken(logging.Filter):
    """python_http_client logs every request's headers at DEBUG, SendGrid's API key with them."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = re.sub(r"Bearer [^'\"\s,}]+", "Bearer ***", record.getMessage())
        record.args = ()
        return True


logging.getLogger("python_http_client.client").addFilter(_NoBearerToken())

IDEMPOTENCY_HEADER = "X-Idempotency-Key"
SEND_TIMEOUT = 20.0  # seconds  # well inside the deliver activity's 60 s start-to-close timeout

Outcome = Literal["delivered", "retryable", "invalid_recipient", "rejected"]


@dataclass(frozen=True)
class OutgoingMessage:
    idempotency_key: str
    recipient: str
    subject: str
    text: str
    html: str | None = None


@dataclass(frozen=True)
class ProviderAnswer:
    outcome: Outcome
    status_code: int | None  # None: no HTTP answer at all (refused, timed out)
    message_id: str | None = None
    error: str | None = None
    retry_after: timedelta | None = None


class Provider(Protocol):
    name: str

    def send(self, message: OutgoingMessage) -> ProviderAnswer: ...


def classify(
    status: int,
    *,
    invalid_recipient: bool = False,
    error: str | None = None,
    retry_after: timedelta | None = None,
) -> ProviderAnswer:
    """An error answer by status: 429/5xx retryable; a 4xx about the recipient or not, final."""
    if status == 429 or status >= 500:
        return ProviderAnswer("retryable", status, error=error, retry_after=retry_after)
    if invalid_recipient and status in (400, 401, 403, 404):
        return ProviderAnswer("invalid_recipient", status, error=error)
    return ProviderAnswer("rejected", status, error=error)


def retry_after(value: str | None, now: datetime | None = None) -> timedelta | None:
    """A Retry-After header: seconds, or an HTTP date; None when absent or unreadable."""
    if not value:
        return None
    if value.strip().isdigit():
        return timedelta(seconds=int(value))
    try:
        moment = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(moment - (now or datetime.now(UTC)), timedelta(0))


def scrub(text: str, secrets: tuple[str, ...]) -> str:
    """`text` with every secret replaced by `***`, cut to what a database column takes."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    return text[:500]


class EmailProvider:
    """SendGrid v3 mail/send: plain-text and HTML parts, the idempotency key in `custom_args`
    (echoed in SendGrid's event webhooks) and in the `X-Idempotency-Key` request header."""

    name = "sendgrid"

    def __init__(
        self, api_key: SecretStr, sender: str, base_url: str, timeout: float = SEND_TIMEOUT
    ) -> None:
        self._api_key = api_key
        self._sender = sender
        self._base_url = base_url.rstrip("/")
        self._timeout = timeout

    def send(self, message: OutgoingMessage) -> ProviderAnswer:
        client = SendGridAPIClient(api_key=self._api_key.get_secret_value(), host=self._base_url)
        try:
            response = client.client.mail.send.post(
                request_body=self.mail_json(message),
                request_headers={IDEMPOTENCY_HEADER: message.idempotency_key},
                timeout=self._timeout,
            )
        except python_http_client.HTTPError as exc:
            return self._failure(exc.status_code, exc.body, exc.headers)
        except OSError as exc:  # URLError, refused, timed out: the provider may or may not have it
            return ProviderAnswer(
                "retryable", None, error=self._scrub(f"SendGrid unreachable: {exc}")
            )
        message_id = response.headers.get("X-Message-Id")
        return ProviderAnswer("delivered", response.status_code, message_id=message_id)

    def mail_json(self, message: OutgoingMessage) -> dict[str, Any]:
        content = [{"type": "text/plain", "value": message.text}]  # text/plain must come first
        if message.html is not None:
            content.append({"type": "text/html", "value": message.html})
        return {
            "personalizations": [{"to": [{"email": message.recipient}]}],
            "from": {"email": self._sender},
            "subject": message.subject,
            "content": content,
            "custom_args": {"idempotency_key": message.idempotency_key},
        }

    def _failure(self, status: int, body: bytes | None, headers: Any) -> ProviderAnswer:
        errors = _json(body).get("errors") or []
        fields = " ".join(str(e.get("field") or "") for e in errors if isinstance(e, dict))
        words = "; ".join(str(e.get("message")) for e in errors if isinstance(e, dict))
        return classify(
            status,
            # SendGrid names the offending field: personalizations.0.to.0.email
            invalid_recipient=re.search(r"personalizations\.\d+\.to\b", fields) is not None,
            error=self._scrub(f"SendGrid answered {status}: {words or 'no reason given'}"),
            retry_after=retry_after(headers.get("Retry-After") if headers else None),
        )

    def _scrub(self, text: str) -> str:
        return scrub(text, (self._api_key.get_secret_value(),))


# Twilio error codes that mean the number cannot get an SMS: invalid, unroutable, not mobile.
TWILIO_INVALID_RECIPIENT = frozenset({21211, 21612, 21614})


class _KeyedHttpClient(TwilioHttpClient):
    """Twilio's HTTP client plus the idempotency header, keeping the last response's headers
    (Retry-After: the SDK's exception carries only status, code and message)."""

    def __init__(self, idempotency_key: str, timeout: float) -> None:
        super().__init__(timeout=timeout)
        self._key = idempotency_key
        self.last: TwilioResponse | None = None

    def request(
        self,
        method: str,
        url: str,
        params: dict[str, object] | None = None,
        data: dict[str, object] | None = None,
        headers: dict[str, str] | None = None,
        auth: tuple[str, str] | None = None,
        timeout: float | None = None,
        allow_redirects: bool = False,
    ) -> TwilioResponse:
        headers = {**(headers or {}), IDEMPOTENCY_HEADER: self._key}
        self.last = super().request(
            method, url, params, data, headers, auth, timeout, allow_redirects
        )
        return self.last


class SmsProvider:
    """Twilio Messages: POST /2010-04-01/Accounts/<sid>/Messages.json with To, From, Body."""

    name = "twilio"

    def __init__(
        self,
        account_sid: str,
        auth_token: SecretStr,
        sender: str,
        base_url: str,
        timeout: float = SEND_TIMEOUT,
    ) -> None:
        self._account_sid = account_sid
        self._auth_token = auth_token
        self._sender = sender
        self._base_url = base_url.rstrip("/")
        self._timeout = timeout

    def send(self, message: OutgoingMessage) -> ProviderAnswer:
        http = _KeyedHttpClient(message.idempotency_key, self._timeout)
        client = TwilioClient(
            self._account_sid,
            self._auth_token.get_secret_value(),
            http_client=http,
            # Settings are the only source: without this the SDK reads TWILIO_EDGE/REGION
            # from the environment and rewrites the host.
            environment={"TWILIO_EDGE": "", "TWILIO_REGION": ""},
        )
        # The supported override: `Domain.base_url` is what every api.twilio.com URL is built on.
        client.api.base_url = self._base_url
        try:
            sent = client.messages.create(
                to=message.recipient, from_=self._sender, body=message.text
            )
        except TwilioRestException as exc:
            headers = http.last.headers if http.last is not None else None
            return classify(
                exc.status,
                invalid_recipient=exc.code in TWILIO_INVALID_RECIPIENT,
                error=self._scrub(f"Twilio answered {exc.status} (code {exc.code}): {exc.msg}"),
                retry_after=retry_after(headers.get("Retry-After") if headers else None),
            )
        except requests.RequestException as exc:
            error = self._scrub(f"Twilio unreachable: {type(exc).__name__}")
            return ProviderAnswer("retryable", None, error=error)
        finally:
            if http.session is not None:
                http.session.close()
        status = http.last.status_code if http.last is not None else 201
        return ProviderAnswer("delivered", status, message_id=sent.sid)

    def _scrub(self, text: str) -> str:
        return scrub(text, (self._auth_token.get_secret_value(),))


def _json(body: bytes | str | None) -> dict[str, Any]:
    try:
        parsed = json.loads(body or b"{}")
    except ValueError:
        return {}
    return parsed if isinstance(parsed, dict) else {}


def providers_from(settings: Settings) -> Mapping[Channel, Provider]:
    """The live providers by channel: none in capture mode; in live mode, those configured
    (a channel without one is captured, and the worker says so at start)."""
    providers: dict[Channel, Provider] = {}
    if settings.delivery_mode != "live":
        return providers
    if settings.sendgrid_api_key is not None and settings.email_from:
        providers["email"] = EmailProvider(
            settings.sendgrid_api_key, settings.email_from, settings.sendgrid_base_url
        )
    if settings.twilio_account_sid and settings.twilio_auth_token and settings.sms_from:
        providers["sms"] = SmsProvider(
            settings.twilio_account_sid,
            settings.twilio_auth_token,
            settings.sms_from,
            settings.twilio_base_url,
        )
    for channel in ("email", "sms"):
        if channel not in providers:
            log.warning(
                "delivery mode live, but no provider for %s: its messages are captured", channel
            )
    return providers
