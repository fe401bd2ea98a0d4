"""A scored portfolio: every customer's churn prediction as arrays, and `ChurnPrediction`
objects built only for the customers that need one.

A portfolio scan scores every customer but starts journeys for the few the model flags; a
validated pydantic prediction (with its drivers and risk factors) costs more than all of
XGBoost's work for that customer, so it is built on demand: `each_prediction(at_risk())` hands
the flagged ones out one at a time (a scan starting a journey each never holds thousands, which
halves their cost: the garbage collector has none to walk), `predictions()` builds a list.
Ranking uses the raw margin (the calibration is monotone, so the order is the probability's,
without the ties that rounding makes).
"""

from __future__ import annotations

import gc
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np

from retention.risk import ChurnPrediction, RiskFlags

PROBABILITY_DECIMALS = 3
CONTRIBUTION_DECIMALS = 4


@dataclass(frozen=True)
class ScoredPortfolio:
    """Index i of every array is the i-th customer scored; rounded as predictions show them."""

    model_version: str
    threshold: float  # the model's: calibrated probability at and above which a customer is flagged
    margin: np.ndarray  # the classifier's raw log-odds
    flagged: np.ndarray  # bool: unrounded probability >= threshold
    probability: np.ndarray
    confidence: np.ndarray
    time_to_churn_days: np.ndarray  # int
    severity_value: np.ndarray  # probability x annual contract value
    driver_names: np.ndarray  # customers x top, object: feature names, largest push first
    driver_pushes: np.ndarray  # customers x top: contributions to the margin
    driver_bias: np.ndarray
    risk: RiskFlags

    def __len__(self) -> int:
        return len(self.margin)

    def at_risk(self) -> np.ndarray:
        """The flagged customers' indices, highest margin first (ties in input order)."""
        ranked = np.argsort(-self.margin, kind="stable")
        return ranked[self.flagged[ranked]]

    def predictions(
        self, customers: Sequence[int] | np.ndarray | None = None
    ) -> list[ChurnPrediction]:
        """The `ChurnPrediction` of each customer index given (every customer without)."""
        with gc_paused():
            return list(self.each_prediction(customers))

    def each_prediction(
        self, customers: Sequence[int] | np.ndarray | None = None
    ) -> Iterator[ChurnPrediction]:
        """`predictions`, one at a time: a scan that starts a journey per flagged customer holds
        one prediction at a time, not thousands (which the garbage collector would then walk)."""
        rows = np.arange(len(self)) if customers is None else np.asarray(customers, dtype=int)
        columns = zip(
            rows.tolist(),
            self.probability[rows].tolist(),
            self.confidence[rows].tolist(),
            self.time_to_churn_days[rows].tolist(),
            self.severity_value[rows].tolist(),
            self.driver_names[rows].tolist(),
            self.driver_pushes[rows].tolist(),
            self.driver_bias[rows].tolist(),
            strict=True,
        )
        for i, probability, confidence, days, severity, names, pushes, bias in columns:
            fired = self.risk.fired_rules(i)
            # validated from plain values in one call: faster than building each driver and
            # risk factor model first
            yield ChurnPrediction.model_validate(
                {
                    "probability": probability,
                    "confidence": confidence,
                    "time_to_churn_days": days,
                    "risk_factors": [
                        rule.factor_fields(self.risk.value(i, rule)) for rule in fired
                    ],
                    "severity_value": severity,
                    "model_version": self.model_version,
                    "recommended_actions": [rule.action for rule in fired],
                    "drivers": [
                        {"feature": name, "contribution": push}
                        for name, push in zip(names, pushes, strict=True)
                    ],
                    "driver_bias": bias,
                }
            )


@contextmanager
def gc_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector while a batch is read or built: the objects made hold
    no cycles, but each collection they trigger walks every live object, and a portfolio's
    100,000 snapshots are many (measured: a third of the build time, and of feature reading)."""
    if not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()
