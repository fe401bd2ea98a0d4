"""SQLModel tables: the seed table names of DESIGN §5 plus customers, journeys, outbox, audit."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from uuid import uuid4

from sqlalchemy import JSON, DateTime, Text, TypeDecorator, UniqueConstraint
from sqlalchemy.engine import Dialect
from sqlmodel import Field, SQLModel


def utcnow() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware datetimes stored as UTC; naive input is taken as UTC.

    SQLite keeps no offset, so values are normalised on the way in and tagged on the way out.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class CustomerRow(SQLModel, table=True):
    __tablename__ = "customers"

    customer_id: str = Field(primary_key=True)
    snapshot: dict[str, Any] = Field(sa_type=JSON)
    updated_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class HealthScoreRow(SQLModel, table=True):
    __tablename__ = "customer_health_scores"

    id: int | None = Field(default=None, primary_key=True)
    customer_id: str = Field(index=True)
    journey_id: str | None = None
    overall: float
    categories: dict[str, float] = Field(sa_type=JSON)
    trend: str
    status: str
    alerts: list[str] = Field(default_factory=list, sa_type=JSON)
    scored_at: datetime = Field(sa_type=UTCDateTime)


class ChurnPredictionRow(SQLModel, table=True):
    __tablename__ = "churn_predictions_v2"

    id: int | None = Field(default=None, primary_key=True)
    customer_id: str = Field(index=True)
    journey_id: str | None = None
    probability: float
    confidence: float
    time_to_churn_days: int | None = None
    severity_value: float
    model_version: str
    probability_source: str
    risk_factors: list[dict[str, Any]] = Field(default_factory=list, sa_type=JSON)
    predicted_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class InterventionRow(SQLModel, table=True):
    __tablename__ = "retention_interventions"
    __table_args__ = (UniqueConstraint("journey_key", "step_id"),)

    id: int | None = Field(default=None, primary_key=True)
    journey_key: str = Field(index=True)
    customer_id: str = Field(index=True)
    step_id: str
    action: str
    channel: str
    owner: str
    status: str
    outbox_id: str | None = None
    note: str | None = Field(default=None, description="why a fallback or nothing was sent")
    at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class ExpansionOpportunityRow(SQLModel, table=True):
    __tablename__ = "expansion_opportunities"

    id: int | None = Field(default=None, primary_key=True)
    customer_id: str = Field(index=True)
    journey_id: str | None = None
    kind: str = Field(description="user_expansion, storage_expansion, api_expansion, ...")
    probability: float
    value: float = 0.0
    timing: str = ""
    priority: int = 0
    detail: dict[str, Any] = Field(default_factory=dict, sa_type=JSON)
    detected_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class SentimentRow(SQLModel, table=True):
    __tablename__ = "customer_sentiment"

    id: int | None = Field(default=None, primary_key=True)
    customer_id: str = Field(index=True)
    journey_id: str | None = None
    source: str = Field(description="where the text came from, e.g. ticket_message, nps_response")
    score: float = Field(description="compound sentiment, -1 to 1")
    label: str
    alerts: list[dict[str, Any]] = Field(default_factory=list, sa_type=JSON)
    detected_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class JourneyRow(SQLModel, table=True):
    __tablename__ = "journeys"

    journey_key: str = Field(primary_key=True)
    workflow_id: str = Field(index=True)
    customer_id: str = Field(index=True)
    strategy: str | None = None
    risk_tier: str | None = None
    severity_tier: str | None = None
    stage: str
    churn_probability: float | None = None
    health_score: float | None = None
    outcome: str | None = None
    exit_reason: str | None = None
    rules_version: str | None = None
    model_version: str | None = None
    started_at: datetime = Field(sa_type=UTCDateTime)
    finished_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    holdout: bool | None = Field(
        default=None, description="held out: recorded, sent nothing (None: recorded before)"
    )
    strategy_path: list[str] | None = Field(
        default=None, sa_type=JSON, description="every strategy it ran, in order (escalations)"
    )


class OutboxRow(SQLModel, table=True):
    __tablename__ = "outbox"

    id: str = Field(default_factory=lambda: str(uuid4()), primary_key=True)
    idempotency_key: str = Field(unique=True)
    journey_key: str = Field(index=True)
    journey_id: str
    step_id: str
    customer_id: str = Field(index=True)
    channel: str
    fallback_used: bool = False
    recipient: str
    subject: str
    body: str = Field(sa_type=Text)
    status: str = Field(
        description="captured, held_out, suppressed; live: sending → sent, or refused"
    )
    mode: str
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    path: str
    provider: str | None = Field(default=None, description="sendgrid, twilio; None when captured")
    provider_message_id: str | None = None
    sent_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    note: str | None = Field(default=None, description="why it went to a fallback, or not out")


class DeliveryAttemptRow(SQLModel, table=True):
    """One call to a provider and its answer; a message sent after two 429s has three rows."""

    __tablename__ = "delivery_attempts"

    id: int | None = Field(default=None, primary_key=True)
    idempotency_key: str = Field(index=True)
    channel: str
    provider: str
    outcome: str = Field(description="delivered, retryable, invalid_recipient or rejected")
    status_code: int | None = Field(default=None, description="None: no HTTP answer")
    provider_message_id: str | None = None
    error: str | None = Field(default=None, sa_type=Text)
    at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class SuppressionRow(SQLModel, table=True):
    """A customer who gets nothing on a channel, from any journey, until it is removed."""

    __tablename__ = "suppressions"
    __table_args__ = (UniqueConstraint("customer_id", "channel"),)

    id: int | None = Field(default=None, primary_key=True)
    customer_id: str = Field(index=True)
    channel: str
    address: str | None = Field(default=None, index=True, description="also matched by itself")
    reason: str
    source: str = Field(description="e.g. event via retention-cust-001, cli")
    at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class AuditRow(SQLModel, table=True):
    __tablename__ = "audit_log"

    id: int | None = Field(default=None, primary_key=True)
    at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    actor: str
    action: str
    journey_id: str | None = Field(default=None, index=True)
    customer_id: str | None = Field(default=None, index=True)
    detail: dict[str, Any] = Field(default_factory=dict, sa_type=JSON)
    entry_key: str | None = Field(
        default=None, unique=True, description="set by retried writers so a retry adds no row"
    )


class RuleSetRow(SQLModel, table=True):
    """Every rule-set version a worker loaded, as its files were: a journey planned under it
    renders its messages with its templates even after the files or the worker changed."""

    __tablename__ = "rule_sets"

    version: str = Field(primary_key=True)
    files: dict[str, str] = Field(sa_type=JSON, description="file name → text; templates/x.j2")
    loaded_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
