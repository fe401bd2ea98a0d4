"""Portfolio scans in the database: pages of customers to score, each page's record, each run."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Engine, func
from sqlalchemy.exc import IntegrityError
from sqlmodel import SQLModel, col, delete, select

from retention.store.db import session
from retention.store.statements import upsert
from retention.store.tables import CustomerRow, ScanPageRow, ScanRunRow


def customer_page(
    engine: Engine, after: str | None, limit: int, until: str | None = None
) -> list[tuple[str, Any]]:
    """Up to `limit` (customer id, raw snapshot) pairs after `after`, by id: keyset paging, so
    a page costs the same at customer 99,500 as at customer 0. With `until` (a planned page),
    every customer up to that id instead: one added since the plan is scored here, not lost
    between this page's range and the next one's. The snapshot comes without the customer's
    contacts (`CustomerRow.contacts`, not read here): no score reads them."""
    query = select(CustomerRow.customer_id, CustomerRow.snapshot)
    if after is not None:
        query = query.where(col(CustomerRow.customer_id) > after)
    if until is not None:
        query = query.where(col(CustomerRow.customer_id) <= until)
    query = query.order_by(col(CustomerRow.customer_id))
    if until is None:
        query = query.limit(limit)
    with session(engine) as db:
        return [(customer_id, snapshot) for customer_id, snapshot in db.exec(query).all()]


def page_ends(engine: Engine, after: str | None, page_size: int, pages: int) -> list[str]:
    """The last customer id of each of the next `pages` full pages after `after`: ids only, read
    from the primary key's index, so planning 16 pages costs less than scoring one."""
    query = select(CustomerRow.customer_id)
    if after is not None:
        query = query.where(col(CustomerRow.customer_id) > after)
    query = query.order_by(col(CustomerRow.customer_id)).limit(page_size * pages)
    with session(engine) as db:
        ids = list(db.exec(query).all())
    return ids[page_size - 1 :: page_size]


def recorded_page(engine: Engine, scan_id: str, page: int) -> ScanPageRow | None:
    query = select(ScanPageRow).where(ScanPageRow.scan_id == scan_id, ScanPageRow.page == page)
    with session(engine) as db:
        return db.exec(query).first()


def record_page(engine: Engine, page: ScanPageRow, scores: Sequence[SQLModel]) -> ScanPageRow:
    """The page's row and its score rows in one transaction, once: when the page is already
    recorded (a retried activity), nothing is written and the first record is returned."""
    if (earlier := recorded_page(engine, page.scan_id, page.page)) is not None:
        return earlier
    try:
        with session(engine) as db:
            db.add(page)
            db.add_all(scores)
    except IntegrityError:  # a racing attempt recorded it first
        if (earlier := recorded_page(engine, page.scan_id, page.page)) is None:
            raise
        return earlier
    return page


def save_scan_run(engine: Engine, values: dict[str, Any], ended: bool = False) -> None:
    """Insert or update the scan's row (keyed by its id) with the figures so far. Once the scan
    has `ended`, its pages go in the same transaction: they only served its retries, and they
    list customer ids by the thousand."""
    with session(engine) as db:
        upsert(db, ScanRunRow, values, key="id")
        if ended:
            db.exec(delete(ScanPageRow).where(col(ScanPageRow.scan_id) == values["id"]))  # type: ignore[call-overload]


def list_scan_runs(engine: Engine, limit: int = 20) -> list[ScanRunRow]:
    """The latest scans, newest first."""
    query = select(ScanRunRow).order_by(col(ScanRunRow.started_at).desc()).limit(limit)
    with session(engine) as db:
        return list(db.exec(query).all())


def count_customers(engine: Engine) -> int:
    with session(engine) as db:
        return int(db.exec(select(func.count()).select_from(CustomerRow)).one())
