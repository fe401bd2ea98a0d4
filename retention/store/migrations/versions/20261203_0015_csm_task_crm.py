"""csm task crm: each CSM task's copy in the CRM (HubSpot or Salesforce) and the poll's mark

Tasks made before have no CRM state (crm_status NULL): the `crm-sync` schedule pushes the open
ones once a CRM is configured.

Revision ID: 0015
Revises: 0014
Created: 2026-12-03 08:00:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

import retention.store.tables

revision: str = "0015"
down_revision: str | Sequence[str] | None = "0014"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_TEXT_COLUMNS = (
    "crm_account_id",
    "crm_contact_id",
    "crm_provider",
    "crm_id",
    "crm_url",
    "crm_status",
)


def upgrade() -> None:
    moment = retention.store.tables.UTCDateTime(timezone=True)
    with op.batch_alter_table("csm_tasks", schema=None) as batch_op:
        for name in _TEXT_COLUMNS:
            batch_op.add_column(sa.Column(name, sqlmodel.sql.sqltypes.AutoString(), nullable=True))
        batch_op.add_column(
            sa.Column("crm_attempts", sa.Integer(), server_default="0", nullable=False)
        )
        batch_op.add_column(sa.Column("crm_error", sa.Text(), nullable=True))
        batch_op.add_column(sa.Column("crm_synced_at", moment, nullable=True))
        batch_op.add_column(sa.Column("crm_retry_at", moment, nullable=True))
        batch_op.create_index(batch_op.f("ix_csm_tasks_crm_id"), ["crm_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_csm_tasks_crm_status"), ["crm_status"], unique=False)
    op.create_table(
        "crm_marks",
        sa.Column("provider", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("mark", moment, nullable=False),
        sa.PrimaryKeyConstraint("provider"),
    )


def downgrade() -> None:
    op.drop_table("crm_marks")
    with op.batch_alter_table("csm_tasks", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_csm_tasks_crm_status"))
        batch_op.drop_index(batch_op.f("ix_csm_tasks_crm_id"))
        for name in ("crm_retry_at", "crm_synced_at", "crm_error", "crm_attempts"):
            batch_op.drop_column(name)
        for name in reversed(_TEXT_COLUMNS):
            batch_op.drop_column(name)
