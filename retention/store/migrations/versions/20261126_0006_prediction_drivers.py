"""churn_predictions_v2 keeps the top drivers and their bias (nullable: older rows have none)

Revision ID: 0006
Revises: 0005
Created: 2026-11-26 14:40:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | Sequence[str] | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("churn_predictions_v2", schema=None) as batch_op:
        batch_op.add_column(sa.Column("drivers", sa.JSON(), nullable=True))
        batch_op.add_column(sa.Column("driver_bias", sa.Float(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("churn_predictions_v2", schema=None) as batch_op:
        batch_op.drop_column("driver_bias")
        batch_op.drop_column("drivers")
