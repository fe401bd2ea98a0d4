"""A customer's in-app messages: the outbox rows on the `in_app` channel, newest first."""

from __future__ import annotations

from sqlalchemy import Engine
from sqlmodel import col, select

from retention.store.db import session
from retention.store.tables import OutboxRow

# What reached (or, held out, would have reached) the customer's in-app inbox.
SHOWN = ("captured", "held_out")


def in_app_messages(engine: Engine, customer_id: str) -> list[OutboxRow]:
    query = (
        select(OutboxRow)
        .where(col(OutboxRow.customer_id) == customer_id, col(OutboxRow.channel) == "in_app")
        .where(col(OutboxRow.status).in_(SHOWN))
        .order_by(col(OutboxRow.created_at).desc())
    )
    with session(engine) as db:
        return list(db.exec(query).all())
