"""CSM alerts posted to Slack exactly once through the outbox (docs/delivery.md).

1. Reserve: the alert's row (channel `slack`, status `sending`, the whole alert as its body, the
   Slack channel as its recipient) is inserted before Slack is called.
2. Post; or, for a row found still `sending` (a worker died mid-send, or Slack asked to wait),
   first look in the channel for a message carrying the key and adopt it.
3. Slack's answer: `sent` with the message's `ts`; a refusal (bad token, unknown channel) final
   on the row, its reason in `note`; a 429 or 5xx raises ProviderUnavailable (with Retry-After)
   and leaves the row `sending` for the retry.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from sqlalchemy import Engine
from sqlalchemy.exc import IntegrityError
from sqlmodel import col, select

from retention.delivery.alerts import CsmAlert, journey_url
from retention.delivery.live import record_attempt
from retention.delivery.outbox import find
from retention.delivery.providers import ProviderAnswer
from retention.delivery.slack import SlackProvider
from retention.errors import ProviderUnavailable, RetentionError
from retention.runtime.connection import temporal_namespace
from retention.runtime.settings import Settings
from retention.store.db import session
from retention.store.tables import OutboxRow, utcnow

log = logging.getLogger(__name__)

ALERT_CHANNEL = "slack"  # the outbox channel of an alert's row
# An alert reserved this long ago is no longer being posted by anyone: the deliver activity's
# start-to-close timeout is 60 s.
PENDING_AFTER = timedelta(minutes=5)


class AlertPoster:
    def __init__(self, engine: Engine, slack: SlackProvider, ui_url: str, namespace: str) -> None:
        self._engine = engine
        self._slack = slack
        self._ui_url = ui_url
        self._namespace = namespace

    def journey_url(self, workflow_id: str) -> str:
        return journey_url(self._ui_url, self._namespace, workflow_id)

    def reserved(self, alert: CsmAlert, now: datetime | None = None) -> OutboxRow:
        """The alert's outbox row, not yet sent: for a caller that adds it in its own
        transaction (then `send` it after the commit)."""
        return OutboxRow(
            idempotency_key=alert.key,
            journey_key=alert.journey_key,
            journey_id=alert.journey_id,
            step_id=alert.step_id,
            customer_id=alert.customer_id,
            channel=ALERT_CHANNEL,
            recipient=self._slack.channel_for(alert.csm),
            subject=alert.headline,
            body=alert.model_dump_json(),
            status="sending",
            mode="live",
            provider=self._slack.name,
            path="",
            created_at=now or utcnow(),
        )

    def post(self, alert: CsmAlert) -> OutboxRow:
        """Post the alert unless it was posted (or refused) before: its row as it ends."""
        row = self.reserved(alert)
        try:
            with session(self._engine) as db:
                db.add(row)
            return self.send(row, resuming=False)
        except IntegrityError:
            found = find(self._engine, alert.key)
            if found is None:
                raise
        return found if found.status != "sending" else self.send(found, resuming=True)

    def send(self, row: OutboxRow, *, resuming: bool) -> OutboxRow:
        """Post a reserved row's alert; `resuming`: it may have been posted already."""
        answer = self._posted_before(row) if resuming else None
        if answer is None:
            answer = self._slack.post(CsmAlert.model_validate_json(row.body), row.recipient)
        record_attempt(self._engine, row.idempotency_key, row.channel, row.provider or "", answer)
        if answer.outcome == "retryable":
            error = answer.error or "Slack asked to try again"
            raise ProviderUnavailable(error, retry_after=answer.retry_after)
        return _settle(self._engine, row.idempotency_key, answer)

    def resend_pending(
        self, now: datetime | None = None, older_than: timedelta = PENDING_AFTER
    ) -> list[OutboxRow]:
        """Send again every alert reserved more than `older_than` ago and still `sending` (its
        worker died, or Slack asked to wait); those Slack still defers stay as they are."""
        cutoff = (now or utcnow()) - older_than
        query = select(OutboxRow).where(
            col(OutboxRow.channel) == ALERT_CHANNEL,
            col(OutboxRow.status) == "sending",
            col(OutboxRow.created_at) < cutoff,
        )
        with session(self._engine) as db:
            pending = list(db.exec(query).all())
        settled = []
        for row in pending:
            try:
                settled.append(self.send(row, resuming=True))
            except ProviderUnavailable as exc:
                log.warning("alert %s not sent yet: %s", row.idempotency_key, exc)
        return settled

    def _posted_before(self, row: OutboxRow) -> ProviderAnswer | None:
        found = self._slack.find_posted(row.idempotency_key, row.recipient, row.created_at)
        if found is not None and found.outcome not in ("delivered", "retryable"):
            # Without the history (e.g. no channels:history scope) a lost alert is worse than
            # a possible second one.
            log.warning("alert %s: history not searched (%s)", row.idempotency_key, found.error)
            return None
        return found


def _settle(engine: Engine, key: str, answer: ProviderAnswer) -> OutboxRow:
    with session(engine) as db:
        row = db.exec(select(OutboxRow).where(OutboxRow.idempotency_key == key)).first()
        if row is None:
            raise RetentionError(f"outbox row {key!r} vanished while it was being sent")
        if answer.outcome == "delivered":
            row.status, row.provider_message_id, row.sent_at = "sent", answer.message_id, utcnow()
        else:
            row.status, row.note = answer.outcome, answer.error
            log.error("alert %s refused by Slack: %s", key, answer.error)
        db.add(row)
    return row


def alert_poster_from(settings: Settings, engine: Engine) -> AlertPoster | None:
    """The poster in live mode with Slack configured; None otherwise (the `internal` rows stay
    captured, as without Slack)."""
    token, channel = settings.slack_bot_token, settings.slack_channel
    if settings.delivery_mode != "live" or token is None or not channel:
        return None
    slack = SlackProvider(token, channel, settings.slack_csm_channels, settings.slack_base_url)
    return AlertPoster(engine, slack, settings.ui_url, temporal_namespace(settings))
