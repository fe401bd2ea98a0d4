"""`simulate`: a generated portfolio, scored and decided by the rule set, with a known response
to treatment, written to a database the way journeys write it, so that the lift the report
measures can be checked against the truth.

Ground truth: each generated customer has a true probability p of churning within 180 days
(`retention.model.generator`, constant hazard); over `days` that is p_d = 1 − (1 − p)^(days/180).
A journey removes the share TREATMENT_EFFECT[strategy] of a treated customer's p_d; a held-out
customer keeps it. So the true lift of a strategy is the mean of p_d × effect over its customers
(the holdout is a random draw by hash, the same share in every strategy).
"""

from __future__ import annotations

import random
from collections import defaultdict
from collections.abc import Callable
from datetime import UTC, datetime, time, timedelta

from pydantic import BaseModel, Field
from sqlalchemy import Engine

from retention.analytics.lift import Lift
from retention.analytics.period import Period
from retention.analytics.reader import read_period
from retention.analytics.report import Report, build_report
from retention.assessment import Assessment, ChurnScorer, assess_customer
from retention.journey import JourneyState, StrategyChange, journey_id
from retention.model.generator import HORIZON_DAYS, draw, generate_population
from retention.plan import Decision
from retention.rulebook.decide import decide, decision_facts
from retention.rulebook.loader import Rulebook
from retention.store.db import session
from retention.store.records import record_assessment, record_journey, save_customer
from retention.store.tables import InterventionRow

TREATMENT_EFFECT = {"critical_save": 0.40, "proactive_engagement": 0.30, "nurture": 0.20}
"""The share of a treated customer's churn probability its journey removes, by strategy."""


class SimulationRequest(BaseModel):
    customers: int = Field(ge=1, le=200_000)
    days: int = Field(ge=1, le=HORIZON_DAYS, description="how long the journeys run")
    seed: int = Field(default=1, ge=0)


class SimulatedLift(BaseModel):
    scope: str
    true_lift: float
    measured: Lift
    covered: bool | None = Field(description="the truth inside the 95 % interval; None: no lift")


class SimulationResult(BaseModel):
    request: SimulationRequest
    journeys: int
    held_out: int
    lifts: list[SimulatedLift]
    report: Report


class _Truth:
    """p_d × effect of every journey's customer, by strategy: what the lift should find."""

    def __init__(self) -> None:
        self.by_strategy: dict[str, list[float]] = defaultdict(list)

    def lift(self, scope: str, measured_scopes: set[str]) -> float:
        strategies = measured_scopes if scope == "overall" else {scope}
        gains = [g for s in strategies for g in self.by_strategy.get(s, [])]
        return sum(gains) / len(gains) if gains else 0.0


def simulate(
    engine: Engine,
    rulebook: Rulebook,
    request: SimulationRequest,
    scorer: ChurnScorer | None = None,
    progress: Callable[[int], None] | None = None,
) -> SimulationResult:
    """Write the simulated portfolio into `engine` (an empty database) and measure it."""
    population = generate_population(request.customers, request.seed)
    truths = draw(request.seed, request.customers)["churn_probability"].tolist()
    start = datetime.combine(population.snapshot_dates[0], time(), tzinfo=UTC)
    rng, truth, journeys, held_out = random.Random(request.seed), _Truth(), 0, 0
    for n, (customer, p) in enumerate(zip(population.customers, truths, strict=True), start=1):
        assessment = assess_customer(customer, rulebook, start, scorer=scorer)
        decision = decide(rulebook, decision_facts(assessment))
        runs = decision.strategy != rulebook.journey.recovered_strategy  # the scan starts none
        save_customer(engine, customer)
        record_assessment(engine, journey_id(customer.customer_id) if runs else None, assessment)
        if runs:
            p_days = 1 - (1 - p) ** (request.days / HORIZON_DAYS)
            effect = TREATMENT_EFFECT.get(decision.strategy, 0.0)
            truth.by_strategy[decision.strategy].append(p_days * effect)
            churns = rng.random() < p_days * (1 if decision.holdout else 1 - effect)
            ends = start + timedelta(days=request.days * rng.random() if churns else request.days)
            _record_journey(engine, assessment, decision, start, ends, churns)
            journeys, held_out = journeys + 1, held_out + decision.holdout
        if progress and n % 500 == 0:
            progress(n)
    period = Period(start=start, end=start + timedelta(days=request.days, seconds=1))
    report = build_report(
        read_period(engine, period, rulebook.strategy_order),
        rulebook.kpis,
        rulebook.version,
        period.end,
    )
    measured = {lift.scope for lift in report.lift[1:] if lift.holdout.customers}
    lifts = [
        SimulatedLift(
            scope=lift.scope,
            true_lift=truth.lift(lift.scope, measured),
            measured=lift,
            covered=None
            if lift.low is None or lift.high is None
            else lift.low <= truth.lift(lift.scope, measured) <= lift.high,
        )
        for lift in report.lift
    ]
    return SimulationResult(
        request=request, journeys=journeys, held_out=held_out, lifts=lifts, report=report
    )


def _record_journey(
    engine: Engine,
    assessment: Assessment,
    decision: Decision,
    start: datetime,
    ends: datetime,
    churns: bool,
) -> None:
    """The journey's row as the workflow records it at its close, and the steps it reached."""
    customer_id = assessment.customer.customer_id
    workflow_id = journey_id(customer_id)
    key = f"{workflow_id}:simulated"
    first = StrategyChange(at=start, from_strategy=None, to_strategy=decision.strategy, why="")
    state = JourneyState(
        customer_id=customer_id,
        journey_key=key,
        started_at=start,
        stage="closed",
        strategy=decision.strategy,
        risk_tier=decision.risk_tier,
        severity_tier=decision.severity_tier,
        churn_probability=assessment.prediction.probability,
        health_score=assessment.health.overall,
        holdout=decision.holdout,
        strategy_history=[first],
        outcome="churned" if churns else "completed",
        exit_reason="churned" if churns else "plan ran out",
        finished_at=ends,
        rules_version=decision.rules_version,
        model_version=assessment.prediction.model_version,
    )
    record_journey(engine, workflow_id, state)
    steps = [
        InterventionRow(
            journey_key=key,
            customer_id=customer_id,
            step_id=step.step_id,
            action=step.action,
            channel=step.channel,
            owner=step.owner,
            status="held_out" if decision.holdout else "captured",
            at=start + timedelta(hours=step.at_hours),
        )
        for step in decision.plan.steps
        if start + timedelta(hours=step.at_hours) < ends
    ]
    with session(engine) as db:
        db.add_all(steps)
