"""Read one period's rows from the database (the KPI functions themselves need none)."""

from __future__ import annotations

from sqlalchemy import Engine
from sqlmodel import select

from retention.analytics.period import Period, PeriodRecords
from retention.store.db import session
from retention.store.tables import (
    ChurnPredictionRow,
    CustomerRow,
    HealthScoreRow,
    InterventionRow,
    JourneyRow,
)


def read_period(engine: Engine, period: Period, strategy_order: list[str]) -> PeriodRecords:
    """Every customer; everything else started or made before the period's end: early warning
    and response times look back before its start (the KPI functions pick what they need)."""
    with session(engine) as db:
        customers = db.exec(select(CustomerRow)).all()
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
