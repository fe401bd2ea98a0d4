"""csm task dedupe, snooze and overdue alert: one open task per customer, action and reason

Tasks made before have no reason (""): the unique index leaves them out, so two open tasks an
older journey made for the same customer and action stay as they are.

Revision ID: 0013
Revises: 0012
Created: 2026-12-02 17:20:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel  # noqa: F401  (autogenerate names its column types)
from alembic import op

import retention.store.tables

revision: str = "0013"
down_revision: str | Sequence[str] | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_OPEN_WITH_REASON = "status = 'open' AND reason <> ''"


def upgrade() -> None:
    moment = retention.store.tables.UTCDateTime(timezone=True)
    with op.batch_alter_table("csm_tasks", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column(
                "reason", sqlmodel.sql.sqltypes.AutoString(), server_default="", nullable=False
            )
        )
        batch_op.add_column(sa.Column("requests", sa.Integer(), server_default="1", nullable=False))
        batch_op.add_column(sa.Column("updated_at", moment, nullable=True))
        batch_op.add_column(sa.Column("snoozed_until", moment, nullable=True))
        batch_op.add_column(
            sa.Column("snooze_reason", sqlmodel.sql.sqltypes.AutoString(), nullable=True)
        )
        batch_op.add_column(sa.Column("overdue_alerted_at", moment, nullable=True))
        batch_op.create_index(
            "ux_csm_tasks_open_ask",
            ["customer_id", "action", "reason"],
            unique=True,
            sqlite_where=sa.text(_OPEN_WITH_REASON),
            postgresql_where=sa.text(_OPEN_WITH_REASON),
        )


def downgrade() -> None:
    with op.batch_alter_table("csm_tasks", schema=None) as batch_op:
        batch_op.drop_index("ux_csm_tasks_open_ask")
        for column in (
            "overdue_alerted_at",
            "snooze_reason",
            "snoozed_until",
            "updated_at",
            "requests",
            "reason",
        ):
            batch_op.drop_column(column)
