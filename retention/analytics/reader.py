"""Read one period's rows, or one customer's timeline rows, from the database (the KPI and
timeline functions themselves need none)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Engine, func
from sqlalchemy.orm import defer
from sqlmodel import Session, SQLModel, col, select

from retention.analytics.period import Period, PeriodRecords, company
from retention.analytics.timeline import EntryKind, TimelineRecords
from retention.store.db import session
from retention.store.tables import (
    AuditRow,
    ChurnPredictionRow,
    CsmTaskRow,
    CustomerRow,
    DecisionRow,
    HealthScoreRow,
    InboxRow,
    InterventionRow,
    JourneyRow,
    OutboxRow,
)


def read_period(engine: Engine, period: Period, strategy_order: list[str]) -> PeriodRecords:
    """Every customer; everything else started or made before the period's end: early warning
    and response times look back before its start (the KPI functions pick what they need)."""
    with session(engine) as db:
        # the report reads accounts' figures, never their people: their column stays unread
        unread = defer(CustomerRow.contacts)  # type: ignore[arg-type]  # SQLModel's typing
        customers = db.exec(select(CustomerRow).options(unread)).all()
        journeys = db.exec(select(JourneyRow).where(JourneyRow.started_at < period.end)).all()
        predictions = db.exec(
            select(ChurnPredictionRow).where(ChurnPredictionRow.predicted_at < period.end)
        ).all()
        health = db.exec(
            select(HealthScoreRow).where(
                HealthScoreRow.scored_at >= period.start, HealthScoreRow.scored_at < period.end
            )
        ).all()
        interventions = db.exec(
            select(InterventionRow).where(InterventionRow.at < period.end)
        ).all()
    return PeriodRecords(
        period=period,
        customers=list(customers),
        journeys=list(journeys),
        predictions=list(predictions),
        health=list(health),
        interventions=list(interventions),
        strategy_order=strategy_order,
    )


def read_timeline(engine: Engine, customer_id: str, limit: int) -> TimelineRecords:
    """The newest `limit` rows of each kind and each kind's count: the timeline shows at most
    `limit` in all, so no kind needs more, however chatty the customer."""
    with session(engine) as db:
        customer = db.get(CustomerRow, customer_id)
        newest = _Newest(db, customer_id, limit)
        records = TimelineRecords(
            customer_id=customer_id,
            company=company(customer) if customer else None,
            known=customer is not None,
            predictions=newest.rows("score", ChurnPredictionRow, ChurnPredictionRow.predicted_at),
            journeys=newest.rows("journey", JourneyRow, JourneyRow.started_at),
            decisions=newest.rows("decision", DecisionRow, DecisionRow.decided_at),
            messages=newest.rows("message", OutboxRow, OutboxRow.created_at),
            tasks=newest.rows("task", CsmTaskRow, CsmTaskRow.created_at),
            events=newest.rows("event", InboxRow, InboxRow.received_at),
            audit=newest.rows("audit", AuditRow, AuditRow.at),
            recorded=newest.recorded,
        )
        # the health rows written with those predictions (an assessment writes both at once)
        moments = {p.predicted_at for p in records.predictions}
        records.health = list(
            db.exec(
                select(HealthScoreRow).where(
                    HealthScoreRow.customer_id == customer_id,
                    col(HealthScoreRow.scored_at).in_(moments),
                )
            ).all()
        )
    return records


class _Newest:
    """Reads one customer's newest rows of a table and counts them, per timeline kind."""

    def __init__(self, db: Session, customer_id: str, limit: int) -> None:
        self._db, self._customer_id, self._limit = db, customer_id, limit
        self.recorded: dict[EntryKind, int] = {}

    def rows(self, kind: EntryKind, table: type[SQLModel], at: Any) -> list[Any]:
        mine = table.customer_id == self._customer_id  # type: ignore[attr-defined]
        self.recorded[kind] = self._db.exec(
            select(func.count()).select_from(table).where(mine)
        ).one()
        query = select(table).where(mine).order_by(col(at).desc()).limit(self._limit)
        return list(self._db.exec(query).all())
