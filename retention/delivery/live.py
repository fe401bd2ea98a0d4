"""Live delivery through a provider, exactly once per outbox key (as far as the provider allows).

1. Reserve: insert the outbox row with status `sending` before the provider is called.
2. Send with the row's idempotency key; record the attempt and the provider's answer.
3. Delivered: mark the row `sent` with the provider's message id (and add the intervention).
4. A retry that finds `sending` sends again WITH THE SAME KEY; one that finds `sent` returns the
   first receipt. A provider that dedupes by key (our fakes) then answers with the first message's
   id. SendGrid and Twilio do not dedupe: a worker lost between 2. and 3. makes a second message
   there, so the window is kept to one HTTP call and a row update.
"""

from __future__ import annotations

from sqlalchemy import Engine
from sqlmodel import Session, select

from retention.delivery.outbox import (
    DeliverRequest,
    DeliveryReceipt,
    Route,
    add_intervention_once,
    find,
    insert_once,
    new_row,
    receipt,
    render_for,
)
from retention.delivery.providers import OutgoingMessage, Provider, ProviderAnswer
from retention.delivery.templates import TemplateSet
from retention.errors import (
    DeliveryFailed,
    InvalidRecipient,
    ProviderRejected,
    ProviderUnavailable,
    RetentionError,
    Suppressed,
)
from retention.store.db import session
from retention.store.tables import DeliveryAttemptRow, OutboxRow, utcnow

# Outbox statuses of a message a provider refused for good, and the error each one raises.
REFUSED: dict[str, type[DeliveryFailed]] = {
    "invalid_recipient": InvalidRecipient,
    "rejected": ProviderRejected,
    "suppressed": Suppressed,
}


def send_live(
    engine: Engine,
    templates: TemplateSet,
    request: DeliverRequest,
    route: Route,
    provider: Provider,
) -> DeliveryReceipt:
    message = render_for(templates, request, route)
    reserved = new_row(request, route, message, status="sending")
    reserved.mode, reserved.provider = "live", provider.name
    first = insert_once(engine, request, reserved, with_intervention=False)
    if first.duplicate and (row := find(engine, route.key)) is not None and row.status != "sending":
        return refused_or_receipt(row)
    answer = provider.send(
        OutgoingMessage(route.key, route.recipient, message.subject, message.body, message.html)
    )
    record_attempt(engine, route.key, route.channel, provider.name, answer)
    if answer.outcome == "delivered":
        return receipt(mark_sent(engine, request, route.key, answer.message_id), duplicate=False)
    error = answer.error or f"{provider.name} answered {answer.status_code}"
    if answer.outcome == "retryable":
        raise ProviderUnavailable(error, retry_after=answer.retry_after)
    mark(engine, route.key, answer.outcome)
    raise REFUSED[answer.outcome](error)


def refused_or_receipt(row: OutboxRow) -> DeliveryReceipt:
    """An earlier attempt's result: its receipt, or the refusal it ended in, again."""
    if (refusal := REFUSED.get(row.status)) is not None:
        if row.status == "suppressed" and row.note:
            raise refusal(row.note)
        raise refusal(f"{row.channel} to {row.recipient} was refused earlier ({row.status})")
    return receipt(row, duplicate=True)


def record_attempt(
    engine: Engine, key: str, channel: str, provider: str, answer: ProviderAnswer
) -> None:
    # Its own transaction: the attempt stays recorded even if marking the row fails after it.
    with session(engine) as db:
        db.add(
            DeliveryAttemptRow(
                idempotency_key=key,
                channel=channel,
                provider=provider,
                outcome=answer.outcome,
                status_code=answer.status_code,
                provider_message_id=answer.message_id,
                error=answer.error,
            )
        )


def mark_sent(
    engine: Engine, request: DeliverRequest, key: str, message_id: str | None
) -> OutboxRow:
    with session(engine) as db:
        row = _row(db, key)
        row.status, row.provider_message_id, row.sent_at = "sent", message_id, utcnow()
        add_intervention_once(db, request, row)
    return row


def mark(engine: Engine, key: str, status: str) -> None:
    with session(engine) as db:
        _row(db, key).status = status


def _row(db: Session, key: str) -> OutboxRow:
    row = db.exec(select(OutboxRow).where(OutboxRow.idempotency_key == key)).first()
    if row is None:  # reserved before the send: only a deleted row gets here
        raise RetentionError(f"outbox row {key!r} vanished while it was being sent")
    return row
