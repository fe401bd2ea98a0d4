"""Rows as the journeys write them, built in memory, for the analytics tests: a few by hand,
or a whole generated portfolio with a known treatment effect."""

from __future__ import annotations

import random
from datetime import UTC, date, datetime, timedelta
from typing import Any

from factories import customer_data

from retention.analytics.figures import tier_of
from retention.analytics.period import Period, PeriodRecords
from retention.rulebook.loader import load_rulebook
from retention.runtime.settings import ROOT
from retention.store.tables import (
    ChurnPredictionRow,
    CustomerRow,
    HealthScoreRow,
    InterventionRow,
    JourneyRow,
)

PERIOD = Period.from_days(date(2026, 11, 1), date(2026, 11, 30))
RULES = load_rulebook(ROOT / "rules")


def day(n: float) -> datetime:
    """Day n of November 2026 (1 = the 1st, midnight UTC); fractions are parts of a day."""
    return datetime(2026, 10, 31, tzinfo=UTC) + timedelta(days=n)


def customer_row(
    customer_id: str, acv: float = 10_000, expansion: float = 0.0, users: int = 10
) -> CustomerRow:
    snapshot = customer_data(
        profile={"customer_id": customer_id},
        usage={"active_users": users},
        financial={"annual_contract_value": acv, "expansion_revenue": expansion},
    )
    return CustomerRow(customer_id=customer_id, snapshot=snapshot)


def journey_row(
    customer_id: str,
    *,
    outcome: str | None = None,
    holdout: bool = False,
    path: tuple[str, ...] = ("critical_save",),
    tier: str = "critical",
    started: float = 2,
    finished: float | None = 20,
) -> JourneyRow:
    return JourneyRow(
        journey_key=f"retention-{customer_id}:run-1",
        workflow_id=f"retention-{customer_id}",
        customer_id=customer_id,
        strategy=path[-1],
        risk_tier=tier,
        stage="closed" if outcome else "waiting",
        outcome=outcome,
        started_at=day(started),
        finished_at=day(finished) if outcome and finished is not None else None,
        holdout=holdout,
        strategy_path=list(path),
    )


def prediction_row(
    customer_id: str,
    probability: float,
    at: float,
    *,
    time_to_churn: int | None = None,
    factor: str | None = None,
) -> ChurnPredictionRow:
    factors = [{"name": factor, "severity": "high", "impact": 0.3, "detail": ""}] if factor else []
    return ChurnPredictionRow(
        customer_id=customer_id,
        probability=probability,
        confidence=0.7,
        time_to_churn_days=time_to_churn,
        severity_value=probability * 10_000,
        model_version="test",
        probability_source="model",
        risk_factors=factors,
        predicted_at=day(at),
    )


def health_row(customer_id: str, overall: float, at: float) -> HealthScoreRow:
    return HealthScoreRow(
        customer_id=customer_id,
        overall=overall,
        categories={},
        trend="stable",
        status="",
        alerts=[],  # given, not defaulted: pydantic inspects `list` for each default it makes
        scored_at=day(at),
    )


def intervention_row(
    journey: JourneyRow,
    action: str,
    at: float,
    *,
    owner: str = "automated",
    status: str = "captured",
) -> InterventionRow:
    return InterventionRow(
        journey_key=journey.journey_key,
        customer_id=journey.customer_id,
        step_id=f"g1-{action}",
        action=action,
        channel="email",
        owner=owner,
        status=status,
        at=day(at),
    )


def records(**rows: Any) -> PeriodRecords:
    return PeriodRecords(period=PERIOD, strategy_order=RULES.strategy_order, **rows)


# ---- a generated portfolio -----------------------------------------------------------------


def portfolio(customers: int = 400, seed: int = 7, effect: float = 0.5) -> PeriodRecords:
    """Customers scored weekly; those above p 0.4 get a journey (10 % held out); a treated
    customer churns with `effect` × their risk, a held-out one with their risk."""
    rng = random.Random(seed)
    out = records()
    for n in range(1, customers + 1):
        customer_id = f"gen-{n:04d}"
        out.customers.append(
            customer_row(
                customer_id,
                acv=round(rng.lognormvariate(9.5, 0.8), -2),
                expansion=rng.choice([0, 0, 0, 2_000]),
                users=rng.randint(3, 80),
            )
        )
        risk = rng.betavariate(1.4, 3.0)
        for week in range(4):
            p = min(0.99, max(0.01, risk + rng.gauss(0, 0.05) + 0.02 * week))
            out.predictions.append(
                prediction_row(
                    customer_id,
                    p,
                    1 + 7 * week + rng.random(),
                    time_to_churn=int(180 * (1 - p)),
                    factor=_factor(rng),
                )
            )
            out.health.append(
                health_row(customer_id, 100 * (1 - p) * rng.uniform(0.8, 1.1), 1 + 7 * week)
            )
        if risk > 0.4:
            _journey(out, rng, customer_id, risk, effect)
    return out


def _factor(rng: random.Random) -> str:
    return rng.choice(
        ["usage_decline", "inactive", "payment_issues", "champion_risk", "negative_sentiment"]
    )


def _journey(
    out: PeriodRecords, rng: random.Random, customer_id: str, risk: float, effect: float
) -> None:
    strategy = next(s for s in RULES.strategies if s.name == _strategy_for(risk))
    holdout = rng.random() < 0.1
    churns = rng.random() < risk * (1 if holdout else effect)
    start = 1 + rng.random() * 6
    end = start + rng.uniform(10, 20)
    path = (strategy.name,)
    if not holdout and rng.random() < 0.1:
        path = (strategy.name, "critical_save")
    outcome = "churned" if churns else rng.choice(["saved", "recovered", "completed"])
    journey = journey_row(
        customer_id,
        outcome=outcome,
        holdout=holdout,
        path=path,
        tier=tier_of(risk),
        started=start,
        finished=end,
    )
    out.journeys.append(journey)
    for step in strategy.interventions:
        at = start + step.at / 24 + rng.uniform(0.05, 0.5)
        if at < end:
            status = "held_out" if holdout else "captured"
            out.interventions.append(
                intervention_row(journey, step.action, at, owner=step.owner, status=status)
            )


def _strategy_for(risk: float) -> str:
    return "critical_save" if risk > 0.8 else "proactive_engagement" if risk > 0.6 else "nurture"
