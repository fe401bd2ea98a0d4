"""customer contacts: a customer's contacts leave its snapshot for a column of their own

The portfolio scan reads every stored snapshot and no score reads the people: at 25 an account
they made the JSON it decodes five times larger (bench/RESULTS.md, contacts_scale). Each row's
`contacts` list moves from `snapshot` to `contacts`, in one UPDATE; a row whose snapshot holds
no list there keeps it as it is (`contacts` NULL: the snapshot is read whole). The downgrade puts
each list back into its snapshot.

Revision ID: 0020
Revises: 0019
Created: 2026-12-03 18:00:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0020"
down_revision: str | Sequence[str] | None = "0019"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Each database's JSON functions: PostgreSQL's `json` column goes through jsonb to drop a key
# (the key order of the document may change; nothing reads it by order).
_MOVE_OUT = {
    "postgresql": (
        "UPDATE customers SET contacts = snapshot -> 'contacts', "
        "snapshot = (snapshot::jsonb - 'contacts')::json "
        "WHERE json_typeof(snapshot -> 'contacts') = 'array'"
    ),
    "sqlite": (
        "UPDATE customers SET contacts = json_extract(snapshot, '$.contacts'), "
        "snapshot = json_remove(snapshot, '$.contacts') "
        "WHERE CASE WHEN json_valid(snapshot) "
        "THEN json_type(snapshot, '$.contacts') = 'array' ELSE 0 END"
    ),
}
_MOVE_BACK = {
    "postgresql": (
        "UPDATE customers SET "
        "snapshot = (snapshot::jsonb || jsonb_build_object('contacts', contacts::jsonb))::json "
        "WHERE json_typeof(contacts) = 'array'"
    ),
    "sqlite": (
        "UPDATE customers SET snapshot = json_set(snapshot, '$.contacts', json(contacts)) "
        "WHERE CASE WHEN json_valid(contacts) THEN json_type(contacts) = 'array' ELSE 0 END"
    ),
}


def upgrade() -> None:
    with op.batch_alter_table("customers") as batch_op:
        batch_op.add_column(sa.Column("contacts", sa.JSON(none_as_null=True), nullable=True))
    op.execute(_MOVE_OUT[op.get_bind().dialect.name])


def downgrade() -> None:
    op.execute(_MOVE_BACK[op.get_bind().dialect.name])
    with op.batch_alter_table("customers") as batch_op:
        batch_op.drop_column("contacts")
