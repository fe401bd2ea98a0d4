"""The suppression list: customers (or addresses) that get nothing on a channel, any journey."""

from __future__ import annotations

from sqlalchemy import Engine, or_
from sqlalchemy.exc import IntegrityError
from sqlmodel import col, delete, select

from retention.store.db import session
from retention.store.tables import SuppressionRow
from retention.suppression import SuppressRequest


def add_suppression(engine: Engine, request: SuppressRequest) -> SuppressionRow:
    """Record `request`; an entry already there for the customer and channel is kept as it is
    (the first reason stands, and a retried activity adds nothing)."""
    if (entry := _entry(engine, request.customer_id, request.channel)) is not None:
        return entry
    row = SuppressionRow(**request.model_dump())
    try:
        with session(engine) as db:
            db.add(row)
    except IntegrityError:  # a racing writer got there first
        if (entry := _entry(engine, request.customer_id, request.channel)) is None:
            raise
        return entry
    return row


def remove_suppression(engine: Engine, customer_id: str, channel: str) -> bool:
    """Lift the customer's suppression on `channel`; False if there was none."""
    with session(engine) as db:
        result = db.exec(
            delete(SuppressionRow).where(
                col(SuppressionRow.customer_id) == customer_id,
                col(SuppressionRow.channel) == channel,
            )
        )
        return bool(result.rowcount)


def suppression_for(
    engine: Engine, customer_id: str, channel: str, address: str
) -> SuppressionRow | None:
    """The entry that stops a message to `address` on `channel` for this customer: the
    customer's own, or one for the same address under another customer id."""
    query = (
        select(SuppressionRow)
        .where(col(SuppressionRow.channel) == channel)
        .where(
            or_(
                col(SuppressionRow.customer_id) == customer_id,
                col(SuppressionRow.address) == address,
            )
        )
        .order_by(col(SuppressionRow.at))
    )
    with session(engine) as db:
        return db.exec(query).first()


def list_suppressions(engine: Engine, customer_id: str | None = None) -> list[SuppressionRow]:
    query = select(SuppressionRow).order_by(
        col(SuppressionRow.customer_id), col(SuppressionRow.channel)
    )
    if customer_id is not None:
        query = query.where(col(SuppressionRow.customer_id) == customer_id)
    with session(engine) as db:
        return list(db.exec(query).all())


def _entry(engine: Engine, customer_id: str, channel: str) -> SuppressionRow | None:
    query = select(SuppressionRow).where(
        col(SuppressionRow.customer_id) == customer_id, col(SuppressionRow.channel) == channel
    )
    with session(engine) as db:
        return db.exec(query).first()
