"""`simulate`: a generated portfolio run through the real RetentionJourney on the time-skipping
server, with a known response to the interventions delivered, then measured by the report: the
lift it measures can be checked against the truth.

1. `request.customers` customers from the generator (seeded), saved to the database.
2. The real PortfolioScan starts a journey for each at-risk customer; for `request.days` days
   the journeys run, and the ground truth (`response.py`) decides each day who churns, given
   what their journeys delivered so far; a churn is the journey's `churned` event
   (`simulated_portfolio.py`).
3. The report is built from the database, like `starter.py report`, over the days run.

The true lift of a scope (a starting strategy, or overall: the strategies with held-out
customers) is the mean, over the treated customers the report measures in it, of their
untreated chance of churning over the days run, 1 − (1 − p)^(days/180), minus their expected
churn under the interventions they actually got (the day-by-day compensator, see
`CustomerResponse`). The holdout is a hash of the customer id, so the treated customers stand
for everyone the scope's lift is about.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

import numpy as np
from pydantic import BaseModel, Field
from sqlalchemy import Engine, func
from sqlmodel import select
from temporalio.testing import WorkflowEnvironment

from retention.analytics.lift import Lift
from retention.analytics.period import Period, PeriodRecords
from retention.analytics.reader import read_period
from retention.analytics.report import Report, build_report
from retention.analytics.response import CustomerResponse
from retention.analytics.simulated_portfolio import SimulatedPortfolio
from retention.analytics.treatment import comparable, starting_strategy
from retention.model.generator import HORIZON_DAYS, draw, generate_population
from retention.rulebook.loader import Rulebook
from retention.store.db import session
from retention.store.records import save_customer
from retention.store.tables import JourneyRow

THRESHOLD_STREAM = 0x5EED  # the response's random numbers, apart from the generator's own
HALF_DAY = timedelta(hours=12)


class SimulationRequest(BaseModel):
    customers: int = Field(ge=1, le=20_000, description="every at-risk one runs real journeys")
    days: int = Field(ge=1, le=HORIZON_DAYS, description="how long the journeys run")
    seed: int = Field(default=1, ge=0)


class SimulatedLift(BaseModel):
    scope: str
    true_lift: float
    measured: Lift
    covered: bool | None = Field(description="the truth inside the 95 % interval; None: no lift")


class SimulationResult(BaseModel):
    request: SimulationRequest
    at_risk: int = Field(description="customers the portfolio scan started a journey for")
    held_out: int = Field(description="of them, held out")
    journeys: int = Field(description="journeys run: a customer's next starts when one closes")
    churned: int = Field(description="at-risk customers who churned (the ground truth)")
    delivered: int = Field(description="actions that reached treated customers, once a customer")
    misread: int = Field(description="customers whose last journey's outcome is not the truth's")
    lifts: list[SimulatedLift]
    report: Report


async def simulate(
    env: WorkflowEnvironment,
    task_queue: str,
    engine: Engine,
    rulebook: Rulebook,
    request: SimulationRequest,
    progress: Callable[[int], None] | None = None,
) -> SimulationResult:
    """Run the simulation into `engine` (an empty database) through the worker polling
    `task_queue` on `env`; `progress(day)` after each simulated day."""
    population = generate_population(request.customers, request.seed)
    for customer in population.customers:
        save_customer(engine, customer)
    probabilities = draw(request.seed, request.customers)["churn_probability"].tolist()
    thresholds = np.random.default_rng([request.seed, THRESHOLD_STREAM]).standard_exponential(
        request.customers
    )
    customers = {
        customer.customer_id: (customer, CustomerResponse(p, float(e)))
        for customer, p, e in zip(population.customers, probabilities, thresholds, strict=True)
    }
    portfolio = SimulatedPortfolio(env, task_queue, engine, customers)
    # Waiting on a journey must never skip time: only the day-by-day sleeps move the clock.
    with env.auto_time_skipping_disabled():
        began = await env.get_current_time()
        await portfolio.scan()
        # journeys start on whole days after the scan, the checks half a day away from them
        await env.sleep(HALF_DAY)
        await portfolio.begin()
        for day in range(1, request.days + 1):
            await env.sleep(HALF_DAY)
            await portfolio.restart_closed()
            await env.sleep(HALF_DAY)
            await portfolio.live_day(day)
            if progress:
                progress(day)
        await portfolio.finish()
        ended = await env.get_current_time()
    period = Period(start=began, end=ended + timedelta(seconds=1))
    records = read_period(engine, period, rulebook.strategy_order)
    report = build_report(records, rulebook.kpis, rulebook.version, period.end)
    responses = {cid: account.response for cid, account in portfolio.accounts.items()}
    return SimulationResult(
        request=request,
        at_risk=len(portfolio.accounts),
        held_out=sum(account.holdout for account in portfolio.accounts.values()),
        journeys=_journeys(engine),
        churned=sum(not response.stays for response in responses.values()),
        delivered=sum(len(response.delivered) for response in responses.values()),
        misread=_misread(records, responses),
        lifts=_beside_truth(report, records, responses, request.days),
        report=report,
    )


def _beside_truth(
    report: Report, records: PeriodRecords, responses: dict[str, CustomerResponse], days: int
) -> list[SimulatedLift]:
    resolved = records.resolved_in_period()
    in_overall = {j.customer_id for j in comparable(resolved)}
    treated = [j for j in resolved if not j.holdout]
    lifts = []
    for lift in report.lift:
        gains = [
            responses[j.customer_id].untreated_churn(days) - responses[j.customer_id].expected_churn
            for j in treated
            if (j.customer_id in in_overall if lift.scope == "overall" else
                starting_strategy(j) == lift.scope)
        ]  # fmt: skip
        truth = sum(gains) / len(gains) if gains else 0.0
        covered = None if lift.low is None or lift.high is None else lift.low <= truth <= lift.high
        lifts.append(
            SimulatedLift(scope=lift.scope, true_lift=truth, measured=lift, covered=covered)
        )
    return lifts


def _misread(records: PeriodRecords, responses: dict[str, CustomerResponse]) -> int:
    """At-risk customers whose last journey says churned when the truth says stayed, or the
    other way round, or who have no journey with an outcome: 0 unless an event went astray."""
    last = {j.customer_id: j.outcome == "churned" for j in records.resolved_in_period()}
    return sum(last.get(cid) != (not r.stays) for cid, r in responses.items())


def _journeys(engine: Engine) -> int:
    with session(engine) as db:
        return db.exec(select(func.count()).select_from(JourneyRow)).one()
