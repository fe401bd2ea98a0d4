"""Fake Slack Web API: a real HTTP server on 127.0.0.1 taking chat.postMessage and
conversations.history as Slack does (a bot token as `Authorization: Bearer xoxb-...`, a JSON or
form body, HTTP 200 with `{"ok": false, "error": ...}` for a refusal, 429 with Retry-After when
rate limited) and checking the Block Kit it is given. Unlike SendGrid's fake it never dedupes:
Slack does not, so every accepted post is a message in its channel."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qs, urlsplit

from fake_providers import Answer, ScriptedServer, reply
from pydantic import SecretStr

from retention.delivery.pacing import ChannelPacer
from retention.delivery.slack import SlackProvider

BLOCK_TYPES = frozenset({"header", "section", "actions", "context", "divider"})
BOT_TOKEN = "xoxb-1111-2222-fakeFAKEfake"
TEAM_CHANNEL, ANA_CHANNEL = "C0TEAM0001", "C0ANA00001"


@dataclass
class Posted:
    channel: str
    ts: str
    text: str
    blocks: list[dict[str, Any]]
    metadata: dict[str, Any] | None
    received_at: float  # when the fake took the post, on its clock


@dataclass
class Call:
    method: str  # the API method, e.g. chat.postMessage
    headers: dict[str, str]
    args: dict[str, Any] = field(default_factory=dict)


class FakeSlack(ScriptedServer):
    """`clock` stamps each post as it is taken (`Posted.received_at`): time.time, or a test's
    fake clock shared with the poster's pacer."""

    def __init__(self, token: str = BOT_TOKEN, clock: Callable[[], float] = time.time) -> None:
        self.token = token
        self.clock = clock
        self.channels: dict[str, list[Posted]] = {TEAM_CHANNEL: [], ANA_CHANNEL: []}
        self.calls: list[Call] = []
        self._last_ts = 0.0
        super().__init__()

    @property
    def url(self) -> str:
        return f"{self._http.root}/api/"

    def provider(
        self,
        token: str | None = None,
        team_channel: str = TEAM_CHANNEL,
        timeout: float = 5.0,
        pacer: ChannelPacer | None = None,
    ) -> SlackProvider:
        """The real provider, pointed here: Ana has her own channel, everyone else the team's."""
        secret = SecretStr(token or self.token)
        channels = {"csm_ana": ANA_CHANNEL}
        return SlackProvider(secret, team_channel, channels, self.url, timeout, pacer)

    def messages(self, channel: str | None = None) -> list[Posted]:
        return [m for c, posted in self.channels.items() for m in posted if channel in (None, c)]

    def posts(self) -> list[Call]:
        return [c for c in self.calls if c.method == "chat.postMessage"]

    def rate_limited(self, retry_after: int = 7) -> Answer:
        return Answer(
            429, {"ok": False, "error": "ratelimited"}, (("Retry-After", str(retry_after)),)
        )

    def _handle(self, handler: BaseHTTPRequestHandler) -> None:
        split = urlsplit(handler.path)
        method = split.path.removeprefix("/api/")
        headers = dict(handler.headers.items())
        raw = handler.rfile.read(int(headers.get("Content-Length") or 0))
        args = _args(headers.get("Content-Type", ""), raw, split.query)
        with self._lock:
            self.calls.append(Call(method, headers, args))
            answer = self._answer(method, headers, args)
            taken = bool(answer.body and answer.body.get("ok"))
            hold, self._hold_next = self._hold_next and taken, False
        self._wait_if(hold)
        reply(handler, answer, "application/json; charset=utf-8")

    def _answer(self, method: str, headers: dict[str, str], args: dict[str, Any]) -> Answer:
        auth = headers.get("Authorization")
        if auth is None:
            return _refused("not_authed")
        if auth != f"Bearer {self.token}" or not self.token.startswith("xoxb-"):
            return _refused("invalid_auth")
        if self._script:
            return self._script.popleft()
        if args.get("channel") not in self.channels:
            return _refused("channel_not_found")
        if method == "chat.postMessage":
            return self._post(args)
        if method == "conversations.history":
            return self._history(args)
        return Answer(404, {"ok": False, "error": "unknown_method"})

    def _post(self, args: dict[str, Any]) -> Answer:
        if (problem := _block_problem(args)) is not None:
            return _refused(problem)
        channel = args["channel"]
        ts = self._next_ts()
        metadata, taken = args.get("metadata"), self.clock()
        posted = Posted(channel, ts, args["text"], args["blocks"], metadata, taken)
        self.channels[channel].append(posted)
        message = {"type": "message", "text": posted.text, "ts": ts, "bot_id": "B0FAKE"}
        return Answer(200, {"ok": True, "channel": channel, "ts": ts, "message": message})

    def _next_ts(self) -> str:
        """Slack's `ts`: the post's time in microseconds, unique in its channel."""
        self._last_ts = max(time.time(), self._last_ts + 0.000001)
        return f"{self._last_ts:.6f}"

    def _history(self, args: dict[str, Any]) -> Answer:
        oldest = float(args.get("oldest") or 0)
        with_metadata = str(args.get("include_all_metadata")) in ("1", "true", "True")
        messages = []
        for posted in reversed(self.channels[args["channel"]]):  # newest first, as Slack
            if float(posted.ts) <= oldest:
                continue
            message: dict[str, Any] = {"type": "message", "text": posted.text, "ts": posted.ts}
            if with_metadata and posted.metadata is not None:
                message["metadata"] = posted.metadata
            messages.append(message)
        metadata = {"next_cursor": ""}
        return Answer(
            200,
            {"ok": True, "messages": messages, "has_more": False, "response_metadata": metadata},
        )


def _args(content_type: str, raw: bytes, query: str) -> dict[str, Any]:
    """The method's arguments, as Slack reads them: JSON, a form, or the query string."""
    if content_type.startswith("application/json"):
        parsed = json.loads(raw or b"{}")
        return parsed if isinstance(parsed, dict) else {}
    form = raw.decode() if content_type.startswith("application/x-www-form-urlencoded") else ""
    return {name: values[0] for name, values in parse_qs(f"{query}&{form}").items()}


def _refused(error: str) -> Answer:
    return Answer(200, {"ok": False, "error": error})


def _block_problem(args: dict[str, Any]) -> str | None:
    """Slack's error for a message it would not take (`invalid_blocks`, `no_text`), or None."""
    blocks, metadata = args.get("blocks"), args.get("metadata")
    if not isinstance(args.get("text"), str) or not args["text"]:
        return "no_text"
    if not isinstance(blocks, list) or not all(_block_ok(b) for b in blocks):
        return "invalid_blocks"
    if metadata is not None and not (
        isinstance(metadata.get("event_type"), str)
        and isinstance(metadata.get("event_payload"), dict)
    ):
        return "invalid_metadata_format"
    return None


def _block_ok(block: dict[str, Any]) -> bool:
    kind = block.get("type")
    if kind == "header":
        text = block.get("text") or {}
        return text.get("type") == "plain_text" and 0 < len(text.get("text", "")) <= 150
    if kind == "section":
        fields = block.get("fields") or []
        texts = [block["text"]] if "text" in block else fields
        return bool(texts) and len(fields) <= 10 and all(_text_ok(t) for t in texts)
    if kind == "actions":
        elements = block.get("elements") or []
        return bool(elements) and all(_button_ok(e) for e in elements)
    return kind in BLOCK_TYPES


def _text_ok(text: dict[str, Any]) -> bool:
    return text.get("type") in ("mrkdwn", "plain_text") and 0 < len(text.get("text", "")) <= 2000


def _button_ok(element: dict[str, Any]) -> bool:
    label, url = element.get("text") or {}, element.get("url") or ""
    return (
        element.get("type") == "button"
        and label.get("type") == "plain_text"
        and url.startswith(("http://", "https://"))
    )
