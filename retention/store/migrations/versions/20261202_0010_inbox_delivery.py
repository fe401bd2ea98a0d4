"""inbox delivery: each row's event type, delivery mode, due time and signal batch; an index
on (customer_id, status) for claims

Rows written before this revision are `forward` rows, due at once, their batch chosen when they
are next claimed (docs/ingestion.md).

Revision ID: 0010
Revises: 0009
Created: 2026-12-02 01:10:28.176088
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel  # noqa: F401  (autogenerate names its column types)
from alembic import op

import retention.store.tables  # noqa: F401  (and the project's own, e.g. UTCDateTime)

revision: str = "0010"
down_revision: str | Sequence[str] | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_TEXT = sqlmodel.sql.sqltypes.AutoString


def upgrade() -> None:
    with op.batch_alter_table("inbox", schema=None) as batch_op:
        batch_op.add_column(sa.Column("event_type", _TEXT(), nullable=True))
        batch_op.add_column(
            sa.Column("delivery", _TEXT(), server_default="forward", nullable=False)
        )
        batch_op.add_column(
            sa.Column("due_at", retention.store.tables.UTCDateTime(timezone=True), nullable=True)
        )
        batch_op.add_column(sa.Column("batch", _TEXT(), nullable=True))
        batch_op.create_index(batch_op.f("ix_inbox_batch"), ["batch"], unique=False)
        batch_op.create_index(batch_op.f("ix_inbox_due_at"), ["due_at"], unique=False)
        batch_op.create_index(batch_op.f("ix_inbox_event_type"), ["event_type"], unique=False)
        batch_op.create_index("ix_inbox_customer_status", ["customer_id", "status"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("inbox", schema=None) as batch_op:
        batch_op.drop_index("ix_inbox_customer_status")
        batch_op.drop_index(batch_op.f("ix_inbox_event_type"))
        batch_op.drop_index(batch_op.f("ix_inbox_due_at"))
        batch_op.drop_index(batch_op.f("ix_inbox_batch"))
        batch_op.drop_column("batch")
        batch_op.drop_column("due_at")
        batch_op.drop_column("delivery")
        batch_op.drop_column("event_type")
