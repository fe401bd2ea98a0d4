"""The schema's history: Alembic migrations build what the tables describe, upgrade an older
database without losing a row, and a table change without its migration fails here."""

from __future__ import annotations

import json
from typing import Any

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from factories import make_customer, person
from sqlalchemy import Engine, inspect, text
from sqlmodel import SQLModel

from retention.errors import RetentionError
from retention.ingest import inbox
from retention.ingest.claims import claim
from retention.store.records import load_customer, save_customer
from retention.store.scans import customer_page
from retention.store.schema import (
    alembic_config,
    database_revision,
    newest_revision,
    prepare_schema,
)

pytestmark = pytest.mark.database


def _migrate(engine: Engine, to: str = "head") -> None:
    with engine.begin() as connection:
        command.upgrade(alembic_config(connection), to)


def test_the_migrations_build_exactly_the_schema_the_tables_describe(bare_engine: Engine) -> None:
    _migrate(bare_engine)

    with bare_engine.connect() as connection:
        differences = compare_metadata(MigrationContext.configure(connection), SQLModel.metadata)
    assert differences == [], (
        "retention/store/tables.py and the migrations disagree: add a migration "
        f"(docs/development.md, Database): {differences}"
    )


def test_a_new_database_is_created_at_the_newest_revision(bare_engine: Engine) -> None:
    prepare_schema(bare_engine)

    with bare_engine.connect() as connection:
        assert database_revision(connection) == newest_revision()
    assert {t.name for t in SQLModel.metadata.sorted_tables} <= set(
        inspect(bare_engine).get_table_names()
    )


@pytest.mark.parametrize("run", [1, 2])  # the second run finds no row the first one saved
def test_a_test_database_starts_empty_at_the_newest_revision(engine: Engine, run: int) -> None:
    """The `engine` fixture copies one template per process (tests/conftest.py): each copy
    must be what `make_engine` makes of a new database, with no rows of an earlier test."""
    with engine.connect() as connection:
        assert database_revision(connection) == newest_revision()
        for table in SQLModel.metadata.sorted_tables:
            assert connection.execute(text(f"SELECT COUNT(*) FROM {table.name}")).scalar() == 0
    assert {t.name for t in SQLModel.metadata.sorted_tables} <= set(
        inspect(engine).get_table_names()
    )
    save_customer(engine, make_customer(profile={"customer_id": f"cust-{run}"}))


def test_an_older_database_is_upgraded_and_keeps_its_rows(bare_engine: Engine) -> None:
    _migrate(bare_engine, "0001")  # the baseline's tables only, a customer in them as it wrote
    customer = make_customer(profile={"customer_id": "cust-old"})
    with bare_engine.begin() as connection:
        connection.execute(
            text("INSERT INTO customers (customer_id, snapshot, updated_at) VALUES (:i, :s, :u)"),
            {"i": "cust-old", "s": customer.model_dump_json(), "u": "2026-01-01 00:00:00"},
        )

    prepare_schema(bare_engine)

    with bare_engine.connect() as connection:
        assert database_revision(connection) == newest_revision()
    assert load_customer(bare_engine, "cust-old").customer_id == "cust-old"
    assert {t.name for t in SQLModel.metadata.sorted_tables} <= set(
        inspect(bare_engine).get_table_names()
    )


def test_a_database_made_before_migrations_existed_is_adopted(bare_engine: Engine) -> None:
    SQLModel.metadata.create_all(bare_engine)  # what make_engine did before Alembic
    with bare_engine.begin() as connection:
        connection.execute(text("ALTER TABLE outbox DROP COLUMN sent_at"))

    prepare_schema(bare_engine)

    with bare_engine.connect() as connection:
        assert database_revision(connection) == newest_revision()
    assert "sent_at" in {c["name"] for c in inspect(bare_engine).get_columns("outbox")}


def test_a_database_from_a_newer_version_is_refused_by_revision(bare_engine: Engine) -> None:
    prepare_schema(bare_engine)
    with bare_engine.begin() as connection:
        connection.execute(text("UPDATE alembic_version SET version_num = 'from-the-future'"))

    with pytest.raises(RetentionError, match="revision from-the-future, which this code"):
        prepare_schema(bare_engine)


def test_preparing_an_up_to_date_database_again_keeps_its_rows(engine: Engine) -> None:
    save_customer(engine, make_customer(profile={"customer_id": "cust-1"}))

    prepare_schema(engine)

    assert load_customer(engine, "cust-1").customer_id == "cust-1"
    with engine.connect() as connection:
        assert database_revision(connection) == newest_revision()


def test_an_inbox_row_from_before_due_times_is_due_at_its_receipt(bare_engine: Engine) -> None:
    _migrate(bare_engine, "0003")  # the inbox, before rows had a due time
    with bare_engine.begin() as connection:
        connection.execute(
            text(
                "INSERT INTO inbox (source, source_event_id, kind, customer_id, event, status,"
                " attempts, received_at, started_journey)"
                " VALUES ('generic', 'e-1', 'login', 'acme', :event, 'pending', 0, :at, false)"
            ),
            {"event": '{"type": "login"}', "at": "2026-01-01 00:00:00"},
        )

    prepare_schema(bare_engine)

    (taken,) = claim(bare_engine, "f1", customers=8)
    row = inbox.get(bare_engine, taken.ids[0])
    assert row is not None and row.due_at == row.received_at


def _stored_snapshots(engine: Engine) -> dict[str, dict[str, Any]]:
    """Each customer's `snapshot` column as stored (PostgreSQL's driver decodes JSON itself)."""
    with engine.connect() as connection:
        rows = connection.execute(text("SELECT customer_id, snapshot FROM customers")).all()
    return {i: s if isinstance(s, dict) else json.loads(s) for i, s in rows}


def test_contacts_leave_the_snapshot_for_their_column_and_come_back(bare_engine: Engine) -> None:
    _migrate(bare_engine, "0019")  # snapshots held their contacts
    people = [person("ana", "champion"), person("bo", "admin", active=False)]
    customer = make_customer(profile={"customer_id": "cust-people"}, contacts=people)
    alone = make_customer(profile={"customer_id": "cust-alone"})
    with bare_engine.begin() as connection:
        for snapshot in (customer, alone):
            connection.execute(
                text(
                    "INSERT INTO customers (customer_id, snapshot, updated_at) VALUES (:i, :s, :u)"
                ),
                {"i": snapshot.customer_id, "s": snapshot.model_dump_json(), "u": "2026-01-01"},
            )

    prepare_schema(bare_engine)

    assert load_customer(bare_engine, "cust-people") == customer
    assert [c.contact_id for c in load_customer(bare_engine, "cust-people").contacts] == [
        "ana",
        "bo",
    ]
    assert load_customer(bare_engine, "cust-alone") == alone
    assert all("contacts" not in stored for stored in _stored_snapshots(bare_engine).values())
    assert all("contacts" not in snapshot for _, snapshot in customer_page(bare_engine, None, 9))

    _migrate_down(bare_engine, "0019")

    stored = _stored_snapshots(bare_engine)
    assert stored["cust-people"]["contacts"] == customer.model_dump(mode="json")["contacts"]
    assert stored["cust-alone"]["contacts"] == []
    assert "contacts" not in {c["name"] for c in inspect(bare_engine).get_columns("customers")}


def _migrate_down(engine: Engine, to: str) -> None:
    with engine.begin() as connection:
        command.downgrade(alembic_config(connection), to)
