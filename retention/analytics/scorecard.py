"""The KPIs over one period, each beside its target: pure functions of `PeriodRecords`."""

from __future__ import annotations

from collections.abc import Iterable
from statistics import median

from pydantic import BaseModel, Field

from retention.analytics.lift import Lift
from retention.analytics.period import (
    NOT_DELIVERED,
    PeriodRecords,
    active_users,
    contract_value,
    expansion_revenue,
    succeeded,
)
from retention.analytics.predictions import churn_reasons, prediction_kpis
from retention.analytics.treatment import lift_by_strategy, lift_kpis
from retention.analytics.values import KpiValue, kpi
from retention.kpis import KpiTargets
from retention.store.tables import JourneyRow

HIGH_RISK_TIERS = frozenset({"critical", "high"})


class Scorecard(BaseModel):
    kpis: list[KpiValue]
    lift: list[Lift] = Field(description="overall first, then per starting strategy")
    churn_reasons: dict[str, int] = Field(description="top risk factor of churned customers")


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


def _share(flags: Iterable[bool]) -> float | None:
    values = list(flags)
    return sum(values) / len(values) if values else None


def _response_hours(records: PeriodRecords) -> float | None:
    first: dict[str, float] = {}
    starts = {
        j.journey_key: j.started_at
        for j in records.journeys_in_period()
        if j.risk_tier in HIGH_RISK_TIERS and j.holdout is False
    }
    for i in records.interventions:
        if i.journey_key in starts and i.status not in NOT_DELIVERED:
            hours = (i.at - starts[i.journey_key]).total_seconds() / 3600
            first[i.journey_key] = min(hours, first.get(i.journey_key, hours))
    return median(first.values()) if first else None


def _escalated(journey: JourneyRow, order: list[str]) -> bool:
    rank = {name: n for n, name in enumerate(order)}
    path = [rank[s] for s in journey.strategy_path or [] if s in rank]
    return any(later > earlier for earlier, later in zip(path, path[1:], strict=False))
