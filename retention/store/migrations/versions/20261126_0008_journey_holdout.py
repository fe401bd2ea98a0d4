"""journeys record the holdout and the strategy path

Revision ID: 0008
Revises: 0007
Created: 2026-11-26 15:00:58.208024
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel  # noqa: F401  (autogenerate names its column types)
from alembic import op

import retention.store.tables  # noqa: F401  (and the project's own, e.g. UTCDateTime)

revision: str = "0008"
down_revision: str | Sequence[str] | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("journeys", schema=None) as batch_op:
        batch_op.add_column(sa.Column("holdout", sa.Boolean(), nullable=True))
        batch_op.add_column(sa.Column("strategy_path", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("journeys", schema=None) as batch_op:
        batch_op.drop_column("strategy_path")
        batch_op.drop_column("holdout")
