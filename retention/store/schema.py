"""The database schema this code expects: a new database is created at the newest revision; an
older one is upgraded by the Alembic migrations in `migrations/versions/`, rows kept."""

from __future__ import annotations

from functools import cache
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.util.exc import CommandError
from sqlalchemy import Connection, Engine, inspect
from sqlmodel import SQLModel

from retention.errors import RetentionError
from retention.store import tables  # noqa: F401  (registers the tables on SQLModel.metadata)
from retention.store.columns import add_missing_columns

MIGRATIONS = Path(__file__).resolve().parent / "migrations"


def alembic_config(connection: Connection | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    if connection is not None:
        config.attributes["connection"] = connection
    return config


@cache
def newest_revision() -> str:
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert head is not None, f"no migrations in {MIGRATIONS}"
    return head


def database_revision(connection: Connection) -> str | None:
    return MigrationContext.configure(connection).get_current_revision()


def prepare_schema(engine: Engine) -> None:
    """Bring the database to the newest revision (a no-op when it is there already)."""
    with engine.begin() as connection:
        current = database_revision(connection)
        if current == newest_revision():
            return
        config = alembic_config(connection)
        if current is None:
            _adopt(connection, config)
            return
        try:
            command.upgrade(config, "head")
        except CommandError as exc:
            raise RetentionError(
                f"database is at schema revision {current}, which this code does not know "
                f"(newest here: {newest_revision()}): was it upgraded by a newer version?"
            ) from exc


def _adopt(connection: Connection, config: Config) -> None:
    """A new database, or one made before migrations existed: those only ever gained tables and
    columns that may be empty, so creating what is missing brings it to the newest revision."""
    existing = set(inspect(connection).get_table_names())
    SQLModel.metadata.create_all(connection)
    if existing:
        add_missing_columns(connection)
    command.stamp(config, "head")
