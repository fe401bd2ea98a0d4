"""How good the churn predictions were: accuracy beside the base rate, false positives, early
warning, coverage, and why churned customers churned."""

from __future__ import annotations

from collections import Counter, defaultdict
from statistics import median

from retention.analytics.catalogue import AT_RISK_PROBABILITY
from retention.analytics.period import PeriodRecords
from retention.analytics.values import KpiValue, kpi
from retention.kpis import KpiTargets
from retention.store.tables import ChurnPredictionRow, JourneyRow


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


def churn_reasons(records: PeriodRecords) -> dict[str, int]:
    """Each churned customer's strongest risk factor at its last prediction before churning."""
    by_customer = predictions_by_customer(records)
    reasons = Counter(churn_reason(by_customer, j) for j in records.churned_in_period())
    return dict(reasons.most_common())


def predictions_by_customer(records: PeriodRecords) -> dict[str, list[ChurnPredictionRow]]:
    """The predictions grouped once, so that a reason per churned customer reads only theirs
    (scanning every prediction for each churned customer took minutes on a large portfolio)."""
    grouped: dict[str, list[ChurnPredictionRow]] = defaultdict(list)
    for prediction in records.predictions:
        grouped[prediction.customer_id].append(prediction)
    return grouped


def churn_reason(by_customer: dict[str, list[ChurnPredictionRow]], journey: JourneyRow) -> str:
    """The strongest risk factor at the customer's last prediction before the journey ended."""
    finished = journey.finished_at
    before = [
        p
        for p in by_customer.get(journey.customer_id, ())
        if finished and p.predicted_at <= finished
    ]
    last = max(before, key=lambda p: p.predicted_at, default=None)
    factors = sorted(last.risk_factors, key=lambda f: -f.get("impact", 0)) if last else []
    return str(factors[0]["name"]) if factors else "no risk factor recorded"
