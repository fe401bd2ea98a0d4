"""Engine and session: SQLite file by default (WAL, shared by worker and CLI), or PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event, make_url
from sqlmodel import Session

from retention.store.schema import prepare_schema


def make_engine(url: str, connect_args: dict[str, Any] | None = None) -> Engine:
    """An engine for `url`, its schema at the newest revision (retention.store.schema)."""
    args = dict(connect_args or {})
    sqlite = make_url(url).get_backend_name() == "sqlite"
    if sqlite:
        _make_parent_dir(url)
        args.setdefault("check_same_thread", False)
    engine = create_engine(url, connect_args=args)
    if sqlite:
        event.listen(engine, "connect", _sqlite_pragmas)
    prepare_schema(engine)
    return engine


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
