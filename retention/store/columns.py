"""Databases made before the migrations existed: the columns they lack, added empty."""

from __future__ import annotations

from sqlalchemy import Column, Connection, inspect, text
from sqlmodel import SQLModel

from retention.errors import RetentionError


def add_missing_columns(connection: Connection) -> list[str]:
    """Bring a database made by an earlier version up to date where that is safe: a column the
    tables have gained since, if it may be empty, is added (rows keep their data). Anything
    else needs a real migration and is refused by name. Returns the columns added."""
    known = inspect(connection)
    added = []
    for table in SQLModel.metadata.sorted_tables:
        present = {c["name"] for c in known.get_columns(table.name)}
        for column in table.columns:
            if column.name in present:
                continue
            if not column.nullable:
                raise RetentionError(
                    f"database table {table.name} lacks column {column.name}, which cannot "
                    "be added empty; upgrade it with a migration or start a new database"
                )
            connection.execute(text(_add_column(connection, table.name, column)))
            added.append(f"{table.name}.{column.name}")
    return added


def _add_column(connection: Connection, table: str, column: Column[object]) -> str:
    quote = connection.dialect.identifier_preparer.quote
    kind = column.type.compile(dialect=connection.dialect)
    return f"ALTER TABLE {quote(table)} ADD COLUMN {quote(column.name)} {kind}"
