"""Fake SendGrid and Twilio: real HTTP servers on 127.0.0.1 that check the request shape the
real APIs expect, answer like them, fail on cue, and dedupe by idempotency key (which the real
ones do not: see retention/delivery/live.py)."""

from __future__ import annotations

import base64
import json
import ssl
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self
from urllib.parse import parse_qs
from uuid import uuid4

from pydantic import SecretStr

from retention.delivery.providers import EmailProvider, Provider, SmsProvider

IDEMPOTENCY_HEADER = "X-Idempotency-Key"


@dataclass(frozen=True)
class Answer:
    status: int
    body: Any = None  # JSON
    headers: tuple[tuple[str, str], ...] = ()


class LocalServer:
    """An HTTP server on a free 127.0.0.1 port that hands every request to `handle`; over TLS
    with `tls` (a server context whose certificate names `localhost`)."""

    def __init__(
        self, handle: Callable[[BaseHTTPRequestHandler], None], tls: ssl.SSLContext | None = None
    ) -> None:
        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                handle(self)

            do_POST = do_PUT = do_PATCH = do_GET

            def log_message(self, format: str, *args: Any) -> None:  # quiet test output
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        if tls is not None:
            self._server.socket = tls.wrap_socket(self._server.socket, server_side=True)
        self.tls = tls is not None
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    @property
    def root(self) -> str:
        host, port = self._server.server_address[:2]
        # the test CA's certificate names localhost, not the address
        return f"https://localhost:{port}" if self.tls else f"http://{host!s}:{port}"

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()


def reply(handler: BaseHTTPRequestHandler, answer: Answer, content_type: str) -> None:
    """Write `answer`; a client that gave up waiting or died is no error (the request was taken)."""
    payload = json.dumps(answer.body).encode() if answer.body is not None else b""
    try:
        handler.send_response(answer.status)
        for name, value in answer.headers:
            handler.send_header(name, value)
        if payload:
            handler.send_header("Content-Type", content_type)
        handler.send_header("Content-Length", str(len(payload)))
        handler.end_headers()
        handler.wfile.write(payload)
    except (BrokenPipeError, ConnectionResetError, ssl.SSLError):
        pass


@dataclass(frozen=True)
class Received:
    path: str
    headers: dict[str, str]
    body: Any  # JSON for SendGrid, form fields for Twilio
    key: str | None


class ScriptedServer:
    """A fake API's server: its next answers scripted to fail, or one held back."""

    def __init__(self, tls: ssl.SSLContext | None = None) -> None:
        # hold_next(): the next request is taken (and its message made), then its answer waits
        self.held = threading.Event()
        self._hold_next = False
        self._release = threading.Event()
        self._script: deque[Answer] = deque()
        self._lock = threading.Lock()
        self._http = LocalServer(self._handle, tls)

    def hold_next(self) -> None:
        """Take the next message but keep its answer back until `release()`: the sender then
        dies (or times out) after the provider has the message, before it hears so."""
        self.held.clear()
        self._release.clear()
        self._hold_next = True

    def release(self) -> None:
        self._release.set()

    def fail_next(self, *answers: Answer) -> None:
        self._script.extend(answers)

    def start(self) -> Self:
        self._http.start()
        return self

    def stop(self) -> None:
        self._release.set()  # a held answer must not keep the server from stopping
        self._http.stop()

    def _wait_if(self, hold: bool) -> None:
        if hold:
            self.held.set()
            self._release.wait(timeout=300)

    def _handle(self, handler: BaseHTTPRequestHandler) -> None:
        raise NotImplementedError


class FakeProvider(ScriptedServer):
    """The server, the script of failures and the record; subclasses check and answer."""

    def __init__(self) -> None:
        super().__init__()
        self.received: list[Received] = []
        self.messages: dict[str, str] = {}  # idempotency key → message id
        self.delay = 0.0

    @property
    def url(self) -> str:
        return self._http.root

    @property
    def message_count(self) -> int:
        return len(self.messages)

    def keys_received(self) -> list[str | None]:
        return [r.key for r in self.received]

    def requests_for(self, key: str) -> int:
        """How many times a message with this idempotency key was posted."""
        return sum(r.key == key for r in self.received)

    def busy(self, retry_after: int | None = None) -> Answer:
        headers = (("Retry-After", str(retry_after)),) if retry_after is not None else ()
        return Answer(429, self.error_body(429, "Too many requests"), headers)

    def broken(self) -> Answer:
        return Answer(500, self.error_body(500, "Internal server error"))

    def provider(self, secret: str | None = None, timeout: float = 5.0) -> Provider:
        """The real provider, pointed here (with another API key or token when given)."""
        raise NotImplementedError

    def error_body(self, status: int, message: str) -> dict[str, Any]:
        raise NotImplementedError

    def invalid_recipient(self) -> Answer:
        raise NotImplementedError

    def check(self, path: str, headers: dict[str, str], raw: bytes) -> tuple[Any, Answer | None]:
        """The parsed body, and the error answer if the request is not what the API takes."""
        raise NotImplementedError

    def accepted(self, body: Any, message_id: str) -> Answer:
        raise NotImplementedError

    def new_message_id(self) -> str:
        raise NotImplementedError

    def _handle(self, handler: BaseHTTPRequestHandler) -> None:
        raw = handler.rfile.read(int(handler.headers.get("Content-Length") or 0))
        headers = dict(handler.headers.items())
        body, refusal = self.check(handler.path, headers, raw)
        key = headers.get(IDEMPOTENCY_HEADER)
        with self._lock:
            self.received.append(Received(handler.path, headers, body, key))
            answer = refusal or (self._script.popleft() if self._script else None)
            if answer is None:
                message_id = self.messages.get(key or "") or self.new_message_id()
                if key:
                    self.messages.setdefault(key, message_id)
                else:
                    self.messages[message_id] = message_id
                answer = self.accepted(body, message_id)
            hold, self._hold_next = self._hold_next, False
        self._wait_if(hold)
        time.sleep(self.delay)
        reply(handler, answer, "application/json")


class FakeSendGrid(FakeProvider):
    """POST /v3/mail/send with `Authorization: Bearer <key>`; 202 and X-Message-Id."""

    def __init__(self, api_key: str = "SG.test-key-not-real") -> None:
        super().__init__()
        self.api_key = api_key

    def provider(self, secret: str | None = None, timeout: float = 5.0) -> EmailProvider:
        key = SecretStr(secret or self.api_key)
        return EmailProvider(key, "success@ourapp.example", self.url, timeout)

    def error_body(self, status: int, message: str, field: str | None = None) -> dict[str, Any]:
        return {"errors": [{"message": message, "field": field, "help": None}]}

    def invalid_recipient(self) -> Answer:
        message, field = "Does not contain a valid address.", "personalizations.0.to.0.email"
        return Answer(400, self.error_body(400, message, field))

    def new_message_id(self) -> str:
        return uuid4().hex[:22]

    def accepted(self, body: Any, message_id: str) -> Answer:
        return Answer(202, None, (("X-Message-Id", message_id),))

    def check(self, path: str, headers: dict[str, str], raw: bytes) -> tuple[Any, Answer | None]:
        if path != "/v3/mail/send":
            return None, Answer(404, self.error_body(404, f"no route {path}"))
        if headers.get("Authorization") != f"Bearer {self.api_key}":
            grant = "The provided authorization grant is invalid, expired, or revoked"
            return None, Answer(401, self.error_body(401, grant))
        try:
            mail = json.loads(raw)
            to = mail["personalizations"][0]["to"][0]["email"]
            shape = (mail["from"]["email"], mail["subject"], mail["content"])
            types = [part["type"] for part in mail["content"]]
        except (ValueError, KeyError, IndexError, TypeError) as exc:
            return None, Answer(400, self.error_body(400, f"malformed request: {exc!r}"))
        if not all(shape) or types != ["text/plain", "text/html"]:
            return mail, Answer(400, self.error_body(400, f"content types {types}", "content"))
        if "@" not in to:
            return mail, self.invalid_recipient()
        return mail, None


class FakeTwilio(FakeProvider):
    """POST /2010-04-01/Accounts/<sid>/Messages.json, basic auth sid:token, form To, From, Body;
    201 and the message resource with its `sid`."""

    def __init__(self, account_sid: str = "AC" + "0" * 32, auth_token: str = "tok-fake") -> None:
        super().__init__()
        self.account_sid, self.auth_token = account_sid, auth_token

    def provider(self, secret: str | None = None, timeout: float = 5.0) -> SmsProvider:
        token = SecretStr(secret or self.auth_token)
        return SmsProvider(self.account_sid, token, "+15005550006", self.url, timeout)

    def error_body(self, status: int, message: str, code: int | None = None) -> dict[str, Any]:
        code = code or status
        info = f"https://www.twilio.com/docs/errors/{code}"
        return {"code": code, "message": message, "more_info": info, "status": status}

    def invalid_recipient(self) -> Answer:
        message = "The 'To' number is not a valid phone number."
        return Answer(400, self.error_body(400, message, 21211))

    def new_message_id(self) -> str:
        return "SM" + uuid4().hex

    def accepted(self, body: Any, message_id: str) -> Answer:
        resource = {
            "sid": message_id,
            "account_sid": self.account_sid,
            "to": body["To"],
            "from": body["From"],
            "body": body["Body"],
            "status": "queued",
            "num_segments": "1",
            "direction": "outbound-api",
            "api_version": "2010-04-01",
            "uri": f"/2010-04-01/Accounts/{self.account_sid}/Messages/{message_id}.json",
        }
        return Answer(201, resource)

    def check(self, path: str, headers: dict[str, str], raw: bytes) -> tuple[Any, Answer | None]:
        if path != f"/2010-04-01/Accounts/{self.account_sid}/Messages.json":
            return None, Answer(404, self.error_body(404, f"no resource {path}", 20404))
        basic = base64.b64encode(f"{self.account_sid}:{self.auth_token}".encode()).decode()
        if headers.get("Authorization") != f"Basic {basic}":
            return None, Answer(401, self.error_body(401, "Authenticate", 20003))
        form = {name: values[0] for name, values in parse_qs(raw.decode()).items()}
        missing = [f for f in ("To", "From", "Body") if not form.get(f)]
        if missing:
            return form, Answer(400, self.error_body(400, f"missing {missing}", 21604))
        if not form["To"].startswith("+") or not form["To"][1:].isdigit():
            return form, self.invalid_recipient()
        return form, None
