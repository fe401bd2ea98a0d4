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

import math
from collections.abc import Sequence
from datetime import date

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
NAN = float("nan")


def seed_features(
    snapshot: CustomerSnapshot,
    health: HealthScore,
    as_of: date,
    expansion_count: int | None = None,
) -> Features:
    """The sixteen seed features of one customer on `as_of` (see the module docstring)."""
    columns = feature_columns([snapshot], [health], [as_of], [expansion_count])
    return {name: None if math.isnan(values[0]) else values[0] for name, values in columns.items()}


def feature_columns(
    snapshots: Sequence[CustomerSnapshot],
    healths: Sequence[HealthScore],
    as_of_dates: Sequence[date],
    expansion_counts: Sequence[int | None],
) -> dict[str, list[float]]:
    """Each seed feature as one column over many customers, NaN where unknown. Column by column,
    not customer by customer: a portfolio of 100,000 is read in a fraction of a second."""
    usage = [s.usage for s in snapshots]
    support = [s.support for s in snapshots]
    financial = [s.financial for s in snapshots]
    pairs = zip(snapshots, as_of_dates, strict=True)
    trends = zip(healths, snapshots, strict=True)
    return {
        "logins_per_week": [u.logins_per_week for u in usage],
        "usage_decline": [u.usage_decline for u in usage],
        "feature_adoption": [u.features_used / u.total_features for u in usage],
        "days_since_last_active": [float(u.days_since_last_login) for u in usage],
        "email_open_rate": [s.engagement.email_open_rate for s in snapshots],
        "support_tickets": [float(t.tickets_90d) for t in support],
        "ticket_sentiment": [t.avg_ticket_sentiment if t.tickets_90d > 0 else NAN for t in support],
        "contract_value": [f.annual_contract_value for f in financial],
        "payment_delays": [float(f.payment_delays_90d) for f in financial],
        "discount_pct": [f.discount_pct for f in financial],
        "nps": [_number(s.relationship.nps) for s in snapshots],
        "tenure_days": [_tenure_days(s.profile.signup_date, day) for s, day in pairs],
        "expansion_count": [_number(count) for count in expansion_counts],
        "health_score": [h.overall for h in healths],
        "health_trend": [health_trend_points(h.overall, s.health_history) for h, s in trends],
        "health_alerts": [float(len(h.alerts)) for h in healths],
    }


def _number(value: float | None) -> float:
    return NAN if value is None else float(value)


def _tenure_days(signup: date | None, as_of: date) -> float:
    # A signup dated after the snapshot is a data slip, not negative tenure: count it as new.
    return NAN if signup is None else float(max(0, (as_of - signup).days))


def health_trend_points(overall: float, history: Sequence[float]) -> float:
    """overall - mean(last HEALTH_TREND_WINDOW history scores), rounded to 1 decimal; 0 without."""
    if not history:
        return 0.0
    recent = history[-HEALTH_TREND_WINDOW:]
    return round(overall - math.fsum(recent) / len(recent), 1)  # statistics.mean: 10x slower


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
    columns = feature_columns(snapshots, healths, as_of_dates, counts)
    return pd.DataFrame(
        {name: np.array(values, dtype=np.float64) for name, values in columns.items()}
    )
