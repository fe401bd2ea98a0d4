"""The data behind each chart of the report: pure functions of `PeriodRecords`."""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime, timedelta
from statistics import median

from pydantic import BaseModel

from retention.analytics.period import PeriodRecords, resolution, succeeded
from retention.analytics.predictions import churn_times, untreated_latest
from retention.analytics.treatment import starting_strategy

# The design's churn-probability bands of the risk tiers (critical > 0.8, high > 0.6, ...).
TIER_FLOORS = (("critical", 0.8), ("high", 0.6), ("medium", 0.4), ("low", -1.0))
TIERS = tuple(name for name, _ in TIER_FLOORS)


class HistogramBin(BaseModel):
    low: float
    high: float
    customers: int


class TierCounts(BaseModel):
    start: datetime
    counts: dict[str, int]


class FunnelStep(BaseModel):
    strategy: str
    step: str
    journeys: int


class InterventionStats(BaseModel):
    action: str
    delivered: int
    succeeded: int
    success_rate: float
    median_hours_to_resolution: float | None


class CalibrationBin(BaseModel):
    customers: int
    predicted: float
    observed: float


def health_distribution(records: PeriodRecords, width: int = 10) -> list[HistogramBin]:
    """Each customer's latest health score in the period, in bins of `width` points."""
    latest: dict[str, float] = {}
    for h in sorted(records.health, key=lambda h: h.scored_at):
        if records.period.contains(h.scored_at):
            latest[h.customer_id] = h.overall
    bins = [HistogramBin(low=low, high=low + width, customers=0) for low in range(0, 100, width)]
    for score in latest.values():
        bins[min(int(score // width), len(bins) - 1)].customers += 1
    return bins if latest else []


def tier_of(probability: float) -> str:
    return next(name for name, floor in TIER_FLOORS if probability > floor)


def risk_tiers_over_time(records: PeriodRecords) -> list[TierCounts]:
    """Customers per risk tier by their latest prediction in each day (periods up to four
    weeks) or week."""
    period = records.period
    step = timedelta(days=1 if period.end - period.start <= timedelta(days=28) else 7)
    buckets: dict[int, dict[str, float]] = defaultdict(dict)
    for p in sorted(records.predictions, key=lambda p: p.predicted_at):
        if period.contains(p.predicted_at):
            buckets[(p.predicted_at - period.start) // step][p.customer_id] = p.probability
    return (
        [
            TierCounts(
                start=period.start + n * step,
                counts={
                    tier: sum(tier_of(p) == tier for p in buckets[n].values()) for tier in TIERS
                },
            )
            for n in range(int((period.end - period.start) / step + 0.999))
        ]
        if buckets
        else []
    )


def journey_funnel(records: PeriodRecords) -> list[FunnelStep]:
    """Per starting strategy, most intensive first: treated journeys started, then reached by
    each step (in plan order), then kept."""
    treated = [j for j in records.journeys_in_period() if j.holdout is False]
    reached: dict[str, dict[str, set[str]]] = defaultdict(lambda: defaultdict(set))
    offset: dict[tuple[str, str], float] = {}
    start = {j.journey_key: j for j in treated}
    for i in records.treated_interventions():
        if (journey := start.get(i.journey_key)) is None:
            continue
        strategy = starting_strategy(journey)
        reached[strategy][i.action].add(i.journey_key)
        hours = (i.at - journey.started_at).total_seconds() / 3600
        offset[(strategy, i.action)] = min(hours, offset.get((strategy, i.action), hours))
    steps = []
    intensity = {name: n for n, name in enumerate(reversed(records.strategy_order))}
    started = {starting_strategy(j) for j in treated}
    for strategy in sorted(started, key=lambda s: (intensity.get(s, len(intensity)), s)):
        mine = [j for j in treated if starting_strategy(j) == strategy]
        steps.append(FunnelStep(strategy=strategy, step="journeys started", journeys=len(mine)))
        for action in sorted(reached[strategy], key=lambda a: offset[(strategy, a)]):
            count = len(reached[strategy][action])
            steps.append(FunnelStep(strategy=strategy, step=action, journeys=count))
        kept = sum(resolution(j.outcome) == "retained" for j in mine)
        steps.append(FunnelStep(strategy=strategy, step="kept", journeys=kept))
    return steps


def intervention_success(records: PeriodRecords) -> list[InterventionStats]:
    journeys = {j.journey_key: j for j in records.journeys}
    by_action: dict[str, list[tuple[bool, float | None]]] = defaultdict(list)
    for i in records.treated_interventions():
        journey = journeys.get(i.journey_key)
        won = journey is not None and succeeded(journey.outcome)
        hours = None
        if won and journey and journey.finished_at:
            hours = (journey.finished_at - i.at).total_seconds() / 3600
        by_action[i.action].append((won, hours))
    stats = []
    for action, results in sorted(by_action.items()):
        wins = sum(won for won, _ in results)
        durations = [h for _, h in results if h is not None]
        stats.append(
            InterventionStats(
                action=action,
                delivered=len(results),
                succeeded=wins,
                success_rate=wins / len(results),
                median_hours_to_resolution=median(durations) if durations else None,
            )
        )
    return stats


def calibration(records: PeriodRecords, groups: int = 10) -> list[CalibrationBin]:
    """Untreated customers' latest predictions in deciles: mean predicted vs observed churn."""
    churned = churn_times(records)
    scored = sorted(untreated_latest(records), key=lambda p: p.probability)
    groups = min(groups, len(scored))
    bins = []
    for n in range(groups):
        part = scored[n * len(scored) // groups : (n + 1) * len(scored) // groups]
        bins.append(
            CalibrationBin(
                customers=len(part),
                predicted=sum(p.probability for p in part) / len(part),
                observed=sum(p.customer_id in churned for p in part) / len(part),
            )
        )
    return bins
