"""SQLModel tables: the seed tables and the service's own (docs/architecture.md, "Design facts")."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any
from uuid import uuid4

from sqlalchemy import JSON, DateTime, Index, Text, TypeDecorator, UniqueConstraint, text
from sqlalchemy.engine import Dialect
from sqlmodel import Field, SQLModel

from retention.store.append_only import guard_on_create
from retention.suppression import WHOLE_ACCOUNT


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
    """A customer's newest snapshot. Its `contacts` are a column of their own: the portfolio
    scan reads every customer's snapshot and no score reads the people, who made the stored
    JSON five times larger at 25 an account (bench/RESULTS.md, contacts_scale). Read and write
    the whole snapshot through `customer_columns` and `whole_snapshot`."""

    __tablename__ = "customers"

    customer_id: str = Field(primary_key=True)
    snapshot: dict[str, Any] = Field(sa_type=JSON, description="the snapshot but its contacts")
    # SQL NULL, not JSON null, for None: a row whose snapshot still holds its own contacts
    # (written whole, as before migration 0020) reads as it is.
    contacts: list[dict[str, Any]] | None = Field(
        default=None, sa_type=JSON(none_as_null=True), description="the snapshot's `contacts`"
    )
    updated_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    # Labels for training from the database (docs/model.md, Training data); empty for most imports.
    snapshot_date: date | None = Field(default=None, description="None: updated_at's date")
    churn_date: date | None = Field(default=None, description="when the customer left, if known")


def customer_columns(document: dict[str, Any]) -> dict[str, Any]:
    """`snapshot` and `contacts` of a customers row for a whole snapshot document."""
    snapshot = {field: value for field, value in document.items() if field != "contacts"}
    return {"snapshot": snapshot, "contacts": document.get("contacts", [])}


def whole_snapshot(
    snapshot: dict[str, Any], contacts: list[dict[str, Any]] | None
) -> dict[str, Any]:
    """The whole snapshot document of a customers row's `snapshot` and `contacts`."""
    if contacts is None:
        return snapshot
    return {**snapshot, "contacts": contacts}


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
    # The assess activity that wrote this assessment's rows (workflow, run, activity id: the same
    # for each retry of it), so that a retry records nothing twice; none for a scan's rows.
    assessment_key: str | None = Field(default=None, unique=True, index=True)


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
    # The model's own top drivers, [{feature, contribution}] largest push first, and the bias
    # they sum with to the margin. Empty for rows written before they were recorded.
    drivers: list[dict[str, Any]] | None = Field(default=None, sa_type=JSON)
    driver_bias: float | None = None


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


class JourneySnapshotRow(SQLModel, table=True):
    """The customer snapshot a journey was started from, kept once so its activities name it by
    the journey key instead of carrying it in every input (docs/architecture.md)."""

    __tablename__ = "journey_snapshots"

    journey_key: str = Field(primary_key=True)
    customer_id: str = Field(index=True)
    snapshot: dict[str, Any] = Field(sa_type=JSON)
    saved_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class DecisionRow(SQLModel, table=True):
    """One decision of a journey's rule set: the strategy it chose, the one the journey had,
    the rules that fired and why it was asked (the account timeline shows them). A checkpoint
    decision that keeps the strategy is one too."""

    __tablename__ = "journey_decisions"

    id: int | None = Field(default=None, primary_key=True)
    customer_id: str = Field(index=True)
    journey_id: str = Field(index=True)
    journey_key: str | None = Field(default=None, description="None: asked before keys travelled")
    generation: int = Field(description="the plan generation the decision makes")
    from_strategy: str | None = Field(default=None, description="None: the first plan")
    to_strategy: str
    fired_rules: list[str] = Field(default_factory=list, sa_type=JSON)
    rules_version: str
    reason: str = Field(description="first_plan, checkpoint or escalation")
    decided_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    # The activity that decided (as `assessment_key`): a retry of it records nothing twice.
    decision_key: str | None = Field(default=None, unique=True)


class OutboxRow(SQLModel, table=True):
    __tablename__ = "outbox"
    # A person's frequency cap counts their messages on a channel, every journey's.
    __table_args__ = (Index("ix_outbox_recipient_channel", "recipient", "channel"),)

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
    note: str | None = Field(
        default=None, description="why it went to a fallback, or not out; the CSM task it updated"
    )
    journey_at: datetime | None = Field(
        default=None,
        sa_type=UTCDateTime,
        description="when the journey asked for it, on its workflow clock; frequency caps count it",
    )


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
    """A customer, or one person at it, who gets nothing on a channel, from any journey, until
    it is removed."""

    __tablename__ = "suppressions"
    __table_args__ = (UniqueConstraint("customer_id", "channel", "person"),)

    id: int | None = Field(default=None, primary_key=True)
    customer_id: str = Field(index=True)
    channel: str
    person: str = Field(
        default=WHOLE_ACCOUNT,
        sa_column_kwargs={"server_default": WHOLE_ACCOUNT},
        description="'' the whole account; else only this address (a contact's) is suppressed",
    )
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


guard_on_create(AuditRow.__table__)  # type: ignore[attr-defined]


class RuleSetRow(SQLModel, table=True):
    """Every rule-set version a worker loaded, as its files were: a journey planned under it
    renders its messages with its templates even after the files or the worker changed."""

    __tablename__ = "rule_sets"

    version: str = Field(primary_key=True)
    files: dict[str, str] = Field(sa_type=JSON, description="file name → text; templates/x.j2")
    loaded_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


def table_name(model: type[SQLModel]) -> str:
    return str(model.__tablename__)


class InboxRow(SQLModel, table=True):
    """One webhook the ingest service accepted, kept until it has reached a journey (or it is
    known that none takes it). A delivery of the same source event again finds its row."""

    __tablename__ = "inbox"
    __table_args__ = (
        UniqueConstraint("source", "source_event_id"),
        # a claim reads one customer's waiting rows, not every row the customer ever had
        Index("ix_inbox_customer_status", "customer_id", "status"),
        # a claim finds the due rows without reading those still inside their interval
        Index("ix_inbox_status_due", "status", "due_at"),
    )

    id: int | None = Field(default=None, primary_key=True)
    source: str
    source_event_id: str
    kind: str = Field(description="the source's own name for what happened")
    customer_id: str | None = Field(default=None, index=True)
    event: dict[str, Any] | None = Field(default=None, sa_type=JSON, description="customer_event")
    status: str = Field(
        index=True,
        description="pending → forwarding → forwarded, no_journey or failed; ignored; recorded",
    )
    event_type: str | None = Field(default=None, index=True, description="the event's type")
    delivery: str = Field(
        default="forward",
        sa_column_kwargs={"server_default": "forward"},
        description="forward, coalesce or record (sources.yaml `delivery`), fixed at receipt",
    )
    due_at: datetime | None = Field(
        default=None, index=True, sa_type=UTCDateTime, description="forwarded no sooner"
    )
    batch: str | None = Field(
        default=None, index=True, description="the signal this row goes out with, fixed at claim"
    )
    attempts: int = 0
    received_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    claimed_by: str | None = None
    claimed_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    forwarded_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    workflow_id: str | None = None
    started_journey: bool = False
    note: str | None = Field(default=None, sa_type=Text)


class ModelVersionRow(SQLModel, table=True):
    """One model-retrain decision: the challenger and the champion it was judged against, both
    cards, their figures on the same held-out customers, and whether the challenger was
    promoted. The newest promoted row names the model the workers score with."""

    __tablename__ = "model_versions"

    id: int | None = Field(default=None, primary_key=True)
    retrain_id: str = Field(unique=True, description="workflow id/run id: a retry adds no row")
    version: str = Field(index=True, description="the challenger's model version")
    path: str
    card: dict[str, Any] = Field(sa_type=JSON)
    figures: dict[str, Any] = Field(sa_type=JSON, description="the challenger's, held out")
    champion_version: str
    champion_path: str
    champion_card: dict[str, Any] | None = Field(default=None, sa_type=JSON)
    champion_figures: dict[str, Any] = Field(sa_type=JSON)
    holdout_rows: int
    decision: str = Field(index=True, description="promoted or kept")
    reason: str = Field(sa_type=Text)
    at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class ScanRunRow(SQLModel, table=True):
    """One portfolio scan (all runs of its continue-as-new chain): what it found and did."""

    __tablename__ = "scan_runs"

    id: str = Field(primary_key=True, description="the scan's first workflow run id")
    workflow_id: str
    started_at: datetime = Field(sa_type=UTCDateTime)
    finished_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    runs: int = Field(default=1, description="workflow runs: one more per continue-as-new")
    pages: int = 0
    scored: int = 0
    at_risk: int = 0
    started: int = 0
    skipped: int = Field(default=0, description="at risk, but a journey was already running")
    failed: int = 0
    failures: list[dict[str, str]] = Field(default_factory=list, sa_type=JSON)
    status: str = Field(description="running, completed or failed")


class ScanPageRow(SQLModel, table=True):
    """One page of a scan, written once with its scores: a retried page reads it back."""

    __tablename__ = "scan_pages"
    __table_args__ = (UniqueConstraint("scan_id", "page"),)

    id: int | None = Field(default=None, primary_key=True)
    scan_id: str = Field(index=True)
    page: int
    last_customer_id: str | None = None
    read: int = Field(default=0, description="customers read, scored or not")
    scored: int = 0
    at_risk_ids: list[str] = Field(default_factory=list, sa_type=JSON)
    failures: list[dict[str, str]] = Field(default_factory=list, sa_type=JSON)
    recorded_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


_OPEN_WITH_REASON = "status = 'open' AND reason <> ''"


class CsmTaskRow(SQLModel, table=True):
    """Work for a customer's CSM (an executive call, a check-in, a training, a success-plan
    review): made by an outbox message on a CSM channel, or updated by it when an open task for
    the same customer, action and reason exists; listed, snoozed and completed with
    `starter.py tasks`."""

    __tablename__ = "csm_tasks"
    __table_args__ = (
        # One open task per customer, action and reason, even when two journeys ask at once:
        # the loser of the race finds the winner's task and updates it (delivery/task_filing.py).
        # Tasks made before reasons were recorded (reason "") are left as they were.
        Index(
            "ux_csm_tasks_open_ask",
            "customer_id",
            "action",
            "reason",
            unique=True,
            sqlite_where=text(_OPEN_WITH_REASON),
            postgresql_where=text(_OPEN_WITH_REASON),
        ),
    )

    id: int | None = Field(default=None, primary_key=True)
    idempotency_key: str = Field(unique=True, description="the outbox message's key")
    outbox_id: str
    journey_key: str = Field(index=True)
    journey_id: str
    customer_id: str = Field(index=True)
    step_id: str
    action: str = Field(description="executive_call, csm_checkin, feature_training, ...")
    channel: str
    assigned_csm: str | None = Field(default=None, index=True, description="None: unassigned")
    summary: str = Field(description="the message's subject line")
    reason: str = Field(
        default="",
        sa_column_kwargs={"server_default": ""},
        description="the rule that asked for it (the step's source, e.g. strategy:critical_save)",
    )
    status: str = Field(default="open", index=True, description="open or done")
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    due_at: datetime = Field(sa_type=UTCDateTime)
    completed_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    completed_by: str | None = None
    note: str | None = Field(default=None, sa_type=Text)
    event_sent_at: datetime | None = Field(
        default=None, sa_type=UTCDateTime, description="when task_completed reached the journey"
    )
    requests: int = Field(
        default=1,
        sa_column_kwargs={"server_default": "1"},
        description="how many steps asked for it: 1 + the re-asks that updated it",
    )
    updated_at: datetime | None = Field(
        default=None, sa_type=UTCDateTime, description="when a re-ask last updated it"
    )
    snoozed_until: datetime | None = Field(
        default=None, sa_type=UTCDateTime, description="held until then; open again after"
    )
    snooze_reason: str | None = None
    overdue_alerted_at: datetime | None = Field(
        default=None, sa_type=UTCDateTime, description="when its overdue alert went out (once)"
    )
    # The task in the CRM the operator configured (docs/crm.md). Where it goes is taken from the
    # customer when the task is filed; crm_status None: not (yet) pushed to a CRM.
    crm_account_id: str | None = Field(
        default=None, description="the customer's HubSpot company or Salesforce Account id"
    )
    crm_contact_id: str | None = Field(
        default=None, description="the CRM contact of the person the task names, if any"
    )
    crm_provider: str | None = Field(default=None, description="hubspot or salesforce")
    crm_id: str | None = Field(default=None, index=True, description="the CRM's id of the task")
    crm_url: str | None = Field(default=None, description="the task in the CRM's web app")
    crm_status: str | None = Field(
        default=None, index=True, description="pending, synced or failed (final, see crm_error)"
    )
    crm_attempts: int = Field(default=0, sa_column_kwargs={"server_default": "0"})
    crm_error: str | None = Field(default=None, sa_type=Text, description="the CRM's refusal")
    crm_synced_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    crm_retry_at: datetime | None = Field(
        default=None, sa_type=UTCDateTime, description="a pending push waits until then"
    )


class CrmMarkRow(SQLModel, table=True):
    """How far a CRM's completed tasks have been read (the Salesforce poll's high-water mark)."""

    __tablename__ = "crm_marks"

    provider: str = Field(primary_key=True)
    mark: datetime = Field(sa_type=UTCDateTime, description="tasks modified since were read")
