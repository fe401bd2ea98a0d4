"""The KPIs over one period, each beside its target: pure functions of `PeriodRecords`."""

from __future__ import annotations

from collections import Counter
from statistics import median

from pydantic import BaseModel, Field

from retention.analytics.catalogue import AT_RISK_PROBABILITY, KPI_BY_NAME, Unit
from retention.analytics.lift import GroupRetention, Lift, measure_lift
from retention.analytics.period import (
    PeriodRecords,
    active_users,
    contract_value,
    expansion_revenue,
    resolution,
    succeeded,
)
from retention.kpis import KpiTarget, KpiTargets
from retention.store.tables import ChurnPredictionRow, JourneyRow

HIGH_RISK_TIERS = frozenset({"critical", "high"})


class KpiValue(BaseModel):
    name: str
    title: str
    unit: Unit
    value: float | None
    reason: str | None = Field(default=None, description="why there is no value, or a caveat")
    target: KpiTarget | None = None
    met: bool | None = Field(description="None: no target, no value, or not conclusive")
    definition: str
    low: float | None = Field(default=None, description="95 % interval, where it has one")
    high: float | None = None


class Scorecard(BaseModel):
    kpis: list[KpiValue]
    lift: list[Lift] = Field(description="overall first, then per starting strategy")
    churn_reasons: dict[str, int] = Field(description="top risk factor of churned customers")


def kpi(
    name: str,
    value: float | None,
    targets: KpiTargets,
    missing: str = "no data",
    *,
    caveat: str | None = None,
    judge: bool = True,
) -> KpiValue:
    """A KPI beside its target. `missing` says why there is no value; `caveat` qualifies one;
    `judge=False` shows the target without calling it met."""
    definition = KPI_BY_NAME[name]
    reason = caveat if value is not None else missing
    target = targets.targets.get(name)  # type: ignore[call-overload]
    met = target.met(value) if target and value is not None and judge else None
    return KpiValue(
        name=name,
        title=definition.title,
        unit=definition.unit,
        value=value,
        reason=reason,
        target=target,
        met=met,
        definition=definition.definition,
    )


def scorecard(records: PeriodRecords, targets: KpiTargets) -> Scorecard:
    lifts = lift_by_strategy(records)
    kpis = (
        retention_kpis(records, targets)
        + lift_kpis(records, lifts[0], targets)
        + prediction_kpis(records, targets)
        + operations_kpis(records, targets)
    )
    return Scorecard(kpis=kpis, lift=lifts, churn_reasons=churn_reasons(records))


# ---- retention -------------------------------------------------------------------------------


def _base(records: PeriodRecords) -> tuple[set[str], float]:
    ids = {c.customer_id for c in records.customers} | {j.customer_id for j in records.journeys}
    return ids, sum(contract_value(c) for c in records.customers)


def retention_kpis(records: PeriodRecords, targets: KpiTargets) -> list[KpiValue]:
    ids, base_value = _base(records)
    by_id = {c.customer_id: c for c in records.customers}
    churned = {j.customer_id for j in records.churned_in_period()}
    lost = sum(contract_value(by_id[c]) for c in churned if c in by_id)
    expansion = sum(expansion_revenue(c) for c in records.customers if c.customer_id not in churned)
    no_customers = "no customers in the database"
    no_value = "no contract value recorded"
    logo = 1 - len(churned) / len(ids) if ids else None
    return [
        kpi("gross_retention", 1 - lost / base_value if base_value else None, targets, no_value),
        kpi(
            "net_retention",
            (base_value - lost + expansion) / base_value if base_value else None,
            targets,
            no_value,
        ),
        kpi("logo_retention", logo, targets, no_customers),
        kpi("churn_rate", None if logo is None else 1 - logo, targets, no_customers),
    ]


# ---- lift ------------------------------------------------------------------------------------


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
        group = [j for j in resolved if scope == "overall" or starting_strategy(j) == scope]
        if scope == "overall":
            group = comparable(resolved)
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


# ---- predictions -----------------------------------------------------------------------------


def churn_times(records: PeriodRecords) -> dict[str, JourneyRow]:
    """Each churned customer's churn (the end of the journey that recorded it) by the end."""
    return {
        j.customer_id: j
        for j in records.journeys
        if j.outcome == "churned" and j.finished_at and j.finished_at < records.period.end
    }


def untreated_latest(records: PeriodRecords) -> list[ChurnPredictionRow]:
    treated = {j.customer_id for j in records.journeys if j.holdout is False}
    latest: dict[str, ChurnPredictionRow] = {}
    for p in sorted(records.predictions, key=lambda p: p.predicted_at):
        if records.period.contains(p.predicted_at) and p.customer_id not in treated:
            latest[p.customer_id] = p
    return list(latest.values())


def prediction_kpis(records: PeriodRecords, targets: KpiTargets) -> list[KpiValue]:
    churned = churn_times(records)
    scored = untreated_latest(records)
    none = "no untreated customer was scored in the period"
    pairs = [(p.probability > AT_RISK_PROBABILITY, p.customer_id in churned) for p in scored]
    correct = sum(said == did for said, did in pairs)
    churn_share = sum(did for _, did in pairs) / len(pairs) if pairs else None
    stayed = [said for said, did in pairs if not did]
    warning, error = _early_warning(records, churned)
    no_churn = "no churned customer had an at-risk prediction before churning"
    return [
        kpi("prediction_accuracy", correct / len(pairs) if pairs else None, targets, none),
        kpi(
            "prediction_base_rate",
            None if churn_share is None else max(churn_share, 1 - churn_share),
            targets,
            none,
        ),
        kpi(
            "false_positive_rate",
            sum(stayed) / len(stayed) if stayed else None,
            targets,
            "no untreated scored customer stayed",
        ),
        kpi("early_warning_days", warning, targets, no_churn),
        kpi("churn_date_error_days", error, targets, no_churn),
        kpi("coverage", _coverage(records), targets, "no customers in the database"),
    ]


def _early_warning(
    records: PeriodRecords, churned: dict[str, JourneyRow]
) -> tuple[float | None, float | None]:
    warnings, errors = [], []
    for customer_id, journey in churned.items():
        assert journey.finished_at is not None
        before = [
            p
            for p in records.predictions
            if p.customer_id == customer_id
            and p.probability > AT_RISK_PROBABILITY
            and p.predicted_at <= journey.finished_at
        ]
        if not before:
            continue
        first = min(before, key=lambda p: p.predicted_at)
        warnings.append((journey.finished_at - first.predicted_at).total_seconds() / 86400)
        if first.time_to_churn_days is not None:
            errors.append(first.time_to_churn_days - warnings[-1])
    return (median(warnings) if warnings else None), (median(errors) if errors else None)


def _coverage(records: PeriodRecords) -> float | None:
    if not records.customers:
        return None
    ids = {c.customer_id for c in records.customers}
    scored = {h.customer_id for h in records.health if records.period.contains(h.scored_at)}
    scored |= {
        p.customer_id for p in records.predictions if records.period.contains(p.predicted_at)
    }
    return len(ids & scored) / len(ids)


# ---- operations ------------------------------------------------------------------------------


def operations_kpis(records: PeriodRecords, targets: KpiTargets) -> list[KpiValue]:
    latest_health: dict[str, float] = {}
    for h in sorted(records.health, key=lambda h: h.scored_at):
        if records.period.contains(h.scored_at):
            latest_health[h.customer_id] = h.overall
    treated = records.treated_interventions()
    outcome = {j.journey_key: j.outcome for j in records.journeys}
    journeys = records.journeys_in_period()
    response = _response_hours(records)
    none_sent = "no intervention was delivered in the period"
    return [
        kpi(
            "average_health",
            sum(latest_health.values()) / len(latest_health) if latest_health else None,
            targets,
            "no health score in the period",
        ),
        kpi("active_users", float(sum(active_users(c) for c in records.customers)), targets),
        kpi(
            "high_risk_response_hours",
            response,
            targets,
            "no treated high-risk journey had an intervention",
        ),
        kpi(
            "intervention_success",
            _share(succeeded(outcome.get(i.journey_key)) for i in treated),
            targets,
            none_sent,
        ),
        kpi("automation_rate", _share(i.owner == "automated" for i in treated), targets, none_sent),
        kpi(
            "escalation_rate",
            _share(_escalated(j, records.strategy_order) for j in journeys),
            targets,
            "no journey ran in the period",
        ),
    ]


def _share(flags: object) -> float | None:
    values = list(flags)  # type: ignore[call-overload]
    return sum(values) / len(values) if values else None


def _response_hours(records: PeriodRecords) -> float | None:
    first: dict[str, float] = {}
    starts = {
        j.journey_key: j.started_at
        for j in records.journeys_in_period()
        if j.risk_tier in HIGH_RISK_TIERS and j.holdout is False
    }
    for i in records.interventions:
        if i.journey_key in starts and i.status not in ("held_out", "suppressed"):
            hours = (i.at - starts[i.journey_key]).total_seconds() / 3600
            first[i.journey_key] = min(hours, first.get(i.journey_key, hours))
    return median(first.values()) if first else None


def _escalated(journey: JourneyRow, order: list[str]) -> bool:
    rank = {name: n for n, name in enumerate(order)}
    path = [rank[s] for s in journey.strategy_path or [] if s in rank]
    return any(later > earlier for earlier, later in zip(path, path[1:], strict=False))


def churn_reasons(records: PeriodRecords) -> dict[str, int]:
    """Each churned customer's strongest risk factor at its last prediction before churning."""
    reasons: Counter[str] = Counter()
    for journey in records.churned_in_period():
        before = [
            p
            for p in records.predictions
            if p.customer_id == journey.customer_id
            and journey.finished_at
            and p.predicted_at <= journey.finished_at
        ]
        last = max(before, key=lambda p: p.predicted_at, default=None)
        factors = sorted(last.risk_factors, key=lambda f: -f.get("impact", 0)) if last else []
        reasons[factors[0]["name"] if factors else "no risk factor recorded"] += 1
    return dict(reasons.most_common())
