"""The suppression list: customers (or one person's address at one) that get nothing on a
channel, any journey."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import Engine, and_, bindparam, or_
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, delete, select

from retention.store.db import session
from retention.store.tables import SuppressionRow
from retention.suppression import WHOLE_ACCOUNT, SuppressRequest


def add_suppression(engine: Engine, request: SuppressRequest) -> SuppressionRow:
    """Record `request` (its person's address already found, if it names one); an entry already
    there for the customer, channel and person is kept as it is (the first reason stands, and a
    retried activity adds nothing)."""
    if request.contact_id is not None and request.person is None:
        raise ValueError(f"contact {request.contact_id!r}: their address was not looked up")
    person = request.person or WHOLE_ACCOUNT
    if (entry := _entry(engine, request.customer_id, request.channel, person)) is not None:
        return entry
    row = SuppressionRow(
        customer_id=request.customer_id,
        channel=request.channel,
        person=person,
        address=request.person or request.address,
        reason=request.reason,
        source=request.source,
    )
    try:
        with session(engine) as db:
            db.add(row)
    except IntegrityError:  # a racing writer got there first
        if (entry := _entry(engine, request.customer_id, request.channel, person)) is None:
            raise
        return entry
    return row


def remove_suppression(
    engine: Engine, customer_id: str, channel: str, person: str = WHOLE_ACCOUNT
) -> bool:
    """Lift the customer's suppression on `channel` (only `person`'s, given an address); False
    if there was none."""
    with session(engine) as db:
        result = db.exec(
            delete(SuppressionRow).where(
                col(SuppressionRow.customer_id) == customer_id,
                col(SuppressionRow.channel) == channel,
                col(SuppressionRow.person) == person,
            )
        )
        return bool(result.rowcount)


def suppression_for(
    db: Session, customer_id: str, channel: str, addresses: Sequence[str]
) -> SuppressionRow | None:
    """The entry that stops a message to `addresses` on `channel` for this customer: the whole
    account's, or one for one of the addresses (one person's, or under another customer id).
    One person's entry stops nobody else at the account. Read in the caller's session: the
    deliver activity reads what it needs before it writes in one."""
    params = {"customer_id": customer_id, "channel": channel, "addresses": list(addresses)}
    return db.exec(_STOPPING, params=params).first()


# built once: the deliver activity asks it for every message
_STOPPING = (
    select(SuppressionRow)
    .where(col(SuppressionRow.channel) == bindparam("channel"))
    .where(
        or_(
            and_(
                col(SuppressionRow.customer_id) == bindparam("customer_id"),
                col(SuppressionRow.person) == WHOLE_ACCOUNT,
            ),
            col(SuppressionRow.address).in_(bindparam("addresses", expanding=True)),
        )
    )
    .order_by(col(SuppressionRow.at))
)


def as_request(row: SuppressionRow) -> SuppressRequest:
    """The request an entry records (`person` None for the whole account's)."""
    return SuppressRequest(
        customer_id=row.customer_id,
        channel=row.channel,  # type: ignore[arg-type]  # written from a CustomerChannel
        address=row.address,
        person=row.person or None,
        reason=row.reason,
        source=row.source,
    )


def list_suppressions(engine: Engine, customer_id: str | None = None) -> list[SuppressionRow]:
    query = select(SuppressionRow).order_by(
        col(SuppressionRow.customer_id), col(SuppressionRow.channel), col(SuppressionRow.person)
    )
    if customer_id is not None:
        query = query.where(col(SuppressionRow.customer_id) == customer_id)
    with session(engine) as db:
        return list(db.exec(query).all())


def _entry(engine: Engine, customer_id: str, channel: str, person: str) -> SuppressionRow | None:
    query = select(SuppressionRow).where(
        col(SuppressionRow.customer_id) == customer_id,
        col(SuppressionRow.channel) == channel,
        col(SuppressionRow.person) == person,
    )
    with session(engine) as db:
        return db.exec(query).first()
