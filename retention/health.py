"""Customer health: five weighted categories, scored 0-100 from the snapshot.

Category scores (each bounded 0-100; "min(x, 1)" caps a term at its full points):

- product_usage (seed): login points (days since last login <=1: 40, <=7: 30, <=14: 20,
  <=30: 10, else 0) + features_used / total_features x 30
  + min(actions_per_session / 20, 1) x 30
- engagement: email_open_rate x 50 + min(webinars_attended_90d / 3, 1) x 25
  + min(resources_downloaded_90d / 5, 1) x 25
- support: max(0, 1 - tickets_90d / 10) x 40 + (avg_ticket_sentiment + 1) / 2 x 30
  + (CSAT - 1) / 4 x 30, where a missing CSAT counts as the neutral 3
- financial: max(0, 1 - payment_delays_90d / 3) x 60 + min(annual_contract_value / 50000, 1) x 20
  + min(expansion_revenue / 10000, 1) x 20
- relationship: NPS / 10 x 50 (missing NPS counts as 5) + 20 if an executive is engaged
  + champion points (active 30, at_risk 15, none 10, left 0)

Category scores are rounded to 1 decimal; overall is the weighted sum of those, rounded to
1 decimal. Trend compares overall with the mean of the last (up to) 3 history scores:
> +5 improving, < -5 declining, else stable. Status: >= 70 healthy, >= 40 at_risk, else critical.

Alerts, in this order:
`usage_low` (product_usage < 40), `declining_trend` (trend is declining), `champion_left`,
`payment_delays` (any payment delay in 90 days), `negative_support_sentiment`
(avg_ticket_sentiment < -0.5, the same line as the `negative_sentiment` risk factor).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import datetime
from statistics import mean
from types import MappingProxyType
from typing import Literal, get_args

from pydantic import BaseModel, Field

from retention.customer import (
    CustomerSnapshot,
    Engagement,
    Financial,
    Relationship,
    Support,
    Usage,
)
from retention.errors import InvalidInput

HealthCategory = Literal["product_usage", "engagement", "support", "financial", "relationship"]
HEALTH_CATEGORIES: tuple[HealthCategory, ...] = get_args(HealthCategory)

DEFAULT_WEIGHTS: Mapping[HealthCategory, float] = MappingProxyType(
    {
        "product_usage": 0.25,
        "engagement": 0.20,
        "support": 0.15,
        "financial": 0.20,
        "relationship": 0.20,
    }
)

TREND_BAND = 5.0
TREND_WINDOW = 3
HEALTHY_FROM = 70.0
AT_RISK_FROM = 40.0
USAGE_LOW_BELOW = 40.0
NEGATIVE_SENTIMENT_BELOW = -0.5

# (max days since last login, points), checked in order; older logins earn nothing.
LOGIN_RECENCY_POINTS: tuple[tuple[int, float], ...] = ((1, 40), (7, 30), (14, 20), (30, 10))
CHAMPION_POINTS: Mapping[str, float] = MappingProxyType(
    {"active": 30, "at_risk": 15, "none": 10, "left": 0}
)


class HealthScore(BaseModel):
    overall: float = Field(ge=0, le=100)
    categories: dict[HealthCategory, float]
    trend: Literal["improving", "stable", "declining"]
    status: Literal["healthy", "at_risk", "critical"]
    alerts: list[str] = Field(default_factory=list)
    scored_at: datetime


def _capped(value: float, full_at: float) -> float:
    """Fraction of the way to `full_at`, capped at 1."""
    return min(value / full_at, 1.0)


def login_points(days_since_last_login: int) -> float:
    for max_days, points in LOGIN_RECENCY_POINTS:
        if days_since_last_login <= max_days:
            return points
    return 0.0


def product_usage_score(usage: Usage) -> float:
    adoption = usage.features_used / usage.total_features * 30
    depth = _capped(usage.actions_per_session, 20) * 30
    return login_points(usage.days_since_last_login) + adoption + depth


def engagement_score(engagement: Engagement) -> float:
    return (
        engagement.email_open_rate * 50
        + _capped(engagement.webinars_attended_90d, 3) * 25
        + _capped(engagement.resources_downloaded_90d, 5) * 25
    )


def support_score(support: Support) -> float:
    volume = max(0.0, 1 - support.tickets_90d / 10) * 40
    sentiment = (support.avg_ticket_sentiment + 1) / 2 * 30
    # No CSAT answer is neither praise nor complaint: score it as the scale's midpoint.
    csat = 3.0 if support.satisfaction is None else support.satisfaction
    return volume + sentiment + (csat - 1) / 4 * 30


def financial_score(financial: Financial) -> float:
    on_time = max(0.0, 1 - financial.payment_delays_90d / 3) * 60
    contract = _capped(financial.annual_contract_value, 50_000) * 20
    expansion = _capped(financial.expansion_revenue, 10_000) * 20
    return on_time + contract + expansion


def relationship_score(relationship: Relationship) -> float:
    nps = 5 if relationship.nps is None else relationship.nps
    executive = 20.0 if relationship.executive_engaged else 0.0
    return nps / 10 * 50 + executive + CHAMPION_POINTS[relationship.champion_status]


def category_scores(snapshot: CustomerSnapshot) -> dict[HealthCategory, float]:
    return {
        "product_usage": round(product_usage_score(snapshot.usage), 1),
        "engagement": round(engagement_score(snapshot.engagement), 1),
        "support": round(support_score(snapshot.support), 1),
        "financial": round(financial_score(snapshot.financial), 1),
        "relationship": round(relationship_score(snapshot.relationship), 1),
    }


def validate_weights(weights: Mapping[HealthCategory, float]) -> None:
    for name in weights:
        if name not in HEALTH_CATEGORIES:
            raise InvalidInput(f"weights.{name}: unknown health category")
    for category in HEALTH_CATEGORIES:
        if category not in weights:
            raise InvalidInput(f"weights.{category}: missing")
        weight = weights[category]
        if not (math.isfinite(weight) and weight >= 0):
            raise InvalidInput(f"weights.{category}: must be a finite number >= 0, got {weight}")
    total = sum(weights.values())
    if abs(total - 1) > 1e-6:
        raise InvalidInput(f"weights: must sum to 1, got {total}")


def health_trend(
    overall: float, history: list[float]
) -> Literal["improving", "stable", "declining"]:
    if not history:
        return "stable"
    change = overall - mean(history[-TREND_WINDOW:])
    if change > TREND_BAND:
        return "improving"
    if change < -TREND_BAND:
        return "declining"
    return "stable"


def health_status(overall: float) -> Literal["healthy", "at_risk", "critical"]:
    if overall >= HEALTHY_FROM:
        return "healthy"
    if overall >= AT_RISK_FROM:
        return "at_risk"
    return "critical"


def health_alerts(
    snapshot: CustomerSnapshot, categories: Mapping[HealthCategory, float], trend: str
) -> list[str]:
    checks = (
        ("usage_low", categories["product_usage"] < USAGE_LOW_BELOW),
        ("declining_trend", trend == "declining"),
        ("champion_left", snapshot.relationship.champion_status == "left"),
        ("payment_delays", snapshot.financial.payment_delays_90d > 0),
        (
            "negative_support_sentiment",
            snapshot.support.avg_ticket_sentiment < NEGATIVE_SENTIMENT_BELOW,
        ),
    )
    return [alert for alert, fired in checks if fired]


def score_health(
    snapshot: CustomerSnapshot,
    at: datetime,
    weights: Mapping[HealthCategory, float] = DEFAULT_WEIGHTS,
) -> HealthScore:
    validate_weights(weights)
    categories = category_scores(snapshot)
    weighted = sum(categories[c] * weights[c] for c in HEALTH_CATEGORIES)
    # Weights may sum to 1 + 1e-6; rounding to 1 decimal keeps overall within 0-100.
    overall = round(weighted, 1)
    trend = health_trend(overall, snapshot.health_history)
    return HealthScore(
        overall=overall,
        categories=categories,
        trend=trend,
        status=health_status(overall),
        alerts=health_alerts(snapshot, categories, trend),
        scored_at=at,
    )
