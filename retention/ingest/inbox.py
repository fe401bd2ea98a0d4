"""The `inbox` table: every accepted webhook, written before it is answered, until it has
reached a journey. Forwarders claim rows with a compare-and-set UPDATE, which is atomic on
SQLite and PostgreSQL alike, so two forwarders never take the same row."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

from sqlalchemy import Engine, and_, func, or_, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import aliased
from sqlmodel import col, select

from retention.ingest.sources import MappedEvent
from retention.store.db import session
from retention.store.tables import InboxRow, utcnow

# A row a forwarder claimed and never settled (it died) is claimable again after this.
CLAIM_LEASE = timedelta(minutes=2)
Settled = Literal["forwarded", "no_journey", "failed"]


@dataclass(frozen=True)
class Received:
    row: InboxRow
    duplicate: bool


def receive(engine: Engine, source: str, mapped: MappedEvent) -> Received:
    """Write the event (pending, or ignored for an unmapped kind); a delivery of a source event
    already here returns its first row with `duplicate=True` and writes nothing."""
    if (found := _find(engine, source, mapped.source_event_id)) is not None:
        return Received(found, duplicate=True)
    row = InboxRow(
        source=source,
        source_event_id=mapped.source_event_id,
        kind=mapped.kind,
        customer_id=mapped.customer_id,
        event=mapped.event.model_dump(mode="json") if mapped.event else None,
        status="pending" if mapped.event else "ignored",
    )
    try:
        with session(engine) as db:
            db.add(row)
    except IntegrityError:  # the same delivery racing in on another connection
        if (found := _find(engine, source, mapped.source_event_id)) is None:
            raise
        return Received(found, duplicate=True)
    return Received(row, duplicate=False)


def claim_next(engine: Engine, forwarder: str, now: datetime | None = None) -> InboxRow | None:
    """The oldest pending row, claimed for `forwarder`; None when there is none to take.

    A row waits while an earlier row of the same customer is still being forwarded, so one
    customer's events reach the journey in the order they came in."""
    now = now or utcnow()
    while (candidate := _oldest_claimable(engine, now)) is not None:
        with session(engine) as db:
            taken = db.exec(  # type: ignore[call-overload]
                update(InboxRow)
                .where(col(InboxRow.id) == candidate.id)
                .where(col(InboxRow.status) == candidate.status)
                .where(col(InboxRow.attempts) == candidate.attempts)
                .values(
                    status="forwarding",
                    claimed_by=forwarder,
                    claimed_at=now,
                    attempts=candidate.attempts + 1,
                )
            ).rowcount
        if taken == 1:
            return get(engine, int(candidate.id or 0))
    return None


def settle(
    engine: Engine,
    row_id: int,
    status: Settled,
    *,
    workflow_id: str | None = None,
    started_journey: bool = False,
    note: str | None = None,
) -> None:
    with session(engine) as db:
        db.exec(  # type: ignore[call-overload]
            update(InboxRow)
            .where(col(InboxRow.id) == row_id)
            .values(
                status=status,
                workflow_id=workflow_id,
                started_journey=started_journey,
                forwarded_at=utcnow() if status == "forwarded" else None,
                note=note,
                claimed_by=None,
            )
        )


def release(engine: Engine, row_id: int, note: str) -> None:
    """Back to pending (Temporal could not be reached); a later pass takes it again."""
    with session(engine) as db:
        db.exec(  # type: ignore[call-overload]
            update(InboxRow)
            .where(col(InboxRow.id) == row_id)
            .values(status="pending", claimed_by=None, claimed_at=None, note=note)
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


def pending_count(engine: Engine) -> int:
    query = select(func.count()).where(col(InboxRow.status).in_(["pending", "forwarding"]))
    with session(engine) as db:
        return int(db.exec(query).one())


def _find(engine: Engine, source: str, source_event_id: str) -> InboxRow | None:
    query = select(InboxRow).where(
        col(InboxRow.source) == source, col(InboxRow.source_event_id) == source_event_id
    )
    with session(engine) as db:
        return db.exec(query).first()


def _oldest_claimable(engine: Engine, now: datetime) -> InboxRow | None:
    expired = now - CLAIM_LEASE
    earlier = aliased(InboxRow)
    in_flight = (
        select(earlier.id)
        .where(
            earlier.customer_id == InboxRow.customer_id,
            col(earlier.id) < col(InboxRow.id),
            col(earlier.status).in_(["pending", "forwarding"]),
        )
        .exists()
    )
    claimable = or_(
        col(InboxRow.status) == "pending",
        and_(col(InboxRow.status) == "forwarding", col(InboxRow.claimed_at) < expired),
    )
    query = select(InboxRow).where(claimable, ~in_flight).order_by(col(InboxRow.id)).limit(1)
    with session(engine) as db:
        return db.exec(query).first()
