"""A scored portfolio: every customer's churn prediction as arrays, and `ChurnPrediction`
objects built only for the customers that need one.

A portfolio scan scores every customer but starts journeys for the few the model flags; a
validated pydantic prediction (with its drivers and risk factors) costs more than the rest of
that customer's scoring, so it is built on demand: `each_prediction(at_risk())` hands the
flagged ones out one at a time (a scan starting a journey each never holds thousands, which
halves their cost: the garbage collector has none to walk), `predictions()` builds a list.

Drivers (exact contributions, XGBoost's most expensive call) are computed when predictions are
built, for the customers built and `explained` only, a chunk at a time: the next chunk's
contributions run in a background thread (XGBoost releases the GIL) while this chunk's
predictions are built, so the Python work overlaps XGBoost's instead of following it.
Ranking uses the raw margin (the calibration is monotone, so the order is the probability's,
without the ties that rounding makes).
"""

from __future__ import annotations

import gc
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TypeVar

import numpy as np
import pandas as pd

from retention.model.predict import CONTRIBUTIONS_METHOD, ChurnModel, ranked_drivers
from retention.scoring.risk import ChurnPrediction, RiskFlags

PROBABILITY_DECIMALS = 3
CONTRIBUTION_DECIMALS = 4
CHUNK = 1_000  # predictions built per drivers call
Result = TypeVar("Result")
CustomerDrivers = dict[int, tuple[list[str], list[float], float]]


@dataclass(frozen=True)
class DriverSource:
    """The top drivers of any customers of a scored matrix, computed when asked for."""

    model: ChurnModel
    matrix: pd.DataFrame
    top: int

    def of(self, rows: np.ndarray) -> CustomerDrivers:
        """Each row's top feature names and pushes, largest first, and its bias."""
        contributions = self.model.contributions(self.matrix.iloc[rows], CONTRIBUTIONS_METHOD)
        names, pushes, bias = ranked_drivers(contributions, self.model.spec.columns, self.top)
        columns = (
            names.tolist(),
            pushes.round(CONTRIBUTION_DECIMALS).tolist(),
            bias.round(CONTRIBUTION_DECIMALS).tolist(),
        )
        return dict(zip(rows.tolist(), zip(*columns, strict=True), strict=True))


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
    explained: np.ndarray  # bool: the customers whose predictions carry drivers
    drivers: DriverSource
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
        chunks = [rows[start : start + CHUNK] for start in range(0, len(rows), CHUNK)]
        for chunk, drivers in prefetched(chunks, self._drivers):
            yield from self._predictions(chunk, drivers)

    def _drivers(self, rows: np.ndarray) -> CustomerDrivers:
        return self.drivers.of(rows[self.explained[rows]])

    def _predictions(self, rows: np.ndarray, drivers: CustomerDrivers) -> Iterator[ChurnPrediction]:
        columns = zip(
            rows.tolist(),
            self.probability[rows].tolist(),
            self.confidence[rows].tolist(),
            self.time_to_churn_days[rows].tolist(),
            self.severity_value[rows].tolist(),
            strict=True,
        )
        for i, probability, confidence, days, severity in columns:
            fired = self.risk.fired_rules(i)
            names, pushes, bias = drivers.get(i, ([], [], None))
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


def prefetched(
    chunks: Sequence[np.ndarray], work: Callable[[np.ndarray], Result]
) -> Iterator[tuple[np.ndarray, Result]]:
    """Each chunk with its `work`, the next chunk's computed in a background thread meanwhile
    (one chunk: no thread)."""
    if len(chunks) <= 1:
        yield from ((chunk, work(chunk)) for chunk in chunks)
        return
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="drivers") as pool:
        pending = pool.submit(work, chunks[0])
        for k, chunk in enumerate(chunks):
            done = pending.result()
            if k + 1 < len(chunks):
                pending = pool.submit(work, chunks[k + 1])
            yield chunk, done


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
