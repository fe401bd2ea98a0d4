"""audit_log append-only: triggers refuse deleting or rewriting an entry

Revision ID: 0002
Revises: 0001
Created: 2026-11-26 14:10:00
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

from retention.store.append_only import make_append_only

revision: str = "0002"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    make_append_only(op.get_bind())


def downgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name == "postgresql":
        op.execute("DROP TRIGGER IF EXISTS audit_log_append_only ON audit_log")
        op.execute("DROP FUNCTION IF EXISTS audit_log_append_only()")
    else:
        op.execute("DROP TRIGGER IF EXISTS audit_log_no_delete")
        op.execute("DROP TRIGGER IF EXISTS audit_log_no_rewrite")
