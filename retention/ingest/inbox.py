"""The `inbox` table: every accepted webhook, written before it is answered, until it has
reached a journey (or, `record` mode, kept and counted only). Forwarders take rows with
`retention.ingest.claims.claim`."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

from sqlalchemy import Engine, bindparam, func, update
from sqlalchemy.exc import IntegrityError
from sqlmodel import col, select

from retention.customer import CustomerEvent
from retention.ingest.modes import FORWARD, Mode
from retention.ingest.sources import MappedEvent
from retention.journey_state import journey_id
from retention.store.db import session
from retention.store.tables import InboxRow, utcnow

# A row a forwarder claimed and never settled (it died) is claimable again after this
# (`RETENTION_INGEST_CLAIM_LEASE_SECONDS`); a live forwarder renews its claims.
CLAIM_LEASE = timedelta(minutes=2)
Settled = Literal["forwarded", "no_journey", "failed"]
WAITING = ("pending", "forwarding")


@dataclass(frozen=True)
class Received:
    row: InboxRow
    duplicate: bool


def receive(engine: Engine, source: str, mapped: MappedEvent, mode: Mode = FORWARD) -> Received:
    """Write the event (pending, recorded, or ignored for an unmapped kind); a delivery of a
    source event already here returns its first row with `duplicate=True` and writes nothing.
    (Written first, looked up only when the unique key refuses it: one transaction a webhook.)"""
    now = utcnow()
    event = mapped.event
    row = InboxRow(
        source=source,
        source_event_id=mapped.source_event_id,
        kind=mapped.kind,
        customer_id=mapped.customer_id,
        event=event.model_dump(mode="json") if event else None,
        event_type=event.type if event else None,
        status=mode.status if event else "ignored",
        delivery=mode.name,
        received_at=now,
        due_at=now + mode.interval,
    )
    try:
        with session(engine) as db:
            db.add(row)
    except IntegrityError:  # delivered before, or racing in on another connection
        if (found := _find(engine, source, mapped.source_event_id)) is None:
            raise
        return Received(found, duplicate=True)
    return Received(row, duplicate=False)


def record_sent(
    engine: Engine, source: str, customer_id: str, event: CustomerEvent, request_id: str
) -> InboxRow:
    """An event a journey took from a sender other than the ingest service (e.g. `starter.py
    event`), kept for the account timeline: already settled, so no forwarder claims it."""
    now = utcnow()
    row = InboxRow(
        source=source,
        source_event_id=request_id,
        kind=event.type,
        customer_id=customer_id,
        event=event.model_dump(mode="json"),
        event_type=event.type,
        status="forwarded",
        received_at=now,
        forwarded_at=now,
        workflow_id=journey_id(customer_id),
    )
    with session(engine) as db:
        db.add(row)
    return row


@dataclass(frozen=True)
class Settlement:
    """The rows of one signal (or one refusal), all settled alike."""

    ids: Sequence[int]
    status: Settled
    workflow_id: str | None = None
    started_journey: bool = False
    note: str | None = None


_TABLE = InboxRow.__table__  # type: ignore[attr-defined]
_SETTLE = (
    update(_TABLE)
    .where(_TABLE.c.id == bindparam("row_id"))
    .values(
        status=bindparam("new_status"),
        workflow_id=bindparam("new_workflow_id"),
        started_journey=bindparam("new_started"),
        forwarded_at=bindparam("new_forwarded_at"),
        note=bindparam("new_note"),
        claimed_by=None,
    )
)


def settle(
    engine: Engine,
    row_ids: Sequence[int],
    status: Settled,
    *,
    workflow_id: str | None = None,
    started_journey: bool = False,
    note: str | None = None,
) -> None:
    settle_all(engine, [Settlement(row_ids, status, workflow_id, started_journey, note)])


def settle_all(engine: Engine, settlements: Sequence[Settlement]) -> None:
    """Many batches' rows in one transaction and one statement (a row's values each): the
    ORM's bulk update costs the forwarder more than the database does."""
    now = utcnow()
    params = [
        {
            "row_id": i,
            "new_status": done.status,
            "new_workflow_id": done.workflow_id,
            "new_started": done.started_journey,
            "new_forwarded_at": now if done.status == "forwarded" else None,
            "new_note": done.note,
        }
        for done in settlements
        for i in done.ids
    ]
    if params:
        with session(engine) as db:
            db.connection().execute(_SETTLE, params)


def release(engine: Engine, row_ids: Sequence[int], note: str) -> None:
    """Back to pending (Temporal could not be reached); a later pass takes them again, as the
    same batch: the rows keep it, so a signal that did arrive is dropped as a repeat."""
    with session(engine) as db:
        db.exec(  # type: ignore[call-overload]
            update(InboxRow)
            .where(col(InboxRow.id).in_(row_ids), col(InboxRow.status) == "forwarding")
            .values(status="pending", claimed_by=None, claimed_at=None, note=note)
        )


def renew(engine: Engine, forwarder: str) -> None:
    """The forwarder's rows in flight are its own for another lease: a claim that takes longer
    than the lease (a slow pace, a long backlog) is not taken by another instance meanwhile."""
    with session(engine) as db:
        db.exec(  # type: ignore[call-overload]
            update(InboxRow)
            .where(col(InboxRow.status) == "forwarding", col(InboxRow.claimed_by) == forwarder)
            .values(claimed_at=utcnow())
        )


def get(engine: Engine, row_id: int) -> InboxRow | None:
    with session(engine) as db:
        return db.get(InboxRow, row_id)


def rows(engine: Engine, source: str | None = None) -> list[InboxRow]:
    query = select(InboxRow).order_by(col(InboxRow.id))
    if source is not None:
        query = query.where(col(InboxRow.source) == source)
    with session(engine) as db:
        return list(db.exec(query).all())


def pending_count(engine: Engine, due_by: datetime | None = None) -> int:
    """Rows not settled yet; with `due_by`, only those due by then (a coalesced row inside its
    interval is waiting as told, not behind)."""
    query = select(func.count()).where(col(InboxRow.status).in_(WAITING))
    if due_by is not None:
        query = query.where(col(InboxRow.due_at) <= due_by)
    with session(engine) as db:
        return int(db.exec(query).one())


def _find(engine: Engine, source: str, source_event_id: str) -> InboxRow | None:
    query = select(InboxRow).where(
        col(InboxRow.source) == source, col(InboxRow.source_event_id) == source_event_id
    )
    with session(engine) as db:
        return db.exec(query).first()
