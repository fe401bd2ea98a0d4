"""The outbox: one row per message, keyed by idempotency key, and capture-mode delivery.

The idempotency key is `<journey_key>:<step_id>:<contact_id>`, one row per person a step
reaches, or `<journey_key>:<step_id>` for a step's one message to the primary contact or the CSM
(retention/delivery/audience.py); `:fallback` is appended for the step's fallback channel after
a provider refused the first. A retried activity or a replayed workflow finds the row already
there and gets the first delivery's receipt back with `duplicate=True`. A step has one
intervention row, made with its first message.
A held-out customer's message is rendered and recorded (status `held_out`) but never written
to the outbox folder or sent: the holdout group is what lift is measured against.
Captured messages are written owner-only (files 0600, folders 0700): they hold customer data.
"""

from __future__ import annotations

import os
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, bindparam, update
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from retention.delivery.channels import CSM_CHANNELS, recipient_for
from retention.delivery.requests import DeliverRequest, DeliveryReceipt
from retention.delivery.task_filing import file_task
from retention.delivery.templates import RenderedMessage, TemplateSet, render_message
from retention.errors import InvalidInput
from retention.plan import EVERY_FIELD, Channel
from retention.recipients import Recipient, spoken_to
from retention.store.db import session
from retention.store.statements import insert_new, insert_rows
from retention.store.tables import InterventionRow, OutboxRow

_SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,199}$")


@dataclass(frozen=True)
class Route:
    """Where one message of a step goes: its outbox key, channel and recipient; `note` says
    why, when it is the fallback because the first channel was refused or suppressed; `person`
    the contact it goes to (None: the step's one message, to the profile's address)."""

    key: str
    channel: Channel
    recipient: str
    fallback_used: bool
    note: str | None = None
    person: Recipient | None = None

    @classmethod
    def to(
        cls,
        key: str,
        channel: Channel,
        fallback_used: bool,
        request: DeliverRequest,
        note: str | None = None,
    ) -> Route:
        return cls(key, channel, recipient_for(channel, request.customer), fallback_used, note)

    @classmethod
    def for_person(
        cls, request: DeliverRequest, channel: Channel, person: Recipient, note: str | None = None
    ) -> Route:
        """`person`'s own message of the step, on `channel` at their address for it."""
        key = f"{request.idempotency_key}:{person.contact.contact_id}"
        fallback_used = channel != request.step.channel
        if note is not None:
            key += ":fallback"
        return cls(key, channel, person.address, fallback_used, note, person)


def render_for(templates: TemplateSet, request: DeliverRequest, route: Route) -> RenderedMessage:
    context = message_context(request, route.channel, route.recipient, route.person)
    return render_message(templates, request.step.template, context, html=route.channel == "email")


def capture(
    engine: Engine,
    outbox_dir: Path,
    templates: TemplateSet,
    request: DeliverRequest,
    route: Route,
) -> DeliveryReceipt:
    """Render the message, write it under `outbox_dir` and record it, exactly once."""
    message = render_for(templates, request, route)
    path = _message_path(outbox_dir, request, route)
    if not request.held_out:
        # File first: a row always has its file. A racing loser rewrites the same bytes.
        _write_atomic(outbox_dir, path, _file_text(route.recipient, route.channel, message))
    row = new_row(request, route, message, status="held_out" if request.held_out else "captured")
    row.path = "" if request.held_out else str(path)
    return insert_once(engine, request, row, with_intervention=True)


def new_row(
    request: DeliverRequest, route: Route, message: RenderedMessage, *, status: str
) -> OutboxRow:
    return OutboxRow(
        idempotency_key=route.key,
        journey_key=request.journey_key,
        journey_id=request.journey_id,
        step_id=request.step.step_id,
        customer_id=request.customer.customer_id,
        channel=route.channel,
        fallback_used=route.fallback_used,
        recipient=route.recipient,
        subject=message.subject,
        body=message.body,
        status=status,
        mode="capture",
        path="",
        note=route.note,
        journey_at=request.guard_rails.at if request.guard_rails else None,
    )


def insert_once(
    engine: Engine, request: DeliverRequest, row: OutboxRow, *, with_intervention: bool
) -> DeliveryReceipt:
    """Insert `row` (and the step's intervention, and its CSM task if it is CSM work, or the
    update of the open task it asks again); if a racing attempt got there first, its row's
    receipt, as a duplicate."""
    route_note = row.note
    try:
        _insert(engine, request, row, route_note, with_intervention=with_intervention)
    except IntegrityError:
        if (winner := find(engine, row.idempotency_key)) is not None:
            return receipt(winner, duplicate=True)
        # Not this key: another message made the customer's open task for this action and
        # reason first. Once more, and this one updates that task.
        _insert(engine, request, row, route_note, with_intervention=with_intervention)
    return receipt(row, duplicate=False)


def _insert(
    engine: Engine,
    request: DeliverRequest,
    row: OutboxRow,
    route_note: str | None,
    *,
    with_intervention: bool,
) -> None:
    with session(engine) as db:
        insert_rows(db, [row])  # the key first: a retry stops here, and SQLite takes its write lock
        if with_intervention:
            if task_note := file_task(db, request, row):
                row.note = "; ".join(n for n in (route_note, task_note) if n)
                db.execute(update(OutboxRow).where(col(OutboxRow.id) == row.id), {"note": row.note})
            add_intervention_once(db, request, row)


def message_context(
    request: DeliverRequest, channel: Channel, recipient: str, person: Recipient | None = None
) -> dict[str, Any]:
    """What a template sees: `customer`, `contact` (the person the message speaks to, and
    `contact.role`, the role they are addressed as), `step`, `journey`, `offer` (or None),
    `delivery` and `csm_booking_link` (or "")."""
    if person is None:
        contact, role = spoken_to(request.step.addressing, channel, request.customer)
    else:
        contact, role = person.contact, person.role
    return {
        "customer": request.customer.model_dump(mode="json"),
        "contact": contact.model_dump(mode="json") | {"role": role},
        "step": request.step.model_dump(mode="json", context={EVERY_FIELD: True}),
        "journey": {
            "journey_id": request.journey_id,
            "strategy": request.strategy,
            "risk_tier": request.risk_tier,
            "churn_probability": request.churn_probability,
            "health_score": request.health_score,
            "risk_factors": [factor.model_dump(mode="json") for factor in request.risk_factors],
        },
        "offer": request.offer.model_dump(mode="json") if request.offer else None,
        "delivery": {
            "channel": channel,
            "recipient": recipient,
            "to_csm": channel in CSM_CHANNELS,
        },
        "csm_booking_link": request.csm_booking_link,
    }


def find(engine: Engine, idempotency_key: str) -> OutboxRow | None:
    with session(engine) as db:
        return find_in(db, idempotency_key)


_BY_KEY = select(OutboxRow).where(col(OutboxRow.idempotency_key) == bindparam("key"))


def find_in(db: Session, idempotency_key: str) -> OutboxRow | None:
    return db.exec(_BY_KEY, params={"key": idempotency_key}).first()


def add_intervention_once(db: Session, request: DeliverRequest, row: OutboxRow) -> None:
    """The step's intervention, from its first message: the others of a step reaching several
    people are in the outbox only."""
    insert_new(db, intervention(request, row), "journey_key", "step_id")


def intervention(request: DeliverRequest, row: OutboxRow) -> InterventionRow:
    return InterventionRow(
        journey_key=request.journey_key,
        customer_id=request.customer.customer_id,
        step_id=request.step.step_id,
        action=request.step.action,
        channel=row.channel,
        owner=request.step.owner,
        status=row.status,
        outbox_id=row.id,
        note=row.note,
        at=row.created_at,
    )


def receipt(row: OutboxRow, *, duplicate: bool) -> DeliveryReceipt:
    return DeliveryReceipt.model_validate(
        {
            "outbox_id": row.id,
            "idempotency_key": row.idempotency_key,
            "channel": row.channel,
            "recipient": row.recipient,
            "fallback_used": row.fallback_used,
            "duplicate": duplicate,
            "path": row.path,
            "subject": row.subject,
            "held_out": row.status == "held_out",
            "mode": row.mode,
            "provider": row.provider,
            "provider_message_id": row.provider_message_id,
            "note": row.note,
        }
    )


def _message_path(outbox_dir: Path, request: DeliverRequest, route: Route) -> Path:
    for field, value in (
        ("journey_id", request.journey_id),
        ("step.step_id", request.step.step_id),
    ):
        if not _SAFE_NAME.match(value):
            raise InvalidInput(f"{field}: {value!r} is not usable as a file name")
    person = f".{route.person.contact.contact_id}" if route.person else ""
    suffix = ".fallback" if route.key.endswith(":fallback") else ""
    return outbox_dir / request.journey_id / f"{request.step.step_id}{person}{suffix}.txt"


def write_captured(outbox_dir: Path, row: OutboxRow) -> None:
    """Write a message made outside a step (e.g. an overdue-task alert) to its row's path."""
    message = RenderedMessage(subject=row.subject, body=row.body)
    _write_atomic(outbox_dir, Path(row.path), _file_text(row.recipient, row.channel, message))


def _file_text(recipient: str, channel: str, message: RenderedMessage) -> str:
    return f"To: {recipient}\nChannel: {channel}\nSubject: {message.subject}\n\n{message.body}"


def _write_atomic(outbox_dir: Path, path: Path, text: str) -> None:
    for folder in (outbox_dir, path.parent):
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        folder.chmod(0o700)  # also when an older version made it with the umask's mode
    # mkstemp creates the file 0600, and os.replace keeps the mode.
    handle, temp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as file:
            file.write(text)
        os.replace(temp, path)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise
