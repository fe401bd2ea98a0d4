"""inbox due index: claims find due rows by (status, due_at), not by reading every waiting row

Rows written before revision 0010 have no due time (they were due at once): they are given
their receipt time, so a claim needs no `due_at IS NULL` case.

Revision ID: 0012
Revises: 0011
Created: 2026-12-02 05:05:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0012"
down_revision: str | Sequence[str] | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    inbox = sa.table("inbox", sa.column("due_at"), sa.column("received_at"))
    op.execute(inbox.update().where(inbox.c.due_at.is_(None)).values(due_at=inbox.c.received_at))
    with op.batch_alter_table("inbox", schema=None) as batch_op:
        batch_op.create_index("ix_inbox_status_due", ["status", "due_at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("inbox", schema=None) as batch_op:
        batch_op.drop_index("ix_inbox_status_due")
