"""outbox journey_at: frequency caps count each person's messages on a channel, every journey's

`journey_at` is when the journey asked for the message, on its workflow clock (rows from before
are counted at `created_at`); the index finds a person's messages on a channel.

Revision ID: 0019
Revises: 0018
Created: 2026-12-03 10:00:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import retention.store.tables  # noqa: F401  (and the project's own, e.g. UTCDateTime)

revision: str = "0019"
down_revision: str | Sequence[str] | None = "0018"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("outbox") as batch_op:
        batch_op.add_column(
            sa.Column(
                "journey_at", retention.store.tables.UTCDateTime(timezone=True), nullable=True
            )
        )
    op.create_index("ix_outbox_recipient_channel", "outbox", ["recipient", "channel"])


def downgrade() -> None:
    op.drop_index("ix_outbox_recipient_channel", table_name="outbox")
    with op.batch_alter_table("outbox") as batch_op:
        batch_op.drop_column("journey_at")
