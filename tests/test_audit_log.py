"""The audit log keeps who did what to which journey, when: the database refuses to delete or
rewrite an entry; only an erasure may replace the customer's identity with a pseudonym."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy import Engine, text
from sqlalchemy.exc import DatabaseError

from retention.store.db import session
from retention.store.schema import prepare_schema
from retention.store.tables import AuditRow

pytestmark = pytest.mark.database


def _entry(engine: Engine) -> int:
    with session(engine) as db:
        row = AuditRow(
            actor="operator", action="pause", journey_id="retention-c1", customer_id="c1"
        )
        db.add(row)
        db.flush()
        assert row.id is not None
        return row.id


def _run(engine: Engine, sql: str, **params: object) -> None:
    with engine.begin() as connection:
        connection.execute(text(sql), params)


@pytest.mark.parametrize(
    "sql",
    [
        "DELETE FROM audit_log WHERE id = :id",
        "UPDATE audit_log SET action = 'resume' WHERE id = :id",
        "UPDATE audit_log SET customer_id = 'c2' WHERE id = :id",
        "UPDATE audit_log SET customer_id = 'erased-x', actor = 'system' WHERE id = :id",
    ],
)
def test_an_entry_cannot_be_deleted_or_rewritten(engine: Engine, sql: str) -> None:
    entry = _entry(engine)

    with pytest.raises(DatabaseError, match="audit_log is append-only"):
        _run(engine, sql, id=entry)


def test_an_erasure_may_pseudonymise_the_customer_and_nothing_else(engine: Engine) -> None:
    entry = _entry(engine)

    _run(
        engine,
        "UPDATE audit_log SET customer_id = 'erased-1', journey_id = 'retention-erased-1' "
        "WHERE id = :id",
        id=entry,
    )

    with session(engine) as db:
        row = db.get(AuditRow, entry)
        assert row is not None
        assert (row.customer_id, row.journey_id, row.action) == (
            "erased-1",
            "retention-erased-1",
            "pause",
        )


def test_an_older_database_gains_the_guard_by_migration(bare_engine: Engine) -> None:
    from alembic import command

    from retention.store.schema import alembic_config

    with bare_engine.begin() as connection:
        command.upgrade(alembic_config(connection), "0001")
    prepare_schema(bare_engine)
    _run(
        bare_engine,
        "INSERT INTO audit_log (at, actor, action, detail) VALUES (:at, 'system', 'x', '{}')",
        at=datetime(2026, 1, 1, tzinfo=UTC),
    )

    with pytest.raises(DatabaseError, match="audit_log is append-only"):
        _run(bare_engine, "DELETE FROM audit_log")
