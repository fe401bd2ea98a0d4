"""assessment key: a retried assess activity records once

Revision ID: 0009
Revises: 0008
Created: 2026-11-26 17:39:13.080932
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel  # noqa: F401  (autogenerate names its column types)
from alembic import op

import retention.store.tables  # noqa: F401  (and the project's own, e.g. UTCDateTime)

revision: str = "0009"
down_revision: str | Sequence[str] | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("customer_health_scores", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("assessment_key", sqlmodel.sql.sqltypes.AutoString(), nullable=True)
        )
        batch_op.create_index(
            batch_op.f("ix_customer_health_scores_assessment_key"), ["assessment_key"], unique=True
        )


def downgrade() -> None:
    with op.batch_alter_table("customer_health_scores", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_customer_health_scores_assessment_key"))
        batch_op.drop_column("assessment_key")
