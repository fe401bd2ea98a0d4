"""The sixteen seed churn features, computed in one place from a snapshot and its health score
(their names, SEED_FEATURES, live in retention/scoring/risk.py beside baseline-0's drivers).

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
  for the customer (`len(assessment.expansion)`, see retention/scoring/expansion.py), given by the
  caller because it depends on rules/expansion.yaml; None when the caller has no count
- health_score: health.overall (0-100)
- health_trend: health.overall minus the mean of the last `HEALTH_TREND_WINDOW` scores of
  snapshot.health_history (points; < 0 is falling); 0 without history, like the health trend
- health_alerts: the number of health alerts (len(health.alerts))
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from datetime import date
from operator import attrgetter
from typing import Any

import numpy as np
import pandas as pd

from retention.customer import CustomerSnapshot, read_fields
from retention.scoring.health import HealthScore

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
    return {
        name: None if math.isnan(value := float(values[0])) else value
        for name, values in columns.items()
    }


def feature_columns(
    snapshots: Sequence[CustomerSnapshot],
    healths: Sequence[HealthScore],
    as_of_dates: Sequence[date],
    expansion_counts: Sequence[int | None],
    fields: Mapping[str, Sequence[Any]] | None = None,
) -> dict[str, np.ndarray]:
    """Each seed feature as one float64 column over many customers, NaN where unknown.

    The snapshot's figures (`SNAPSHOT_PATHS`) are read in one C-level pass (`read_fields`) and
    derived column-wise in numpy: reading pydantic snapshots, not arithmetic, is what costs
    (each customer's objects are cold in memory: one visit per customer, not one per feature).
    `fields`: that read, done already by a caller that reads more paths in the same pass."""
    n = len(snapshots)
    raw = fields if fields is not None else read_fields(snapshots, SNAPSHOT_PATHS)
    overall, alerts = _columns(map(_read_health, healths), n, 2)
    logins, prior = (
        _floats(raw["usage.logins_per_week"]),
        _floats(raw["usage.logins_per_week_prior"]),
    )
    tickets = _floats(raw["support.tickets_90d"])
    with np.errstate(divide="ignore", invalid="ignore"):  # prior 0: no decline, masked below
        decline = np.where(prior > 0, np.maximum(0.0, 1 - logins / prior), 0.0)
    # day numbers (ordinals): numpy's datetime64 conversion of date objects is 15x slower
    signups = raw["profile.signup_date"]
    signup = _floats([None if day is None else day.toordinal() for day in signups])
    tenure = _floats([day.toordinal() for day in as_of_dates]) - signup
    trends = map(health_trend_points, overall, raw["health_history"])
    adoption = _floats(raw["usage.features_used"]) / _floats(raw["usage.total_features"])
    sentiment = _floats(raw["support.avg_ticket_sentiment"])
    return {
        "logins_per_week": logins,
        "usage_decline": decline,
        "feature_adoption": adoption,
        "days_since_last_active": _floats(raw["usage.days_since_last_login"]),
        "email_open_rate": _floats(raw["engagement.email_open_rate"]),
        "support_tickets": tickets,
        "ticket_sentiment": np.where(tickets > 0, sentiment, NAN),
        "contract_value": _floats(raw["financial.annual_contract_value"]),
        "payment_delays": _floats(raw["financial.payment_delays_90d"]),
        "discount_pct": _floats(raw["financial.discount_pct"]),
        "nps": _floats(raw["relationship.nps"]),  # None → NaN
        # a signup dated after the snapshot is a data slip, not negative tenure: count it as new
        "tenure_days": np.maximum(0.0, tenure, where=~np.isnan(tenure), out=tenure),
        "expansion_count": _floats(expansion_counts),
        "health_score": _floats(overall),
        "health_trend": np.fromiter(trends, dtype=np.float64, count=n),
        "health_alerts": np.fromiter(map(len, alerts), dtype=np.float64, count=n),
    }


# What the features read from a snapshot: dotted attribute paths.
SNAPSHOT_PATHS: tuple[str, ...] = (
    "usage.logins_per_week",
    "usage.logins_per_week_prior",
    "usage.features_used",
    "usage.total_features",
    "usage.days_since_last_login",
    "engagement.email_open_rate",
    "support.tickets_90d",
    "support.avg_ticket_sentiment",
    "financial.annual_contract_value",
    "financial.payment_delays_90d",
    "financial.discount_pct",
    "relationship.nps",
    "profile.signup_date",
    "health_history",
)
_read_health = attrgetter("overall", "alerts")


def _columns(rows: Iterable[tuple[Any, ...]], n: int, width: int) -> list[tuple[Any, ...]]:
    """Rows of `width` values → `width` columns (empty ones when there are no rows)."""
    return list(zip(*rows, strict=True)) if n else [()] * width


def _floats(values: Sequence[Any]) -> np.ndarray:
    return np.array(values, dtype=np.float64)  # None → NaN


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
    fields: Mapping[str, Sequence[Any]] | None = None,
) -> pd.DataFrame:
    """One row per customer, columns SEED_FEATURES (retention/scoring/risk.py) in order, float64
    with NaN for missing. `fields`: the snapshots' `read_fields` of (at least) SNAPSHOT_PATHS,
    if read already."""
    if not len(snapshots) == len(healths) == len(as_of_dates):
        raise ValueError("snapshots, healths and as_of_dates must have the same length")
    counts = expansion_counts if expansion_counts is not None else [None] * len(snapshots)
    if len(counts) != len(snapshots):
        raise ValueError("expansion_counts must have one count per snapshot")
    return pd.DataFrame(feature_columns(snapshots, healths, as_of_dates, counts, fields))
