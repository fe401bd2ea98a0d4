"""baseline: the schema as of the first migration

Revision ID: 0001
Revises:
Created: 2026-11-26 13:53:07.138249
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel  # noqa: F401  (autogenerate names its column types)
from alembic import op

import retention.store.tables  # noqa: F401  (and the project's own, e.g. UTCDateTime)

revision: str = "0001"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "audit_log",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("at", retention.store.tables.UTCDateTime(timezone=True), nullable=False),
        sa.Column("actor", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("action", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("journey_id", sqlmodel.sql.sqltypes.AutoString(), nullable=True),
        sa.Column("customer_id", sqlmodel.sql.sqltypes.AutoString(), nullable=True),
        sa.Column("detail", sa.JSON(), nullable=False),
        sa.Column("entry_key", sqlmodel.sql.sqltypes.AutoString(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("entry_key"),
    )
    with op.batch_alter_table("audit_log", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_audit_log_customer_id"), ["customer_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_audit_log_journey_id"), ["journey_id"], unique=False)

    op.create_table(
        "churn_predictions_v2",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("customer_id", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("journey_id", sqlmodel.sql.sqltypes.AutoString(), nullable=True),
        sa.Column("probability", sa.Float(), nullable=False),
        sa.Column("confidence", sa.Float(), nullable=False),
        sa.Column("time_to_churn_days", sa.Integer(), nullable=True),
        sa.Column("severity_value", sa.Float(), nullable=False),
        sa.Column("model_version", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("probability_source", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("risk_factors", sa.JSON(), nullable=False),
        sa.Column(
            "predicted_at", retention.store.tables.UTCDateTime(timezone=True), nullable=False
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("churn_predictions_v2", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_churn_predictions_v2_customer_id"), ["customer_id"], unique=False
        )

    op.create_table(
        "customer_health_scores",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("customer_id", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("journey_id", sqlmodel.sql.sqltypes.AutoString(), nullable=True),
        sa.Column("overall", sa.Float(), nullable=False),
        sa.Column("categories", sa.JSON(), nullable=False),
        sa.Column("trend", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("status", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("alerts", sa.JSON(), nullable=False),
        sa.Column("scored_at", retention.store.tables.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("customer_health_scores", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_customer_health_scores_customer_id"), ["customer_id"], unique=False
        )

    op.create_table(
        "customer_sentiment",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("customer_id", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("journey_id", sqlmodel.sql.sqltypes.AutoString(), nullable=True),
        sa.Column("source", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("score", sa.Float(), nullable=False),
        sa.Column("label", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("alerts", sa.JSON(), nullable=False),
        sa.Column("detected_at", retention.store.tables.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("customer_sentiment", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_customer_sentiment_customer_id"), ["customer_id"], unique=False
        )

    op.create_table(
        "customers",
        sa.Column("customer_id", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("snapshot", sa.JSON(), nullable=False),
        sa.Column("updated_at", retention.store.tables.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("customer_id"),
    )
    op.create_table(
        "delivery_attempts",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("idempotency_key", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("channel", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("provider", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("outcome", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("status_code", sa.Integer(), nullable=True),
        sa.Column("provider_message_id", sqlmodel.sql.sqltypes.AutoString(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("at", retention.store.tables.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("delivery_attempts", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_delivery_attempts_idempotency_key"), ["idempotency_key"], unique=False
        )

    op.create_table(
        "expansion_opportunities",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("customer_id", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("journey_id", sqlmodel.sql.sqltypes.AutoString(), nullable=True),
        sa.Column("kind", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("probability", sa.Float(), nullable=False),
        sa.Column("value", sa.Float(), nullable=False),
        sa.Column("timing", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("priority", sa.Integer(), nullable=False),
        sa.Column("detail", sa.JSON(), nullable=False),
        sa.Column("detected_at", retention.store.tables.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("expansion_opportunities", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_expansion_opportunities_customer_id"), ["customer_id"], unique=False
        )

    op.create_table(
        "journeys",
        sa.Column("journey_key", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("workflow_id", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("customer_id", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("strategy", sqlmodel.sql.sqltypes.AutoString(), nullable=True),
        sa.Column("risk_tier", sqlmodel.sql.sqltypes.AutoString(), nullable=True),
        sa.Column("severity_tier", sqlmodel.sql.sqltypes.AutoString(), nullable=True),
        sa.Column("stage", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("churn_probability", sa.Float(), nullable=True),
        sa.Column("health_score", sa.Float(), nullable=True),
        sa.Column("outcome", sqlmodel.sql.sqltypes.AutoString(), nullable=True),
        sa.Column("exit_reason", sqlmodel.sql.sqltypes.AutoString(), nullable=True),
        sa.Column("rules_version", sqlmodel.sql.sqltypes.AutoString(), nullable=True),
        sa.Column("model_version", sqlmodel.sql.sqltypes.AutoString(), nullable=True),
        sa.Column("started_at", retention.store.tables.UTCDateTime(timezone=True), nullable=False),
        sa.Column("finished_at", retention.store.tables.UTCDateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("journey_key"),
    )
    with op.batch_alter_table("journeys", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_journeys_customer_id"), ["customer_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_journeys_workflow_id"), ["workflow_id"], unique=False)

    op.create_table(
        "outbox",
        sa.Column("id", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("idempotency_key", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("journey_key", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("journey_id", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("step_id", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("customer_id", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("channel", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("fallback_used", sa.Boolean(), nullable=False),
        sa.Column("recipient", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("subject", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("status", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("mode", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("created_at", retention.store.tables.UTCDateTime(timezone=True), nullable=False),
        sa.Column("path", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("provider", sqlmodel.sql.sqltypes.AutoString(), nullable=True),
        sa.Column("provider_message_id", sqlmodel.sql.sqltypes.AutoString(), nullable=True),
        sa.Column("sent_at", retention.store.tables.UTCDateTime(timezone=True), nullable=True),
        sa.Column("note", sqlmodel.sql.sqltypes.AutoString(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("idempotency_key"),
    )
    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_outbox_customer_id"), ["customer_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_outbox_journey_key"), ["journey_key"], unique=False)

    op.create_table(
        "retention_interventions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("journey_key", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("customer_id", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("step_id", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("action", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("channel", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("owner", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("status", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("outbox_id", sqlmodel.sql.sqltypes.AutoString(), nullable=True),
        sa.Column("note", sqlmodel.sql.sqltypes.AutoString(), nullable=True),
        sa.Column("at", retention.store.tables.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("journey_key", "step_id"),
    )
    with op.batch_alter_table("retention_interventions", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_retention_interventions_customer_id"), ["customer_id"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_retention_interventions_journey_key"), ["journey_key"], unique=False
        )

    op.create_table(
        "rule_sets",
        sa.Column("version", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("files", sa.JSON(), nullable=False),
        sa.Column("loaded_at", retention.store.tables.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("version"),
    )
    op.create_table(
        "suppressions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("customer_id", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("channel", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("address", sqlmodel.sql.sqltypes.AutoString(), nullable=True),
        sa.Column("reason", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("source", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("at", retention.store.tables.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("customer_id", "channel"),
    )
    with op.batch_alter_table("suppressions", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_suppressions_address"), ["address"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_suppressions_customer_id"), ["customer_id"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("suppressions", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_suppressions_customer_id"))
        batch_op.drop_index(batch_op.f("ix_suppressions_address"))

    op.drop_table("suppressions")
    op.drop_table("rule_sets")
    with op.batch_alter_table("retention_interventions", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_retention_interventions_journey_key"))
        batch_op.drop_index(batch_op.f("ix_retention_interventions_customer_id"))

    op.drop_table("retention_interventions")
    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_outbox_journey_key"))
        batch_op.drop_index(batch_op.f("ix_outbox_customer_id"))

    op.drop_table("outbox")
    with op.batch_alter_table("journeys", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_journeys_workflow_id"))
        batch_op.drop_index(batch_op.f("ix_journeys_customer_id"))

    op.drop_table("journeys")
    with op.batch_alter_table("expansion_opportunities", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_expansion_opportunities_customer_id"))

    op.drop_table("expansion_opportunities")
    with op.batch_alter_table("delivery_attempts", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_delivery_attempts_idempotency_key"))

    op.drop_table("delivery_attempts")
    op.drop_table("customers")
    with op.batch_alter_table("customer_sentiment", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_customer_sentiment_customer_id"))

    op.drop_table("customer_sentiment")
    with op.batch_alter_table("customer_health_scores", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_customer_health_scores_customer_id"))

    op.drop_table("customer_health_scores")
    with op.batch_alter_table("churn_predictions_v2", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_churn_predictions_v2_customer_id"))

    op.drop_table("churn_predictions_v2")
    with op.batch_alter_table("audit_log", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_audit_log_journey_id"))
        batch_op.drop_index(batch_op.f("ix_audit_log_customer_id"))

    op.drop_table("audit_log")
