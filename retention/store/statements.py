"""Writes on the tables, not through the ORM's unit of work: each statement is built once per
table and shape and executed with the rows' values. A journey's activities write a handful of
rows each; the ORM's flush and building each statement again cost more than the writes
themselves (bench/RESULTS.md, bench/journey_throughput.py)."""

from __future__ import annotations

from collections.abc import Sequence
from functools import cache
from typing import Any

from sqlalchemy import Insert, Table, insert
from sqlalchemy.dialects import postgresql, sqlite
from sqlmodel import Session, SQLModel

from retention.errors import RetentionError

Values = dict[str, Any]


def insert_rows(db: Session, rows: Sequence[SQLModel]) -> None:
    """INSERT the rows as they are (defaults applied when they were made), in their order; one
    execution per table and shape. An autoincrement id the row has not got yet is left to the
    database, and the row is not given it."""
    batches: dict[tuple[type[SQLModel], tuple[str, ...]], list[Values]] = {}
    for row in rows:
        values = _values(row)
        batches.setdefault((type(row), tuple(values)), []).append(values)
    for (model, _columns), batch in batches.items():
        db.execute(_insert_statement(model), batch)


def insert_new(db: Session, row: SQLModel, *unique: str) -> bool:
    """INSERT the row unless one with the same values of the `unique` columns (a unique
    constraint's) is there; False when one was. A NULL in them never matches."""
    values = _values(row)
    dialect = db.get_bind().dialect.name
    statement = _insert_new_statement(type(row), dialect, unique)
    return bool(db.execute(statement, values).rowcount)  # type: ignore[attr-defined]


def upsert(
    db: Session,
    model: type[SQLModel],
    values: Values | list[Values],
    *,
    key: str,
    keep: set[str] | frozenset[str] = frozenset(),
) -> None:
    """INSERT ... ON CONFLICT (key) DO UPDATE every column except `key` and `keep`; a list of
    rows (each `key` once, the same columns in each) is one execution of the statement."""
    rows = values if isinstance(values, list) else [values]
    dialect = db.get_bind().dialect.name
    statement = _upsert_statement(model, dialect, tuple(rows[0]), key, frozenset(keep))
    db.execute(statement, rows)


def _values(row: SQLModel) -> Values:
    values = {name: getattr(row, name) for name in _column_names(type(row))}
    for name in _generated_keys(type(row)):
        if values[name] is None:
            del values[name]
    return values


@cache
def _column_names(model: type[SQLModel]) -> tuple[str, ...]:
    return tuple(column.key for column in _table(model).columns)


@cache
def _generated_keys(model: type[SQLModel]) -> tuple[str, ...]:
    """Primary-key columns the database numbers when a row comes without one."""
    table = _table(model)
    return tuple(c.key for c in table.primary_key.columns if c is table.autoincrement_column)


@cache
def _insert_statement(model: type[SQLModel]) -> Insert:
    return insert(_table(model))  # the values' names choose the columns (compiled once each)


@cache
def _insert_new_statement(
    model: type[SQLModel], dialect: str, unique: tuple[str, ...]
) -> postgresql.Insert | sqlite.Insert:
    return _dialect_insert(model, dialect).on_conflict_do_nothing(index_elements=list(unique))


@cache
def _upsert_statement(
    model: type[SQLModel], dialect: str, columns: tuple[str, ...], key: str, keep: frozenset[str]
) -> postgresql.Insert | sqlite.Insert:
    statement = _dialect_insert(model, dialect)
    updates = {
        name: statement.excluded[name] for name in columns if name != key and name not in keep
    }
    return statement.on_conflict_do_update(index_elements=[key], set_=updates)


def _dialect_insert(model: type[SQLModel], dialect: str) -> postgresql.Insert | sqlite.Insert:
    match dialect:
        case "postgresql":
            return postgresql.insert(_table(model))
        case "sqlite":
            return sqlite.insert(_table(model))
        case other:
            raise RetentionError(
                f"database dialect {other!r} is not supported (SQLite, PostgreSQL)"
            )


def _table(model: type[SQLModel]) -> Table:
    return model.__table__  # type: ignore[attr-defined,no-any-return]
