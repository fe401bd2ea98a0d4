"""The sixteen seed churn features, computed in one place from a snapshot and its health score.

Each feature is a float, or None when the snapshot does not know it (XGBoost and the frame
below treat it as missing, never as 0):

- logins_per_week: usage.logins_per_week
- usage_decline: usage.usage_decline, the drop in weekly logins against the prior period (0-1)
- feature_adoption: usage.features_used / usage.total_features (0-1)
- days_since_last_active: usage.days_since_last_login
- email_open_rate: engagement.email_open_rate (0-1)
- support_tickets: support.tickets_90d
- ticket_sentiment: support.avg_ticket_sentiment (-1..1); None without tickets in 90 days,
  because an average over no tickets is no evidence (the snapshot's 0.0 is only a default)
- contract_value: financial.annual_contract_value
- payment_delays: financial.payment_delays_90d
- discount_pct: financial.discount_pct (0-100)
- nps: relationship.nps; None without an answer
- tenure_days: days from profile.signup_date to `as_of`, at least 0; None without a signup date
- expansion_count: the number of expansion opportunities the rule set's expansion policy finds
  for the customer (`len(assessment.expansion)`, see retention/expansion.py), given by the
  caller because it depends on rules/expansion.yaml; None when the caller has no count
- health_score: health.overall (0-100)
- health_trend: health.overall minus the mean of the last `HEALTH_TREND_WINDOW` scores of
  snapshot.health_history (points; < 0 is falling); 0 without history, like the health trend
- health_alerts: the number of health alerts (len(health.alerts))
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date
from statistics import mean

import numpy as np
import pandas as pd

from retention.customer import CustomerSnapshot
from retention.health import HealthScore

SEED_FEATURES: tuple[str, ...] = (
    "logins_per_week",
    "usage_decline",
    "feature_adoption",
    "days_since_last_active",
    "email_open_rate",
    "support_tickets",
    "ticket_sentiment",
    "contract_value",
    "payment_delays",
    "discount_pct",
    "nps",
    "tenure_days",
    "expansion_count",
    "health_score",
    "health_trend",
    "health_alerts",
)

# The seed scoring's trend window (rules/scoring.yaml `trend.window`). A constant here, not the
# rule set's, so that a rule edit cannot silently change what a trained model's input means.
HEALTH_TREND_WINDOW = 3

Features = dict[str, float | None]


def seed_features(
    snapshot: CustomerSnapshot,
    health: HealthScore,
    as_of: date,
    expansion_count: int | None = None,
) -> Features:
    """The sixteen seed features of one customer on `as_of` (see the module docstring)."""
    usage, support = snapshot.usage, snapshot.support
    financial, relationship = snapshot.financial, snapshot.relationship
    return {
        "logins_per_week": usage.logins_per_week,
        "usage_decline": usage.usage_decline,
        "feature_adoption": usage.features_used / usage.total_features,
        "days_since_last_active": float(usage.days_since_last_login),
        "email_open_rate": snapshot.engagement.email_open_rate,
        "support_tickets": float(support.tickets_90d),
        "ticket_sentiment": support.avg_ticket_sentiment if support.tickets_90d > 0 else None,
        "contract_value": financial.annual_contract_value,
        "payment_delays": float(financial.payment_delays_90d),
        "discount_pct": financial.discount_pct,
        "nps": _optional(relationship.nps),
        "tenure_days": _tenure_days(snapshot.profile.signup_date, as_of),
        "expansion_count": _optional(expansion_count),
        "health_score": health.overall,
        "health_trend": health_trend_points(health.overall, snapshot.health_history),
        "health_alerts": float(len(health.alerts)),
    }


def _optional(value: int | None) -> float | None:
    return None if value is None else float(value)


def _tenure_days(signup: date | None, as_of: date) -> float | None:
    # A signup dated after the snapshot is a data slip, not negative tenure: count it as new.
    return None if signup is None else float(max(0, (as_of - signup).days))


def health_trend_points(overall: float, history: Sequence[float]) -> float:
    """overall - mean(last HEALTH_TREND_WINDOW history scores), rounded to 1 decimal; 0 without."""
    if not history:
        return 0.0
    return round(overall - mean(history[-HEALTH_TREND_WINDOW:]), 1)


def feature_frame(
    snapshots: Sequence[CustomerSnapshot],
    healths: Sequence[HealthScore],
    as_of_dates: Sequence[date],
    expansion_counts: Sequence[int | None] | None = None,
) -> pd.DataFrame:
    """One row per customer, columns SEED_FEATURES in order, float64 with NaN for missing."""
    if not len(snapshots) == len(healths) == len(as_of_dates):
        raise ValueError("snapshots, healths and as_of_dates must have the same length")
    counts = expansion_counts if expansion_counts is not None else [None] * len(snapshots)
    if len(counts) != len(snapshots):
        raise ValueError("expansion_counts must have one count per snapshot")
    rows = [
        [_number(value) for value in seed_features(*parts).values()]
        for parts in zip(snapshots, healths, as_of_dates, counts, strict=True)
    ]
    values = np.array(rows, dtype=np.float64).reshape(len(rows), len(SEED_FEATURES))
    return pd.DataFrame(values, columns=list(SEED_FEATURES))


def _number(value: float | None) -> float:
    return np.nan if value is None else value
