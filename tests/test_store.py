"""The store: tables, upserts and repository functions, on SQLite and PostgreSQL."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from alembic import command
from factories import make_customer, outbox_row
from sqlalchemy import Engine, func, inspect, text
from sqlmodel import select
from temporalio.testing import ActivityEnvironment

from activities.assess import AssessActivities, AssessInput
from activities.decide import DecideActivities
from activities.rescore import RescoreActivities, RescoreInput
from retention.errors import CustomerNotFound, RetentionError
from retention.journey_state import JourneyState
from retention.risk_factor import RiskFactor
from retention.rulebook.source import RulebookSource
from retention.runtime.settings import ROOT
from retention.scoring.assessment import Assessment
from retention.scoring.expansion import ExpansionOpportunity
from retention.scoring.health import HealthScore
from retention.scoring.risk import ChurnPrediction, ModelDriver
from retention.scoring.sentiment import SentimentAlert, SentimentReading
from retention.store.columns import add_missing_columns
from retention.store.db import session
from retention.store.records import (
    list_outbox,
    load_customer,
    record_assessment,
    record_journey,
    save_customer,
)
from retention.store.schema import alembic_config, prepare_schema
from retention.store.tables import (
    AuditRow,
    ChurnPredictionRow,
    DecisionRow,
    ExpansionOpportunityRow,
    HealthScoreRow,
    JourneyRow,
    OutboxRow,
    SentimentRow,
)

pytestmark = pytest.mark.database

AT = datetime(2025, 3, 1, 9, 30, tzinfo=UTC)


def count(engine: Engine, table: type) -> int:
    with session(engine) as db:
        return db.exec(select(func.count()).select_from(table)).one()


def test_customer_round_trip_and_upsert(engine: Engine) -> None:
    customer = make_customer()
    save_customer(engine, customer)
    assert load_customer(engine, customer.customer_id) == customer

    changed = make_customer(usage={"days_since_last_login": 20})
    save_customer(engine, changed)
    assert load_customer(engine, customer.customer_id) == changed


def test_unknown_customer_is_named(engine: Engine) -> None:
    with pytest.raises(CustomerNotFound, match="nobody-42"):
        load_customer(engine, "nobody-42")


def test_record_assessment_writes_every_row(engine: Engine) -> None:
    health = HealthScore(
        overall=41.5,
        categories={"product_usage": 30.0, "engagement": 50.0},
        trend="declining",
        status="at_risk",
        alerts=["usage dropped"],
        scored_at=AT,
    )
    prediction = ChurnPrediction(
        probability=0.72,
        confidence=0.8,
        time_to_churn_days=45,
        risk_factors=[RiskFactor(name="inactive", severity="high", impact=0.3, detail="20 days")],
        severity_value=17_280.0,
        model_version="d6cdb0fdb364",
        drivers=[
            ModelDriver(feature="days_since_last_active", contribution=0.81),
            ModelDriver(feature="nps", contribution=0.12),
        ],
        driver_bias=-1.5,
    )
    sentiment = SentimentReading(
        overall=-0.2,
        recent=-0.6,
        change=-0.5,
        trend="declining",
        alerts=[SentimentAlert(name="negative_shift", severity="high", action="a", detail="d")],
        interactions_scored=6,
        source="interactions",
    )
    expansion = [
        ExpansionOpportunity(
            type=kind,
            trigger="t",
            estimated_value=value,
            probability=0.5,
            timing="immediate",
            expected_value=value / 2,
        )
        for kind, value in (("storage_expansion", 900.0), ("api_expansion", 400.0))
    ]
    customer = make_customer(profile={"customer_id": "cust-001"})
    assessment = Assessment(
        customer=customer,
        health=health,
        prediction=prediction,
        sentiment=sentiment,
        expansion=expansion,
    )
    record_assessment(engine, "retention-cust-001", assessment)

    with session(engine) as db:
        health_row = db.exec(select(HealthScoreRow)).one()
        prediction_row = db.exec(select(ChurnPredictionRow)).one()
        sentiment_row = db.exec(select(SentimentRow)).one()
        expansion_rows = db.exec(select(ExpansionOpportunityRow)).all()
    assert (sentiment_row.score, sentiment_row.label) == (-0.6, "declining")
    assert sentiment_row.alerts[0]["name"] == "negative_shift"
    assert [(r.kind, r.priority) for r in sorted(expansion_rows, key=lambda r: r.priority)] == [
        ("storage_expansion", 1),
        ("api_expansion", 2),
    ]
    assert health_row.customer_id == "cust-001"
    assert health_row.categories == {"product_usage": 30.0, "engagement": 50.0}
    assert health_row.scored_at == AT
    assert prediction_row.journey_id == "retention-cust-001"
    assert prediction_row.probability == 0.72
    assert prediction_row.risk_factors[0]["name"] == "inactive"
    assert prediction_row.model_version == "d6cdb0fdb364"
    assert prediction_row.drivers == [
        {"feature": "days_since_last_active", "contribution": 0.81},
        {"feature": "nps", "contribution": 0.12},
    ]
    assert prediction_row.driver_bias == -1.5


def test_record_journey_upserts_one_row(engine: Engine) -> None:
    state = JourneyState(
        customer_id="cust-001", journey_key="retention-cust-001:run-1", started_at=AT
    )
    record_journey(engine, "retention-cust-001", state)

    state.stage = "closed"
    state.outcome = "saved"
    state.exit_reason = "renewed"
    state.finished_at = AT + timedelta(days=9)
    record_journey(engine, "retention-cust-001", state)

    with session(engine) as db:
        row = db.exec(select(JourneyRow)).one()
    assert (row.stage, row.outcome, row.exit_reason) == ("closed", "saved", "renewed")
    assert row.started_at == AT
    assert row.finished_at == AT + timedelta(days=9)


def test_late_record_does_not_clear_the_outcome(engine: Engine) -> None:
    state = JourneyState(customer_id="cust-001", journey_key="j-1", started_at=AT)
    ended = state.model_copy(update={"stage": "closed", "outcome": "churned", "finished_at": AT})
    record_journey(engine, "retention-cust-001", ended)
    record_journey(engine, "retention-cust-001", state)

    with session(engine) as db:
        row = db.exec(select(JourneyRow)).one()
    assert (row.outcome, row.finished_at) == ("churned", AT)


def test_a_retried_journey_record_adds_one_audit_entry(engine: Engine) -> None:
    state = JourneyState(customer_id="cust-001", journey_key="j-2", started_at=AT)

    def started() -> AuditRow:
        return AuditRow(actor="system", action="journey_started", entry_key="j-2:journey_started")

    record_journey(engine, "retention-cust-001", state, started())
    record_journey(engine, "retention-cust-001", state, started())  # the activity retried

    with session(engine) as db:
        rows = db.exec(select(AuditRow)).all()
        journeys = db.exec(select(JourneyRow)).all()
    assert [(r.action, r.entry_key) for r in rows] == [("journey_started", "j-2:journey_started")]
    assert len(journeys) == 1


def test_audit_rows(engine: Engine) -> None:
    state = JourneyState(customer_id="cust-001", journey_key="j-3", started_at=AT)
    record_journey(
        engine,
        "retention-cust-001",
        state,
        AuditRow(actor="operator:ana", action="pause", journey_id="retention-cust-001"),
    )
    record_journey(
        engine,
        "retention-cust-001",
        state,
        AuditRow(actor="system", action="customer_saved", customer_id="cust-001", detail={"n": 1}),
    )

    with session(engine) as db:
        rows = db.exec(select(AuditRow).order_by(AuditRow.id)).all()
    assert [(r.actor, r.action) for r in rows] == [
        ("operator:ana", "pause"),
        ("system", "customer_saved"),
    ]
    assert rows[0].detail == {} and rows[1].detail == {"n": 1}
    assert rows[0].at.tzinfo is not None


def test_list_outbox_filters_and_sorts(engine: Engine) -> None:
    def row(key: str, journey_key: str, minutes: int) -> OutboxRow:
        at = AT + timedelta(minutes=minutes)
        return outbox_row(key, journey_key, idempotency_key=key, created_at=at)

    with session(engine) as db:
        db.add_all([row("b", "j1", 2), row("a", "j1", 1), row("c", "j2", 0)])

    assert [r.idempotency_key for r in list_outbox(engine)] == ["c", "a", "b"]
    assert [r.idempotency_key for r in list_outbox(engine, "j1")] == ["a", "b"]
    assert count(engine, OutboxRow) == 3


@pytest.mark.database
def test_a_database_from_an_earlier_version_gains_the_new_empty_columns(engine: Engine) -> None:
    with engine.begin() as connection:
        connection.execute(text("ALTER TABLE outbox DROP COLUMN provider_message_id"))
        connection.execute(text("ALTER TABLE outbox DROP COLUMN sent_at"))

    with engine.begin() as connection:
        assert add_missing_columns(connection) == [
            "outbox.provider_message_id",
            "outbox.sent_at",
        ]
        assert add_missing_columns(connection) == []  # once is enough
    columns = {c["name"] for c in inspect(engine).get_columns("outbox")}
    assert {"provider_message_id", "sent_at"} <= columns


@pytest.mark.database
def test_a_missing_column_that_cannot_be_empty_is_refused_by_name(engine: Engine) -> None:
    with engine.begin() as connection:
        # as in a database older than the column (and so than the index on it)
        connection.execute(text("DROP INDEX IF EXISTS ix_outbox_recipient_channel"))
        connection.execute(text("ALTER TABLE outbox DROP COLUMN recipient"))

    with (
        engine.begin() as connection,
        pytest.raises(RetentionError, match="lacks column recipient"),
    ):
        add_missing_columns(connection)


@pytest.mark.database
def test_an_earlier_prediction_table_gains_the_drivers_and_keeps_its_rows(
    bare_engine: Engine,
) -> None:
    with bare_engine.begin() as connection:
        command.upgrade(alembic_config(connection), "0005")  # before the drivers were kept
        connection.execute(
            text(
                "INSERT INTO churn_predictions_v2 (customer_id, probability, confidence, "
                "severity_value, model_version, probability_source, risk_factors, predicted_at) "
                "VALUES ('cust-001', 0.4, 0.5, 10.0, 'baseline-0', 'model', '[]', :at)"
            ),
            {"at": AT},
        )

    prepare_schema(bare_engine)

    columns = {c["name"] for c in inspect(bare_engine).get_columns("churn_predictions_v2")}
    assert {"drivers", "driver_bias"} <= columns
    with session(bare_engine) as db:
        row = db.exec(select(ChurnPredictionRow)).one()
    assert (row.customer_id, row.drivers, row.driver_bias) == ("cust-001", None, None)


@pytest.mark.database
def test_a_retried_assess_activity_records_its_assessment_once(engine: Engine) -> None:
    save_customer(engine, make_customer(profile={"customer_id": "cust-retry"}))
    assess = AssessActivities(engine, RulebookSource(ROOT / "rules")).assess
    request = AssessInput(journey_id="retention-cust-retry", customer_id="cust-retry")
    first_try = ActivityEnvironment()
    first_try.info = replace(
        first_try.info, workflow_id="retention-cust-retry", workflow_run_id="run-1", activity_id="1"
    )
    retry = ActivityEnvironment()
    retry.info = replace(first_try.info, attempt=2)
    next_assessment = ActivityEnvironment()
    next_assessment.info = replace(first_try.info, activity_id="7")

    for environment in (first_try, retry, next_assessment):
        environment.run(assess, request)

    with session(engine) as db:
        for table in (HealthScoreRow, ChurnPredictionRow, SentimentRow):
            rows = db.exec(select(func.count()).select_from(table)).one()
            assert rows == 2, f"{table.__tablename__}: the retry recorded again"
        keys = db.exec(select(HealthScoreRow.assessment_key)).all()
    assert sorted(keys) == ["retention-cust-retry/run-1/1", "retention-cust-retry/run-1/7"]


@pytest.mark.database
def test_a_retried_rescore_records_its_assessment_and_decision_once(engine: Engine) -> None:
    save_customer(engine, make_customer(profile={"customer_id": "cust-rescore"}))
    rulebooks = RulebookSource(ROOT / "rules")
    rescore = RescoreActivities(
        AssessActivities(engine, rulebooks), DecideActivities(rulebooks, engine)
    ).assess_and_decide
    journey = "retention-cust-rescore"
    request = RescoreInput(assess=AssessInput(journey_id=journey, customer_id="cust-rescore"))
    first_try = ActivityEnvironment()
    first_try.info = replace(
        first_try.info, workflow_id=journey, workflow_run_id="run-1", activity_id="1"
    )
    retry = ActivityEnvironment()
    retry.info = replace(first_try.info, attempt=2)

    decided = [environment.run(rescore, request).decision for environment in (first_try, retry)]

    assert decided[0].strategy == decided[1].strategy
    with session(engine) as db:
        for table in (HealthScoreRow, ChurnPredictionRow, DecisionRow):
            rows = db.exec(select(func.count()).select_from(table)).one()
            assert rows == 1, f"{table.__tablename__}: the retry recorded again"
        decision = db.exec(select(DecisionRow)).one()
    assert (decision.journey_id, decision.decision_key) == (journey, f"{journey}/run-1/1")
    assert decision.to_strategy == decided[0].strategy
