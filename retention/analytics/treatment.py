"""Treated against held out: lift per starting strategy and overall, and the figures that come
from it (prevented churn, customers saved, saved revenue, cost per save)."""

from __future__ import annotations

from retention.analytics.lift import GroupRetention, Lift, measure_lift
from retention.analytics.period import PeriodRecords, contract_value, resolution
from retention.analytics.values import KpiValue, kpi
from retention.kpis import KpiTargets
from retention.store.tables import JourneyRow


def starting_strategy(journey: JourneyRow) -> str:
    """Intent to treat: the strategy the journey was assigned first."""
    return (journey.strategy_path or [journey.strategy or "unknown"])[0]


def _group(journeys: list[JourneyRow]) -> GroupRetention:
    return GroupRetention(
        customers=len(journeys),
        retained=sum(resolution(j.outcome) == "retained" for j in journeys),
    )


def lift_by_strategy(records: PeriodRecords) -> list[Lift]:
    resolved = records.resolved_in_period()
    scopes = ["overall"] + sorted({starting_strategy(j) for j in resolved})
    lifts = []
    for scope in scopes:
        if scope == "overall":
            group = comparable(resolved)
        else:
            group = [j for j in resolved if starting_strategy(j) == scope]
        treated = _group([j for j in group if not j.holdout])
        holdout = _group([j for j in group if j.holdout])
        lifts.append(measure_lift(scope, treated, holdout))
    return lifts


def comparable(resolved: list[JourneyRow]) -> list[JourneyRow]:
    """Journeys of the strategies that have held-out customers: only they compare like with
    like (the holdout is drawn above a probability, so `standard` journeys have none)."""
    held_out = {starting_strategy(j) for j in resolved if j.holdout}
    return [j for j in resolved if starting_strategy(j) in held_out]


def lift_kpis(records: PeriodRecords, overall: Lift, targets: KpiTargets) -> list[KpiValue]:
    if overall.difference is None:
        names = ("prevented_churn", "prevented_customers", "saved_revenue", "cost_per_save")
        return [kpi(name, None, targets, overall.verdict) for name in names]
    caveat = None if overall.conclusive else overall.verdict
    holdout_rate = overall.holdout.rate or 0.0
    holdout_churn = 1 - holdout_rate
    prevented = overall.difference / holdout_churn if holdout_churn else None
    customers, revenue = overall.treated.customers, _treated_value(records)
    saved = overall.difference * customers
    cost = _treated_cost(records, targets)
    per_save = cost / saved if overall.conclusive and saved > 0 else None
    return [
        kpi(
            "prevented_churn",
            prevented,
            targets,
            "no holdout customer churned",
            caveat=caveat,
            judge=overall.conclusive,
        ),
        _scaled("prevented_customers", overall, customers, targets, caveat),
        _scaled("saved_revenue", overall, revenue, targets, caveat),
        kpi("cost_per_save", per_save, targets, caveat or "the lift is not above 0"),
    ]


def _scaled(
    name: str, lift: Lift, scale: float, targets: KpiTargets, caveat: str | None
) -> KpiValue:
    """A figure linear in the lift (× customers, × their contract value), with its interval."""
    assert lift.difference is not None and lift.low is not None and lift.high is not None
    figure = kpi(name, lift.difference * scale, targets, caveat=caveat)
    figure.low, figure.high = lift.low * scale, lift.high * scale
    return figure


def _treated_value(records: PeriodRecords) -> float:
    by_id = {c.customer_id: c for c in records.customers}
    treated = [j.customer_id for j in comparable(records.resolved_in_period()) if not j.holdout]
    return sum(contract_value(by_id[c]) for c in treated if c in by_id)


def _treated_cost(records: PeriodRecords, targets: KpiTargets) -> float:
    costs = targets.intervention_costs
    return sum(costs.get(i.owner, 0.0) for i in records.treated_interventions())
