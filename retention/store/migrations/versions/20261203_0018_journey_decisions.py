"""journey decisions: every decision of a journey's rule set, for the account timeline

Journeys decided before this revision have none: their strategy changes stay in their history.

Revision ID: 0018
Revises: 0015
Created: 2026-12-03 08:30:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel  # noqa: F401  (autogenerate names its column types)
from alembic import op

import retention.store.tables  # noqa: F401  (and the project's own, e.g. UTCDateTime)

revision: str = "0018"
down_revision: str | Sequence[str] | None = "0015"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "journey_decisions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("customer_id", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("journey_id", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("journey_key", sqlmodel.sql.sqltypes.AutoString(), nullable=True),
        sa.Column("generation", sa.Integer(), nullable=False),
        sa.Column("from_strategy", sqlmodel.sql.sqltypes.AutoString(), nullable=True),
        sa.Column("to_strategy", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("fired_rules", sa.JSON(), nullable=False),
        sa.Column("rules_version", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("reason", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("decided_at", retention.store.tables.UTCDateTime(timezone=True), nullable=False),
        sa.Column("decision_key", sqlmodel.sql.sqltypes.AutoString(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("decision_key"),
    )
    with op.batch_alter_table("journey_decisions", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_journey_decisions_customer_id"), ["customer_id"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_journey_decisions_journey_id"), ["journey_id"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("journey_decisions", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_journey_decisions_journey_id"))
        batch_op.drop_index(batch_op.f("ix_journey_decisions_customer_id"))
    op.drop_table("journey_decisions")
