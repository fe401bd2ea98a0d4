"""Alembic's environment: the tables come from `retention.store.tables`; the connection is the
one `retention.store.schema` hands over, else the database in RETENTION_DATABASE_URL."""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine
from sqlmodel import SQLModel

from retention.runtime.settings import get_settings
from retention.store import tables  # noqa: F401  (registers the tables on SQLModel.metadata)


def _run(connection: object) -> None:
    # SQLite cannot ALTER most things in place: batch mode copies the table instead.
    context.configure(
        connection=connection,  # type: ignore[arg-type]
        target_metadata=SQLModel.metadata,
        render_as_batch=True,
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


given = context.config.attributes.get("connection")
if given is not None:
    _run(given)
else:
    with create_engine(get_settings().database_url).begin() as connection:
        _run(connection)
