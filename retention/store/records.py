"""Repository functions: each runs in its own transaction and writes all of its rows or none."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Engine, bindparam
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, SQLModel, col, select

from retention.customer import CustomerSnapshot, parse_customer
from retention.errors import CustomerNotFound
from retention.journey_state import JourneyRecord, JourneyState
from retention.scoring.assessment import Assessment
from retention.store.db import session
from retention.store.statements import insert_new, insert_rows, upsert
from retention.store.tables import (
    AuditRow,
    ChurnPredictionRow,
    CustomerRow,
    DecisionRow,
    ExpansionOpportunityRow,
    HealthScoreRow,
    JourneyRow,
    JourneySnapshotRow,
    OutboxRow,
    SentimentRow,
    customer_columns,
    utcnow,
    whole_snapshot,
)

# Customers a statement saves: 6,000 bind parameters, under SQLite's limit of 32,766.
_ROWS_A_STATEMENT = 1_000

# Once a journey has ended, a late or retried record of an earlier state must not clear these.
_KEPT_WHEN_NONE = frozenset({"outcome", "exit_reason", "finished_at"})


def save_customer(engine: Engine, snapshot: CustomerSnapshot) -> None:
    save_customers(engine, [snapshot])


def save_customers(engine: Engine, snapshots: Sequence[CustomerSnapshot]) -> None:
    """Save (insert or replace) the snapshots in one transaction; a customer given twice is
    saved as given last."""
    now = utcnow()
    rows = {
        snapshot.customer_id: {
            "customer_id": snapshot.customer_id,
            **customer_columns(snapshot.model_dump(mode="json")),
            "updated_at": now,
            "snapshot_date": None,  # a new snapshot describes today (labels: model/history.py)
        }
        for snapshot in snapshots
    }
    values = list(rows.values())
    with session(engine) as db:
        for start in range(0, len(values), _ROWS_A_STATEMENT):
            upsert(db, CustomerRow, values[start : start + _ROWS_A_STATEMENT], key="customer_id")


def load_customer(engine: Engine, customer_id: str) -> CustomerSnapshot:
    with session(engine) as db:
        row = db.get(CustomerRow, customer_id)
    if row is None:
        raise CustomerNotFound(f"customer {customer_id!r} is not in the database")
    return _customer(row)


def _customer(row: CustomerRow) -> CustomerSnapshot:
    document = whole_snapshot(row.snapshot, row.contacts)
    return parse_customer(document, source=f"customers[{row.customer_id}]")


def keep_journey_snapshot(engine: Engine, journey_key: str, snapshot: CustomerSnapshot) -> None:
    """Keep the snapshot a journey scores from, so its later activities name it by key."""
    with session(engine) as db:
        _keep_snapshot(db, journey_key, snapshot)


def _keep_snapshot(db: Session, journey_key: str, snapshot: CustomerSnapshot) -> None:
    values = {
        "journey_key": journey_key,
        "customer_id": snapshot.customer_id,
        "snapshot": snapshot.model_dump(mode="json"),
        "saved_at": utcnow(),
    }
    upsert(db, JourneySnapshotRow, values, key="journey_key")


def journey_snapshot(engine: Engine, journey_key: str) -> CustomerSnapshot | None:
    """The snapshot kept for the journey; None when none was kept, or it was erased."""
    with session(engine) as db:
        snapshot = db.exec(_KEPT_SNAPSHOT, params={"key": journey_key}).first()
    if snapshot is None:
        return None
    return parse_customer(snapshot, source=f"journey_snapshots[{journey_key}]")


# built once: every deliver activity reads it
_KEPT_SNAPSHOT = select(JourneySnapshotRow.snapshot).where(
    col(JourneySnapshotRow.journey_key) == bindparam("key")
)


def customer_as_known(engine: Engine, customer_id: str) -> CustomerSnapshot | None:
    """The customer as last seen here: the snapshot their newest journey kept, else the one in
    the customers table; None when neither is (erased, or never stored)."""
    newest = (
        select(JourneySnapshotRow)
        .where(col(JourneySnapshotRow.customer_id) == customer_id)
        .order_by(col(JourneySnapshotRow.saved_at).desc())
    )
    with session(engine) as db:
        row = db.exec(newest).first()
    if row is not None:
        return parse_customer(row.snapshot, source=f"journey_snapshots[{row.journey_key}]")
    try:
        return load_customer(engine, customer_id)
    except CustomerNotFound:
        return None


def list_customers(engine: Engine) -> list[CustomerSnapshot]:
    """Every customer in the database, by id."""
    with session(engine) as db:
        rows = db.exec(select(CustomerRow).order_by(col(CustomerRow.customer_id))).all()
    return [_customer(row) for row in rows]


def record_assessment(
    engine: Engine,
    journey_id: str | None,
    assessment: Assessment,
    key: str | None = None,
    keep: tuple[str, CustomerSnapshot] | None = None,
    decision: DecisionRow | None = None,
) -> bool:
    """The health, prediction, sentiment and expansion rows of one assessment, in one
    transaction. `key` names the assessment (the assess activity's: a retry has the same):
    an assessment recorded under it already is not recorded again. False when it was.
    `keep`: a journey key and the snapshot it scored from, and `decision`: the decision made
    from the assessment (under its own key), both written in the same transaction (one write
    per assessment: SQLite lets one writer in at a time)."""
    try:
        with session(engine) as db:
            recorded = key is not None and _assessment_recorded(db, key)
            if not recorded:
                insert_rows(db, assessment_rows(journey_id, assessment, key))
            if keep is not None:
                _keep_snapshot(db, *keep)
            if decision is not None:
                insert_new(db, decision, "decision_key")
    except IntegrityError:
        with session(engine) as db:
            if key is not None and _assessment_recorded(db, key):
                return False  # a concurrent attempt of the same activity recorded it first
        raise
    return not recorded


def _assessment_recorded(db: Session, key: str) -> bool:
    return db.exec(_RECORDED_UNDER, params={"key": key}).first() is not None


_RECORDED_UNDER = select(HealthScoreRow.id).where(
    col(HealthScoreRow.assessment_key) == bindparam("key")
)


def assessment_rows(
    journey_id: str | None, assessment: Assessment, key: str | None = None
) -> list[SQLModel]:
    """The rows `record_assessment` writes, for a caller that writes many in one transaction."""
    health, prediction = assessment.health, assessment.prediction
    customer_id, at = assessment.customer.customer_id, health.scored_at
    rows: list[SQLModel] = [
        HealthScoreRow(
            customer_id=customer_id,
            journey_id=journey_id,
            overall=health.overall,
            categories={name: score for name, score in health.categories.items()},
            trend=health.trend,
            status=health.status,
            alerts=list(health.alerts),
            scored_at=at,
            assessment_key=key,
        ),
        ChurnPredictionRow(
            customer_id=customer_id,
            journey_id=journey_id,
            probability=prediction.probability,
            confidence=prediction.confidence,
            time_to_churn_days=prediction.time_to_churn_days,
            severity_value=prediction.severity_value,
            model_version=prediction.model_version,
            probability_source=prediction.probability_source,
            risk_factors=[factor.model_dump(mode="json") for factor in prediction.risk_factors],
            predicted_at=at,
            drivers=[driver.model_dump(mode="json") for driver in prediction.drivers],
            driver_bias=prediction.driver_bias,
        ),
    ]
    if (sentiment := assessment.sentiment) is not None:
        rows.append(
            SentimentRow(
                customer_id=customer_id,
                journey_id=journey_id,
                source=sentiment.source,
                score=sentiment.recent,
                label=sentiment.trend,
                alerts=[alert.model_dump(mode="json") for alert in sentiment.alerts],
                detected_at=at,
            )
        )
    rows += [
        ExpansionOpportunityRow(
            customer_id=customer_id,
            journey_id=journey_id,
            kind=opportunity.type,
            probability=opportunity.probability,
            value=opportunity.estimated_value,
            timing=opportunity.timing,
            priority=rank,
            detail={"trigger": opportunity.trigger, "expected_value": opportunity.expected_value},
            detected_at=at,
        )
        for rank, opportunity in enumerate(assessment.expansion, start=1)
    ]
    return rows


def record_journey(
    engine: Engine,
    workflow_id: str,
    journey: JourneyRecord | JourneyState,
    audit: AuditRow | None = None,
) -> None:
    """Upsert the journey's row (keyed by its journey key) and, in the same transaction, its
    audit entry; an entry whose `entry_key` is already there (a retried write) is not added twice.
    """
    record = journey.as_record() if isinstance(journey, JourneyState) else journey
    values: dict[str, Any] = {"workflow_id": workflow_id, **record.model_dump()}
    kept = {name for name in _KEPT_WHEN_NONE if values[name] is None}
    with session(engine) as db:
        upsert(db, JourneyRow, values, key="journey_key", keep=kept)
        if audit is not None:
            insert_new(db, audit, "entry_key")


def list_outbox(engine: Engine, journey_key: str | None = None) -> list[OutboxRow]:
    query = select(OutboxRow).order_by(col(OutboxRow.created_at), col(OutboxRow.id))
    if journey_key is not None:
        query = query.where(OutboxRow.journey_key == journey_key)
    with session(engine) as db:
        return list(db.exec(query).all())


def latest_drivers(engine: Engine, journey_id: str) -> list[dict[str, Any]]:
    """The model drivers of the journey's newest churn prediction; [] when none was recorded."""
    query = (
        select(ChurnPredictionRow.drivers)
        .where(col(ChurnPredictionRow.journey_id) == journey_id)
        .order_by(col(ChurnPredictionRow.predicted_at).desc(), col(ChurnPredictionRow.id).desc())
    )
    with session(engine) as db:
        return list(db.exec(query).first() or [])
