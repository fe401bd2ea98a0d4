"""Engine and session: SQLite file by default (WAL, shared by worker and CLI), or PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Column, Engine, create_engine, event, inspect, make_url, text
from sqlmodel import Session, SQLModel

from retention.errors import RetentionError
from retention.store import tables  # noqa: F401  (registers the tables on SQLModel.metadata)


def make_engine(url: str, connect_args: dict[str, Any] | None = None) -> Engine:
    """An engine for `url` with every table created."""
    args = dict(connect_args or {})
    sqlite = make_url(url).get_backend_name() == "sqlite"
    if sqlite:
        _make_parent_dir(url)
        args.setdefault("check_same_thread", False)
    engine = create_engine(url, connect_args=args)
    if sqlite:
        event.listen(engine, "connect", _sqlite_pragmas)
    SQLModel.metadata.create_all(engine)
    add_missing_columns(engine)
    return engine


def add_missing_columns(engine: Engine) -> list[str]:
    """Bring a database made by an earlier version up to date where that is safe: a column the
    tables have gained since, if it may be empty, is added (rows keep their data). Anything
    else needs a real migration and is refused by name. Returns the columns added."""
    known = inspect(engine)
    added = []
    with engine.begin() as connection:
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
                connection.execute(text(_add_column(engine, table.name, column)))
                added.append(f"{table.name}.{column.name}")
    return added


def _add_column(engine: Engine, table: str, column: Column[object]) -> str:
    quote = engine.dialect.identifier_preparer.quote
    kind = column.type.compile(dialect=engine.dialect)
    return f"ALTER TABLE {quote(table)} ADD COLUMN {quote(column.name)} {kind}"


@contextmanager
def session(engine: Engine) -> Iterator[Session]:
    """One transaction: committed when the block ends, rolled back if it raises."""
    with Session(engine, expire_on_commit=False) as db:
        try:
            yield db
            db.commit()
        except BaseException:
            db.rollback()
            raise


def _make_parent_dir(url: str) -> None:
    database = make_url(url).database
    if database and database != ":memory:" and not database.startswith("file:"):
        Path(database).parent.mkdir(parents=True, exist_ok=True)


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.close()
