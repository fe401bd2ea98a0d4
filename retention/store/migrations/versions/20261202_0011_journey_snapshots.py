"""journeys keep their customer snapshot once, by journey key

Revision ID: 0011
Revises: 0010
Created: 2026-12-02 05:15:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel  # noqa: F401  (autogenerate names its column types)
from alembic import op

import retention.store.tables  # noqa: F401  (and the project's own, e.g. UTCDateTime)

revision: str = "0011"
down_revision: str | Sequence[str] | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "journey_snapshots",
        sa.Column("journey_key", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("customer_id", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("snapshot", sa.JSON(), nullable=False),
        sa.Column("saved_at", retention.store.tables.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("journey_key"),
    )
    with op.batch_alter_table("journey_snapshots", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_journey_snapshots_customer_id"), ["customer_id"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("journey_snapshots", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_journey_snapshots_customer_id"))
    op.drop_table("journey_snapshots")
