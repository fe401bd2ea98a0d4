"""add the csm_tasks table: work for the CSM from journeys

Revision ID: 0007
Revises: 0006
Created: 2026-11-26 14:23:19.881552
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel  # noqa: F401  (autogenerate names its column types)
from alembic import op

import retention.store.tables  # noqa: F401  (and the project's own, e.g. UTCDateTime)

revision: str = "0007"
down_revision: str | Sequence[str] | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "csm_tasks",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("idempotency_key", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("outbox_id", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("journey_key", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("journey_id", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("customer_id", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("step_id", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("action", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("channel", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("assigned_csm", sqlmodel.sql.sqltypes.AutoString(), nullable=True),
        sa.Column("summary", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("status", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("created_at", retention.store.tables.UTCDateTime(timezone=True), nullable=False),
        sa.Column("due_at", retention.store.tables.UTCDateTime(timezone=True), nullable=False),
        sa.Column("completed_at", retention.store.tables.UTCDateTime(timezone=True), nullable=True),
        sa.Column("completed_by", sqlmodel.sql.sqltypes.AutoString(), nullable=True),
        sa.Column("note", sa.Text(), nullable=True),
        sa.Column(
            "event_sent_at", retention.store.tables.UTCDateTime(timezone=True), nullable=True
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("idempotency_key"),
    )
    with op.batch_alter_table("csm_tasks", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_csm_tasks_assigned_csm"), ["assigned_csm"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_csm_tasks_customer_id"), ["customer_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_csm_tasks_journey_key"), ["journey_key"], unique=False)
        batch_op.create_index(batch_op.f("ix_csm_tasks_status"), ["status"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("csm_tasks", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_csm_tasks_status"))
        batch_op.drop_index(batch_op.f("ix_csm_tasks_journey_key"))
        batch_op.drop_index(batch_op.f("ix_csm_tasks_customer_id"))
        batch_op.drop_index(batch_op.f("ix_csm_tasks_assigned_csm"))

    op.drop_table("csm_tasks")
