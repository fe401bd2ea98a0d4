"""The worker's churn scorer that follows promotions without a restart.

`ChampionScorer` scores with the champion: the newest model a retrain promoted (the
`model_versions` table), else RETENTION_MODEL_DIR, else baseline-0. Before an assessment it
asks the database which version is promoted, at most every `check_seconds` (one indexed query),
and loads the new folder when the version changed. A promoted folder that cannot be loaded is
logged and the model in use stays: a bad promotion never stops scoring.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from datetime import date
from pathlib import Path

from sqlalchemy import Engine

from retention.customer import CustomerSnapshot
from retention.errors import RetentionError
from retention.model.scorer import ModelScorer, load_scorer
from retention.scoring.health import HealthScore
from retention.scoring.risk import (
    BASELINE_MODEL_VERSION,
    ChurnPrediction,
    RiskPolicy,
    baseline_prediction,
)
from retention.store.model_versions import promoted_model

log = logging.getLogger(__name__)


class ChampionScorer:
    def __init__(
        self,
        engine: Engine,
        initial: ModelScorer | None,
        *,
        check_seconds: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """`initial`: the model of RETENTION_MODEL_DIR (None: baseline-0), used until a
        promotion is found."""
        self._engine = engine
        self._scorer = initial
        self._check_seconds = check_seconds
        self._clock = clock
        self._checked_at: float | None = None
        self._lock = threading.Lock()  # activities run on a thread pool

    @property
    def version(self) -> str:
        return self._scorer.version if self._scorer else BASELINE_MODEL_VERSION

    def current(self) -> ModelScorer | None:
        """The champion's scorer, reloaded first if a newer promotion is due to be seen."""
        with self._lock:
            now = self._clock()
            if self._checked_at is None or now - self._checked_at >= self._check_seconds:
                self._checked_at = now
                self._follow_promotion()
            return self._scorer

    def predict_one(
        self,
        snapshot: CustomerSnapshot,
        health: HealthScore,
        expansion_count: int | None,
        policy: RiskPolicy,
        as_of: date,
    ) -> ChurnPrediction:
        scorer = self.current()
        if scorer is None:
            return baseline_prediction(snapshot, health, policy)
        return scorer.predict_one(snapshot, health, expansion_count, policy, as_of)

    def predict(
        self,
        snapshots: Sequence[CustomerSnapshot],
        healths: Sequence[HealthScore],
        expansion_counts: Sequence[int | None],
        policy: RiskPolicy,
        as_of: date,
    ) -> list[ChurnPrediction]:
        scorer = self.current()
        if scorer is None:
            return [
                baseline_prediction(s, h, policy) for s, h in zip(snapshots, healths, strict=True)
            ]
        return scorer.predict(snapshots, healths, expansion_counts, policy, as_of)

    def _follow_promotion(self) -> None:
        promoted = promoted_model(self._engine)
        if promoted is None or promoted.version == self.version:
            return
        try:
            scorer = load_scorer(Path(promoted.path))
        except RetentionError as exc:
            log.error("promoted churn model %s not loaded, keeping %s: %s",
                      promoted.version, self.version, exc)  # fmt: skip
            return
        log.info("churn model %s promoted; scoring with it instead of %s",
                 promoted.version, self.version)  # fmt: skip
        self._scorer = scorer
