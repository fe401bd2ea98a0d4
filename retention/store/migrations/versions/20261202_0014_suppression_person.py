"""suppression person: an entry may stop one person's address at an account, not the account

The unique key becomes (customer_id, channel, person); every entry before this one is the whole
account's (`person` '').

Revision ID: 0014
Revises: 0013
Created: 2026-12-02 17:10:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = "0014"
down_revision: str | Sequence[str] | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# SQLite reflects the baseline's unnamed unique key without a name: batch mode names it so.
_NAMES = {"uq": "uq_%(table_name)s_%(column_0_N_name)s"}


def _unique_key(columns: str) -> str:
    """The key's name as each database has it: PostgreSQL named it when it was created."""
    if op.get_bind().dialect.name == "postgresql":
        return f"suppressions_{columns}_key"
    return f"uq_suppressions_{columns}"


def upgrade() -> None:
    with op.batch_alter_table("suppressions", naming_convention=_NAMES) as batch_op:
        batch_op.add_column(
            sa.Column(
                "person", sqlmodel.sql.sqltypes.AutoString(), server_default="", nullable=False
            )
        )
        batch_op.drop_constraint(_unique_key("customer_id_channel"), type_="unique")
        batch_op.create_unique_constraint(
            _unique_key("customer_id_channel_person"), ["customer_id", "channel", "person"]
        )


def downgrade() -> None:
    op.execute(sa.text("DELETE FROM suppressions WHERE person <> ''"))
    with op.batch_alter_table("suppressions", naming_convention=_NAMES) as batch_op:
        batch_op.drop_constraint(_unique_key("customer_id_channel_person"), type_="unique")
        batch_op.create_unique_constraint(
            _unique_key("customer_id_channel"), ["customer_id", "channel"]
        )
        batch_op.drop_column("person")
