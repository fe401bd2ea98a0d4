"""Risk factors from the snapshot and the baseline churn scorer (`baseline-0`)."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Literal

from pydantic import BaseModel, Field

from retention.customer import CustomerSnapshot
from retention.errors import InvalidInput
from retention.health import HealthScore

Severity = Literal["low", "medium", "high", "critical"]

BASELINE_MODEL_VERSION = "baseline-0"
UPSTREAM_MODEL_VERSION = "upstream"

USAGE_DECLINE_ABOVE = 0.3
INACTIVE_AFTER_DAYS = 14
NEGATIVE_SENTIMENT_BELOW = -0.5

BASE_HAZARD = 0.05
HEALTH_HAZARD_WEIGHT = 0.5
CHURN_HORIZON_DAYS = 180
MIN_TIME_TO_CHURN_DAYS = 7

RECOMMENDED_ACTIONS: dict[str, str] = {
    "usage_decline": "usage_review",
    "inactive": "re_engagement",
    "negative_sentiment": "support_escalation",
    "payment_issues": "billing_outreach",
    "champion_risk": "executive_sponsor_outreach",
}


class RiskFactor(BaseModel):
    name: str
    severity: Severity
    impact: float = Field(ge=0, le=1)
    detail: str


class ChurnPrediction(BaseModel):
    probability: float = Field(ge=0, le=1)
    confidence: float = Field(ge=0, le=1)
    time_to_churn_days: int | None = Field(default=None, ge=0)
    risk_factors: list[RiskFactor] = Field(default_factory=list)
    severity_value: float = Field(ge=0, description="probability x annual contract value")
    model_version: str
    probability_source: Literal["model", "upstream"] = "model"
    recommended_actions: list[str] = Field(default_factory=list)


def _usage_decline(snapshot: CustomerSnapshot) -> RiskFactor | None:
    decline = snapshot.usage.usage_decline
    # The decline is a ratio of floats (1 - 7/10 = 0.30000000000000004); compare it at a
    # precision that keeps an exact 30% drop on the seed's "not above 0.3" side.
    if round(decline, 9) <= USAGE_DECLINE_ABOVE:
        return None
    return RiskFactor(
        name="usage_decline",
        severity="high",
        impact=0.35,
        detail=f"Weekly logins fell {decline:.0%} against the prior period.",
    )


def _inactive(snapshot: CustomerSnapshot) -> RiskFactor | None:
    days = snapshot.usage.days_since_last_login
    if days <= INACTIVE_AFTER_DAYS:
        return None
    return RiskFactor(
        name="inactive", severity="high", impact=0.30, detail=f"No login for {days} days."
    )


def _negative_sentiment(snapshot: CustomerSnapshot) -> RiskFactor | None:
    sentiment = snapshot.support.avg_ticket_sentiment
    if sentiment >= NEGATIVE_SENTIMENT_BELOW:
        return None
    return RiskFactor(
        name="negative_sentiment",
        severity="medium",
        impact=0.20,
        detail=f"Average support ticket sentiment is {sentiment:.2f}.",
    )


def _payment_issues(snapshot: CustomerSnapshot) -> RiskFactor | None:
    delays = snapshot.financial.payment_delays_90d
    if delays <= 0:
        return None
    return RiskFactor(
        name="payment_issues",
        severity="high",
        impact=0.25,
        detail=f"{delays} delayed payment(s) in the last 90 days.",
    )


def _champion_risk(snapshot: CustomerSnapshot) -> RiskFactor | None:
    if snapshot.relationship.champion_status != "left":
        return None
    return RiskFactor(
        name="champion_risk",
        severity="critical",
        impact=0.40,
        detail="The customer's champion has left the account.",
    )


# In the seed's listing order, which breaks ties in impact.
RISK_CHECKS: tuple[Callable[[CustomerSnapshot], RiskFactor | None], ...] = (
    _usage_decline,
    _inactive,
    _negative_sentiment,
    _payment_issues,
    _champion_risk,
)


def risk_factors(snapshot: CustomerSnapshot) -> list[RiskFactor]:
    """The seed's risk factors that fire for this customer, highest impact first."""
    found = [factor for check in RISK_CHECKS if (factor := check(snapshot)) is not None]
    return sorted(found, key=lambda factor: factor.impact, reverse=True)  # stable: ties keep order


def factor_hazard(factors: list[RiskFactor]) -> float:
    """p_f = 1 - prod(1 - impact): the factors as independent hazards."""
    return 1 - math.prod(1 - factor.impact for factor in factors)


def health_deficit(health: HealthScore) -> float:
    """h = (100 - overall) / 100."""
    return (100 - health.overall) / 100


def time_to_churn_days(probability: float) -> int:
    return max(MIN_TIME_TO_CHURN_DAYS, round(CHURN_HORIZON_DAYS * (1 - probability)))


def _prediction(
    snapshot: CustomerSnapshot,
    factors: list[RiskFactor],
    probability: float,
    confidence: float,
    model_version: str,
    source: Literal["model", "upstream"],
) -> ChurnPrediction:
    return ChurnPrediction(
        probability=probability,
        confidence=confidence,
        time_to_churn_days=time_to_churn_days(probability),
        risk_factors=factors,
        severity_value=round(probability * snapshot.financial.annual_contract_value, 2),
        model_version=model_version,
        probability_source=source,
        recommended_actions=[RECOMMENDED_ACTIONS[factor.name] for factor in factors],
    )


def baseline_probability(factors: list[RiskFactor], health: HealthScore) -> float:
    """p = 1 - (1 - 0.05) x (1 - p_f) x (1 - 0.5 h), rounded to 3 decimals.

    A 5% base hazard, the risk factors and half the health deficit act as independent
    hazards, so p stays within 0.05-0.93 and every factor or lost health point raises it.
    """
    survival = (
        (1 - BASE_HAZARD)
        * (1 - factor_hazard(factors))
        * (1 - HEALTH_HAZARD_WEIGHT * health_deficit(health))
    )
    return round(1 - survival, 3)


def baseline_confidence(factors: list[RiskFactor], health: HealthScore) -> float:
    """0.3 + 0.3 x (1 - |p_f - h|): higher when the risk factors and the health deficit agree.

    Range 0.3-0.6: capped at 0.6 because the baseline is a hand-set formula, not a trained model.
    """
    agreement = 1 - abs(factor_hazard(factors) - health_deficit(health))
    return round(0.3 + 0.3 * agreement, 2)


def baseline_prediction(snapshot: CustomerSnapshot, health: HealthScore) -> ChurnPrediction:
    """The documented `baseline-0` churn scorer.

    probability: `baseline_probability`; confidence: `baseline_confidence`;
    time_to_churn_days = max(7, round(180 x (1 - p))); severity_value = p x annual contract
    value (2 decimals); one recommended action per risk factor, in impact order.
    """
    factors = risk_factors(snapshot)
    return _prediction(
        snapshot,
        factors,
        probability=baseline_probability(factors, health),
        confidence=baseline_confidence(factors, health),
        model_version=BASELINE_MODEL_VERSION,
        source="model",
    )


def upstream_prediction(
    snapshot: CustomerSnapshot, health: HealthScore, probability: float
) -> ChurnPrediction:
    """A prediction whose probability comes from an upstream system; it wins over the baseline.

    Risk factors, time to churn, severity and actions are derived as for the baseline.
    confidence = 0.3 + 0.6 x (1 - |p - p_baseline|): the upstream model may be trained, so it
    can reach 0.9, but it earns that only where the local evidence agrees with it.
    """
    if not (math.isfinite(probability) and 0 <= probability <= 1):
        raise InvalidInput(f"probability: must be between 0 and 1, got {probability}")
    factors = risk_factors(snapshot)
    agreement = 1 - abs(probability - baseline_probability(factors, health))
    return _prediction(
        snapshot,
        factors,
        probability=probability,
        confidence=round(0.3 + 0.6 * agreement, 2),
        model_version=UPSTREAM_MODEL_VERSION,
        source="upstream",
    )
