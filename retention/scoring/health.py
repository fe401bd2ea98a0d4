"""Customer health: five weighted categories, scored 0-100 from the snapshot.

Every number the score uses (weights, points, caps, trend, status bands, alert thresholds) comes
from a `HealthPolicy`, which the rule set loads from `rules/scoring.yaml`; nothing here defaults
to a seed value. The formulas, with the policy's names:

- product_usage: login recency points (the first band whose `within_days` holds) +
  features_used / total_features x feature_adoption + depth (actions per session, capped)
- engagement: email_open_rate x email_opens + webinars (capped) + resources (capped)
- support: ticket_volume (full at 0 tickets, none from `zero_at` on) + ticket sentiment rescaled
  from -1..1 to 0..1 x ticket_sentiment + CSAT rescaled from 1..5 to 0..1 x satisfaction, where
  a missing CSAT counts as `satisfaction_when_missing`
- financial: on_time_payments (fading with payment delays) + contract_value (capped)
  + expansion_revenue (capped)
- relationship: NPS / 10 x nps (a missing NPS counts as `nps_when_missing`)
  + executive_engaged points if an executive is engaged + champion points by status

A capped term is points x min(value / full_at, 1); a fading term is points x
max(0, 1 - value / zero_at). Each category's points add up to 100, so each stays within 0-100.
Category scores are rounded to 1 decimal; overall is the weighted sum of those, rounded to
1 decimal. Trend compares overall with the mean of the last `window` history scores: more than
`band` above is improving, more than `band` below is declining. Status: overall at or above
`healthy_from` is healthy, at or above `at_risk_from` at_risk, else critical.

Alerts, in this order:
`usage_low` (product_usage below `usage_low_below`), `declining_trend`, `champion_left`,
`payment_delays` (more than `payment_delays_above` delays in 90 days),
`negative_support_sentiment` (avg_ticket_sentiment below `negative_sentiment_below`).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from statistics import mean
from typing import Annotated, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from retention.customer import (
    CustomerSnapshot,
    Engagement,
    Financial,
    Relationship,
    Support,
    Usage,
)

HealthCategory = Literal["product_usage", "engagement", "support", "financial", "relationship"]
HEALTH_CATEGORIES: tuple[HealthCategory, ...] = get_args(HealthCategory)

# The scales of the customer's own answers (customer.py validates them), not tunable numbers.
NPS_SCALE_MAX = 10
CSAT_SCALE = (1.0, 5.0)
SENTIMENT_SCALE = (-1.0, 1.0)

# Sums of float weights and points may be off by rounding noise, never by more.
SUM_TOLERANCE = 1e-6


class HealthScore(BaseModel):
    overall: float = Field(ge=0, le=100)
    categories: dict[HealthCategory, float]
    trend: Literal["improving", "stable", "declining"]
    status: Literal["healthy", "at_risk", "critical"]
    alerts: list[str] = Field(default_factory=list)
    scored_at: datetime


# ---- The policy: what rules/scoring.yaml's `health:` block may say -------------------------


class _Policy(BaseModel):
    # strict: `yes` or "40" is not a number of points, even though Python could convert it
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False, strict=True)


Points = Annotated[float, Field(ge=0)]
Positive = Annotated[float, Field(gt=0)]


class Weights(_Policy):
    """How much each category counts towards overall health; they add up to 1."""

    product_usage: Points
    engagement: Points
    support: Points
    financial: Points
    relationship: Points

    @model_validator(mode="after")
    def _sum_to_one(self) -> Weights:
        total = sum(self.of(category) for category in HEALTH_CATEGORIES)
        if abs(total - 1) > SUM_TOLERANCE:
            raise ValueError(f"the weights must add up to 1, they add up to {total:g}")
        return self

    def of(self, category: HealthCategory) -> float:
        return float(getattr(self, category))


class CappedTerm(_Policy):
    """Points earned in proportion to a figure, in full from `full_at` on."""

    points: Points
    full_at: Positive

    def score(self, value: float) -> float:
        return min(value / self.full_at, 1.0) * self.points


class FadingTerm(_Policy):
    """Full points at zero of a figure (tickets, delays), none from `zero_at` on."""

    points: Points
    zero_at: Positive

    def score(self, value: float) -> float:
        return max(0.0, 1 - value / self.zero_at) * self.points


class _Category(_Policy):
    @model_validator(mode="after")
    def _full_marks_are_100(self) -> _Category:
        # 100 points in every category keeps each category, and so overall health, on 0-100.
        total = self.full_marks()
        if abs(total - 100) > SUM_TOLERANCE:
            raise ValueError(f"the points must add up to 100, they add up to {total:g}")
        return self

    def full_marks(self) -> float:
        raise NotImplementedError


class LoginRecency(_Policy):
    within_days: int = Field(ge=0)
    points: Points


class ProductUsagePoints(_Category):
    login_recency: list[LoginRecency] = Field(min_length=1)
    feature_adoption: Points
    depth: CappedTerm

    @field_validator("login_recency")
    @classmethod
    def _days_ascending(cls, bands: list[LoginRecency]) -> list[LoginRecency]:
        days = [band.within_days for band in bands]
        if days != sorted(set(days)):
            raise ValueError("within_days must grow from one band to the next")
        return bands

    def full_marks(self) -> float:
        best_login = max(band.points for band in self.login_recency)
        return best_login + self.feature_adoption + self.depth.points


class EngagementPoints(_Category):
    email_opens: Points
    webinars: CappedTerm
    resources: CappedTerm

    def full_marks(self) -> float:
        return self.email_opens + self.webinars.points + self.resources.points


class SupportPoints(_Category):
    ticket_volume: FadingTerm
    ticket_sentiment: Points
    satisfaction: Points
    satisfaction_when_missing: float = Field(ge=CSAT_SCALE[0], le=CSAT_SCALE[1])

    def full_marks(self) -> float:
        return self.ticket_volume.points + self.ticket_sentiment + self.satisfaction


class FinancialPoints(_Category):
    on_time_payments: FadingTerm
    contract_value: CappedTerm
    expansion_revenue: CappedTerm

    def full_marks(self) -> float:
        terms = (self.on_time_payments, self.contract_value, self.expansion_revenue)
        return sum(term.points for term in terms)


class ChampionPoints(_Policy):
    active: Points
    at_risk: Points
    none: Points
    left: Points


class RelationshipPoints(_Category):
    nps: Points
    nps_when_missing: int = Field(ge=0, le=NPS_SCALE_MAX)
    executive_engaged: Points
    champion: ChampionPoints

    def full_marks(self) -> float:
        return self.nps + self.executive_engaged + max(self.champion.model_dump().values())


class TrendRule(_Policy):
    window: int = Field(ge=1)
    band: Points


class StatusBands(_Policy):
    healthy_from: float = Field(ge=0, le=100)
    at_risk_from: float = Field(ge=0, le=100)

    @model_validator(mode="after")
    def _bands_in_order(self) -> StatusBands:
        if self.at_risk_from > self.healthy_from:
            raise ValueError("at_risk_from cannot be above healthy_from")
        return self


class AlertThresholds(_Policy):
    usage_low_below: float = Field(ge=0, le=100)
    payment_delays_above: int = Field(ge=0)
    negative_sentiment_below: float = Field(ge=SENTIMENT_SCALE[0], le=SENTIMENT_SCALE[1])


class HealthPolicy(_Policy):
    weights: Weights
    product_usage: ProductUsagePoints
    engagement: EngagementPoints
    support: SupportPoints
    financial: FinancialPoints
    relationship: RelationshipPoints
    trend: TrendRule
    status: StatusBands
    alerts: AlertThresholds


# ---- Scoring ------------------------------------------------------------------------------


def _rescaled(value: float, scale: tuple[float, float]) -> float:
    """Where `value` sits on its scale, as 0..1."""
    low, high = scale
    return (value - low) / (high - low)


def login_points(days_since_last_login: int, bands: list[LoginRecency]) -> float:
    for band in bands:
        if days_since_last_login <= band.within_days:
            return band.points
    return 0.0


def product_usage_score(usage: Usage, points: ProductUsagePoints) -> float:
    adoption = usage.features_used / usage.total_features * points.feature_adoption
    depth = points.depth.score(usage.actions_per_session)
    return login_points(usage.days_since_last_login, points.login_recency) + adoption + depth


def engagement_score(engagement: Engagement, points: EngagementPoints) -> float:
    return (
        engagement.email_open_rate * points.email_opens
        + points.webinars.score(engagement.webinars_attended_90d)
        + points.resources.score(engagement.resources_downloaded_90d)
    )


def support_score(support: Support, points: SupportPoints) -> float:
    volume = points.ticket_volume.score(support.tickets_90d)
    sentiment = _rescaled(support.avg_ticket_sentiment, SENTIMENT_SCALE) * points.ticket_sentiment
    # No CSAT answer is neither praise nor complaint: the policy says what it counts as.
    csat = support.satisfaction
    if csat is None:
        csat = points.satisfaction_when_missing
    return volume + sentiment + _rescaled(csat, CSAT_SCALE) * points.satisfaction


def financial_score(financial: Financial, points: FinancialPoints) -> float:
    on_time = points.on_time_payments.score(financial.payment_delays_90d)
    contract = points.contract_value.score(financial.annual_contract_value)
    expansion = points.expansion_revenue.score(financial.expansion_revenue)
    return on_time + contract + expansion


def relationship_score(relationship: Relationship, points: RelationshipPoints) -> float:
    nps = points.nps_when_missing if relationship.nps is None else relationship.nps
    executive = points.executive_engaged if relationship.executive_engaged else 0.0
    champion = float(getattr(points.champion, relationship.champion_status))
    return nps / NPS_SCALE_MAX * points.nps + executive + champion


def category_scores(
    snapshot: CustomerSnapshot, policy: HealthPolicy
) -> dict[HealthCategory, float]:
    return {
        "product_usage": round(product_usage_score(snapshot.usage, policy.product_usage), 1),
        "engagement": round(engagement_score(snapshot.engagement, policy.engagement), 1),
        "support": round(support_score(snapshot.support, policy.support), 1),
        "financial": round(financial_score(snapshot.financial, policy.financial), 1),
        "relationship": round(relationship_score(snapshot.relationship, policy.relationship), 1),
    }


def health_trend(
    overall: float, history: list[float], rule: TrendRule
) -> Literal["improving", "stable", "declining"]:
    if not history:
        return "stable"
    change = overall - mean(history[-rule.window :])
    if change > rule.band:
        return "improving"
    if change < -rule.band:
        return "declining"
    return "stable"


def health_status(overall: float, bands: StatusBands) -> Literal["healthy", "at_risk", "critical"]:
    if overall >= bands.healthy_from:
        return "healthy"
    if overall >= bands.at_risk_from:
        return "at_risk"
    return "critical"


HEALTH_ALERTS = (
    "usage_low",
    "declining_trend",
    "champion_left",
    "payment_delays",
    "negative_support_sentiment",
)


def health_alerts(
    snapshot: CustomerSnapshot,
    categories: Mapping[HealthCategory, float],
    trend: str,
    thresholds: AlertThresholds,
) -> list[str]:
    fired = {
        "usage_low": categories["product_usage"] < thresholds.usage_low_below,
        "declining_trend": trend == "declining",
        "champion_left": snapshot.relationship.champion_status == "left",
        "payment_delays": snapshot.financial.payment_delays_90d > thresholds.payment_delays_above,
        "negative_support_sentiment": (
            snapshot.support.avg_ticket_sentiment < thresholds.negative_sentiment_below
        ),
    }
    return [alert for alert in HEALTH_ALERTS if fired[alert]]


def score_health(snapshot: CustomerSnapshot, at: datetime, policy: HealthPolicy) -> HealthScore:
    categories = category_scores(snapshot, policy)
    weighted = sum(categories[c] * policy.weights.of(c) for c in HEALTH_CATEGORIES)
    # Weights may sum to 1 + 1e-6; rounding to 1 decimal keeps overall within 0-100.
    overall = round(weighted, 1)
    trend = health_trend(overall, snapshot.health_history, policy.trend)
    return HealthScore(
        overall=overall,
        categories=categories,
        trend=trend,
        status=health_status(overall, policy.status),
        alerts=health_alerts(snapshot, categories, trend, policy.alerts),
        scored_at=at,
    )
