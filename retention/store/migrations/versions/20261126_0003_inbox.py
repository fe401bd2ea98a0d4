"""add the inbox table: webhooks the ingest service accepted (retention/ingest/inbox.py)

Revision ID: 0003
Revises: 0002
Created: 2026-11-26 14:02:31.983555
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel  # noqa: F401  (autogenerate names its column types)
from alembic import op

import retention.store.tables  # noqa: F401  (and the project's own, e.g. UTCDateTime)

revision: str = "0003"
down_revision: str | Sequence[str] | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "inbox",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("source", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("source_event_id", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("kind", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("customer_id", sqlmodel.sql.sqltypes.AutoString(), nullable=True),
        sa.Column("event", sa.JSON(), nullable=True),
        sa.Column("status", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("received_at", retention.store.tables.UTCDateTime(timezone=True), nullable=False),
        sa.Column("claimed_by", sqlmodel.sql.sqltypes.AutoString(), nullable=True),
        sa.Column("claimed_at", retention.store.tables.UTCDateTime(timezone=True), nullable=True),
        sa.Column("forwarded_at", retention.store.tables.UTCDateTime(timezone=True), nullable=True),
        sa.Column("workflow_id", sqlmodel.sql.sqltypes.AutoString(), nullable=True),
        sa.Column("started_journey", sa.Boolean(), nullable=False),
        sa.Column("note", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("source", "source_event_id"),
    )
    with op.batch_alter_table("inbox", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_inbox_customer_id"), ["customer_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_inbox_status"), ["status"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("inbox", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_inbox_status"))
        batch_op.drop_index(batch_op.f("ix_inbox_customer_id"))

    op.drop_table("inbox")
