"""Taking inbox rows to forward, many at once, and deciding in the database which signal each
row goes out with (docs/ingestion.md).

A claim takes up to `customers` customers that have due rows and no rows in flight (so one
customer's events are forwarded by one forwarder, in order), and up to `per_customer` of each
one's due rows, oldest first. Each row is pinned to a *batch* as it is first claimed: a
`forward` row is a batch of its own; the pending rows of a `coalesce` type of one customer make
one batch once the oldest is due. The batch never changes afterwards, so a forwarder that dies
after signalling re-sends the same rows with the same request id and Temporal drops the repeat.

Claims are serialised (a transaction-wide advisory lock on PostgreSQL, the write lock taken
first on SQLite): each takes many rows, so they are few, and two never pick the same customer.
Only the claim is serialised, not the signals: two instances forward their customers at once.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, Engine, and_, bindparam, func, or_, text, update
from sqlmodel import Session, col, select

from retention.customer import MAX_EVENT_COUNT, CustomerEvent
from retention.ingest.inbox import CLAIM_LEASE, WAITING
from retention.store.db import session
from retention.store.tables import InboxRow, utcnow

PER_CUSTOMER = 100  # rows of one customer per claim: the others get their turn
MAX_BATCH = 5_000  # rows one coalesced signal stands for; more go out with the next
CLAIM_LOCK = 0x1B0C5  # PostgreSQL advisory lock key of inbox claims


@dataclass(frozen=True)
class Batch:
    """The rows one signal stands for; `name` (in the rows' `batch`) makes its request id."""

    name: str
    rows: tuple[InboxRow, ...]

    @property
    def ids(self) -> list[int]:
        return [int(row.id or 0) for row in self.rows]

    @property
    def coalesced(self) -> bool:
        return self.rows[0].delivery == "coalesce"

    @property
    def request_id(self) -> str:
        return f"inbox:{self.name}"

    def event(self) -> CustomerEvent:
        """The signal: one row's event, or for a coalesced batch the newest row's, standing
        for all of them (`count`) at the newest time any of them names."""
        events = [CustomerEvent.model_validate(row.event) for row in self.rows]
        if not self.coalesced:
            return events[0]
        times = [e.at for e in events if e.at is not None]
        count = min(sum(e.count for e in events), MAX_EVENT_COUNT)
        return events[-1].model_copy(update={"count": count, "at": max(times, default=None)})


@dataclass(frozen=True)
class Claim:
    customer_id: str
    batches: tuple[Batch, ...]  # in the order they go out

    @property
    def ids(self) -> list[int]:
        return [i for batch in self.batches for i in batch.ids]


def claim(
    engine: Engine,
    forwarder: str,
    *,
    customers: int,
    per_customer: int = PER_CUSTOMER,
    now: datetime | None = None,
    lease: timedelta = CLAIM_LEASE,
) -> list[Claim]:
    """Claims for up to `customers` customers; empty when nothing is due. A handful of
    statements whatever the number of customers: claims are serialised, and on SQLite the
    write lock a claim holds is the one every webhook's insert waits for."""
    now = now or utcnow()
    with session(engine) as db:
        _serialise(db)
        chosen = _next_customers(db, now, customers, lease)
        due = _due(db, chosen, now, per_customer, lease)
        pinned = _pinned(db, {r.batch for rows in due.values() for r in rows if r.batch})
        coalesced = _coalesced(db, {k for rows in due.values() for r in rows if (k := _open(r))})
        claims = [Claim(c, tuple(_batches(c, due[c], pinned, coalesced))) for c in due]
        _mark(db, [b for c in claims for b in c.batches], forwarder, now)
    return [c for c in claims if c.batches]


def _serialise(db: Session) -> None:
    if db.get_bind().dialect.name == "postgresql":
        db.exec(text("SELECT pg_advisory_xact_lock(:key)").bindparams(key=CLAIM_LOCK))  # type: ignore[call-overload]
    else:  # a write first: SQLite's write lock, held to the end of the transaction
        db.exec(update(InboxRow).where(col(InboxRow.id) == -1).values(attempts=0))  # type: ignore[call-overload]


def _claimable(now: datetime, lease: timedelta) -> ColumnElement[bool]:
    """Pending, or claimed by a forwarder whose lease ran out; and due. (Each case a range of
    the (status, due_at) index, not a scan of every row waiting for its interval.)"""
    due = col(InboxRow.due_at) <= now
    pending = and_(col(InboxRow.status) == "pending", due)
    lease_over = col(InboxRow.claimed_at) < now - lease
    return or_(pending, and_(col(InboxRow.status) == "forwarding", due, lease_over))


def _next_customers(db: Session, now: datetime, limit: int, lease: timedelta) -> list[str]:
    """Customers with due rows and none in flight, the one waiting longest first."""
    in_flight = select(InboxRow.customer_id).where(
        col(InboxRow.status) == "forwarding", col(InboxRow.claimed_at) >= now - lease
    )
    query = (
        select(InboxRow.customer_id)
        .where(_claimable(now, lease), col(InboxRow.customer_id).is_not(None))
        .where(col(InboxRow.customer_id).not_in(in_flight))
        .group_by(col(InboxRow.customer_id))
        .order_by(func.min(InboxRow.id))
        .limit(limit)
    )
    return [str(c) for c in db.exec(query).all()]


def _due(
    db: Session, chosen: list[str], now: datetime, per_customer: int, lease: timedelta
) -> dict[str, list[InboxRow]]:
    """Each chosen customer's claimable rows, oldest first, at most `per_customer` each."""
    if not chosen:
        return {}
    where = and_(col(InboxRow.customer_id).in_(chosen), _claimable(now, lease))
    found: dict[str, list[InboxRow]] = {c: [] for c in chosen}
    for row in _first(db, where, [InboxRow.customer_id], per_customer):
        found[str(row.customer_id)].append(row)
    return found


def _first(
    db: Session, where: ColumnElement[bool], by: list[Any], limit: int
) -> Sequence[InboxRow]:
    """The rows `where` holds, oldest first, at most `limit` of each group `by` names."""
    rank = func.row_number().over(partition_by=by, order_by=col(InboxRow.id)).label("rank")
    ranked = select(col(InboxRow.id), rank).where(where).subquery()
    return db.exec(
        select(InboxRow)
        .join(ranked, ranked.c.id == col(InboxRow.id))
        .where(ranked.c.rank <= limit)
        .order_by(col(InboxRow.id))
    ).all()


def _open(row: InboxRow) -> tuple[str, str] | None:
    """(customer, type) of a coalesced row not yet in a batch: its type's rows make one."""
    if row.batch is None and row.delivery == "coalesce" and row.event_type is not None:
        return str(row.customer_id), row.event_type
    return None


def _batches(
    customer_id: str,
    due: Sequence[InboxRow],
    pinned: dict[str, tuple[InboxRow, ...]],
    coalesced: dict[tuple[str, str], tuple[InboxRow, ...]],
) -> list[Batch]:
    found: dict[str, Batch] = {}  # by batch name, or `type:` for a coalesced type
    for row in due:
        if row.batch is not None:  # pinned when first claimed: the same rows again
            found.setdefault(row.batch, Batch(row.batch, pinned.get(row.batch, ())))
        elif (key := _open(row)) is not None:
            found.setdefault(f"type:{key[1]}", _coalesce(customer_id, key[1], coalesced[key]))
        else:
            name = f"{row.source}:{row.source_event_id}"
            found[name] = Batch(name, (row,))
    return sorted((b for b in found.values() if b.rows), key=lambda b: b.ids[-1])


def _pinned(db: Session, names: set[str]) -> dict[str, tuple[InboxRow, ...]]:
    """The waiting rows of each batch named."""
    found: dict[str, list[InboxRow]] = {}
    if names:
        query = select(InboxRow).where(col(InboxRow.batch).in_(names)).order_by(col(InboxRow.id))
        for row in db.exec(query).all():
            if row.status in WAITING:
                found.setdefault(str(row.batch), []).append(row)
    return {name: tuple(rows) for name, rows in found.items()}


def _coalesced(
    db: Session, keys: set[tuple[str, str]]
) -> dict[tuple[str, str], tuple[InboxRow, ...]]:
    """Every unbatched pending row of each (customer, type), due or not: the oldest one being
    due, the whole interval's rows go out together (at most MAX_BATCH)."""
    if not keys:
        return {}
    where = and_(
        col(InboxRow.customer_id).in_({c for c, _ in keys}),
        col(InboxRow.event_type).in_({t for _, t in keys}),
        col(InboxRow.delivery) == "coalesce",
        col(InboxRow.batch).is_(None),
        col(InboxRow.status) == "pending",
    )
    found: dict[tuple[str, str], list[InboxRow]] = {key: [] for key in keys}
    for row in _first(db, where, [InboxRow.customer_id, InboxRow.event_type], MAX_BATCH):
        if (key := (str(row.customer_id), str(row.event_type))) in found:
            found[key].append(row)
    return {key: tuple(rows) for key, rows in found.items()}


def _coalesce(customer_id: str, event_type: str, rows: tuple[InboxRow, ...]) -> Batch:
    if not rows:
        return Batch("", ())  # nothing left to take (dropped by the caller)
    return Batch(f"coalesced:{customer_id}:{event_type}:{rows[0].id}-{rows[-1].id}", rows)


def _mark(db: Session, batches: Sequence[Batch], forwarder: str, now: datetime) -> None:
    table = InboxRow.__table__  # type: ignore[attr-defined]
    statement = (
        update(table)
        .where(table.c.id == bindparam("row_id"))
        .values(
            status="forwarding",
            claimed_by=forwarder,
            claimed_at=now,
            attempts=table.c.attempts + 1,
            batch=bindparam("batch_name"),
        )
    )
    params = [{"row_id": i, "batch_name": b.name} for b in batches for i in b.ids]
    if params:
        db.connection().execute(statement, params)
