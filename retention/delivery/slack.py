"""CSM alerts posted to Slack with the official SDK (chat.postMessage, Block Kit).

chat.postMessage takes no idempotency key, so each message carries its alert's key in its
`metadata`; before posting an alert again (its row still `sending`: a worker died mid-send, or
Slack asked to wait), the channel's recent history is searched for that key and a message found
is adopted instead. Slack answers HTTP 200 with `{"ok": false, "error": ...}` for most refusals
(429 with Retry-After when rate limited); slack_sdk raises SlackApiError, classified here.
The SDK's own retries are off: a retried POST is a second message, so retrying is the outbox's.
Posts are paced per channel before Slack has to say 429 (retention/delivery/pacing.py).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

from pydantic import SecretStr
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError, SlackClientError

from retention.delivery.alerts import CsmAlert
from retention.delivery.pacing import ChannelPacer
from retention.delivery.providers import SEND_TIMEOUT, ProviderAnswer, retry_after, scrub
from retention.delivery.slack_blocks import alert_blocks, escape

EVENT_TYPE = "retention_alert"
# Slack's error codes about the channel (any other refusal, invalid_auth included, is final too).
BAD_CHANNEL = frozenset({"channel_not_found", "not_in_channel", "is_archived"})
SLACK_TROUBLE = frozenset({"ratelimited", "internal_error", "fatal_error", "service_unavailable"})
HISTORY_PAGES = 5  # pages of 200 messages searched for an alert that may have been posted


class SlackProvider:
    name = "slack"

    def __init__(
        self,
        token: SecretStr,
        team_channel: str,
        csm_channels: Mapping[str, str],
        base_url: str,
        timeout: float = SEND_TIMEOUT,
        pacer: ChannelPacer | None = None,
    ) -> None:
        self._token = token
        self._team_channel = team_channel
        self._csm_channels = dict(csm_channels)
        self._base_url = base_url.rstrip("/") + "/"
        self._timeout = timeout
        # One pacer for every thread posting through this provider: the worker makes one.
        self._pacer = pacer or ChannelPacer()

    def channel_for(self, csm: str | None) -> str:
        """The CSM's own channel when they have one, else the team channel."""
        return self._csm_channels.get(csm or "", self._team_channel)

    def post(self, alert: CsmAlert, channel: str) -> ProviderAnswer:
        """Post in the channel's turn (a second after its previous post); a retryable answer
        with the wait as Retry-After when the turn is more than a few seconds away."""
        answer = self._pacer.paced(channel, lambda: self._post(alert, channel))
        if isinstance(answer, timedelta):
            wait = int(answer.total_seconds())
            error = f"Slack channel {channel} is busy: next post in {wait} s"
            return ProviderAnswer("retryable", None, error=error, retry_after=answer)
        return answer

    def _post(self, alert: CsmAlert, channel: str) -> ProviderAnswer:
        try:
            answer = self._client().chat_postMessage(
                channel=channel,
                text=escape(alert.text),
                blocks=alert_blocks(alert),
                metadata={
                    "event_type": EVENT_TYPE,
                    "event_payload": {"idempotency_key": alert.key},
                },
                unfurl_links=False,
            )
        except SlackApiError as exc:
            return self._refusal(exc)
        except (SlackClientError, OSError) as exc:  # no answer: Slack may or may not have it
            return self._unreachable(exc)
        return ProviderAnswer("delivered", answer.status_code, message_id=str(answer["ts"]))

    def find_posted(self, key: str, channel: str, since: datetime) -> ProviderAnswer | None:
        """The message posted for `key` in `channel` since `since`, as a delivered answer;
        None when there is none; a failed answer when the history could not be read."""
        client, cursor = self._client(), None
        try:
            for _page in range(HISTORY_PAGES):
                page = client.conversations_history(
                    channel=channel,
                    oldest=f"{since.timestamp() - 60:.6f}",  # clocks differ a little
                    include_all_metadata=True,
                    limit=200,
                    cursor=cursor,
                )
                if (ts := _ts_with_key(page.get("messages") or [], key)) is not None:
                    return ProviderAnswer("delivered", page.status_code, message_id=ts)
                cursor = (page.get("response_metadata") or {}).get("next_cursor")
                if not cursor:
                    return None
        except SlackApiError as exc:
            return self._refusal(exc)
        except (SlackClientError, OSError) as exc:
            return self._unreachable(exc)
        return None

    def _client(self) -> WebClient:
        # One per call: the client is cheap, and keeps no state between activity threads.
        return WebClient(
            token=self._token.get_secret_value(),
            base_url=self._base_url,
            timeout=int(self._timeout),
            retry_handlers=[],
        )

    def _refusal(self, exc: SlackApiError) -> ProviderAnswer:
        status = exc.response.status_code
        error = str(exc.response.get("error") or "no reason given")
        text = self._scrub(f"Slack answered {status}: {error}")
        headers = {name.lower(): value for name, value in exc.response.headers.items()}
        wait = retry_after(headers.get("retry-after"))
        if status == 429 or status >= 500 or error in SLACK_TROUBLE:
            return ProviderAnswer("retryable", status, error=text, retry_after=wait)
        if error in BAD_CHANNEL:
            return ProviderAnswer("invalid_recipient", status, error=text)
        return ProviderAnswer("rejected", status, error=text)

    def _unreachable(self, exc: Exception) -> ProviderAnswer:
        return ProviderAnswer("retryable", None, error=self._scrub(f"Slack unreachable: {exc}"))

    def _scrub(self, text: str) -> str:
        return scrub(text, (self._token.get_secret_value(),))


def _ts_with_key(messages: list[dict[str, Any]], key: str) -> str | None:
    for message in messages:
        metadata = message.get("metadata") or {}
        payload = metadata.get("event_payload") or {}
        if metadata.get("event_type") == EVENT_TYPE and payload.get("idempotency_key") == key:
            return str(message["ts"])
    return None
