"""model retraining: the model_versions table (retrain decisions), customers.snapshot_date and
customers.churn_date (labels for training from the database; empty for existing rows)

Revision ID: 0004
Revises: 0003
Created: 2026-11-26 14:12:00.628741
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel  # noqa: F401  (autogenerate names its column types)
from alembic import op

import retention.store.tables  # noqa: F401  (and the project's own, e.g. UTCDateTime)

revision: str = "0004"
down_revision: str | Sequence[str] | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "model_versions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("retrain_id", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("version", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("path", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("card", sa.JSON(), nullable=False),
        sa.Column("figures", sa.JSON(), nullable=False),
        sa.Column("champion_version", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("champion_path", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("champion_card", sa.JSON(), nullable=True),
        sa.Column("champion_figures", sa.JSON(), nullable=False),
        sa.Column("holdout_rows", sa.Integer(), nullable=False),
        sa.Column("decision", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("at", retention.store.tables.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("retrain_id"),
    )
    with op.batch_alter_table("model_versions", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_model_versions_decision"), ["decision"], unique=False)
        batch_op.create_index(batch_op.f("ix_model_versions_version"), ["version"], unique=False)

    with op.batch_alter_table("customers", schema=None) as batch_op:
        batch_op.add_column(sa.Column("snapshot_date", sa.Date(), nullable=True))
        batch_op.add_column(sa.Column("churn_date", sa.Date(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("customers", schema=None) as batch_op:
        batch_op.drop_column("churn_date")
        batch_op.drop_column("snapshot_date")

    with op.batch_alter_table("model_versions", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_model_versions_version"))
        batch_op.drop_index(batch_op.f("ix_model_versions_decision"))

    op.drop_table("model_versions")
