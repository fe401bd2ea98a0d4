"""The churn scorer a worker holds: a trained model turning assessed customers into the
`ChurnPrediction`s a journey receives.

- `load_scorer(model_dir)`: the model in a folder `model train` wrote (read from disk, never
  downloaded), or None for `baseline-0` (`RETENTION_MODEL_DIR=baseline` or empty). A model whose
  spec names a column the snapshot cannot provide (anything but the sixteen seed features: a
  model trained on a team's own columns) is refused here, naming the columns, so a worker fails
  at start, not at the first journey. Also the function a later model-retrain schedule calls to
  pick up a promoted model.
- `ModelScorer.predict(...)`: many customers in one call (one XGBoost call per model for the
  whole batch: a portfolio scan, the benchmark); `predict_one` for the assess activity.

A prediction: the calibrated probability, the model's confidence, time to churn (the survival
model's median), severity_value = p x annual contract value, the rule set's risk factors and
their actions (as `baseline-0` has them), and the top drivers: the classifier's own
per-prediction contributions to its margin (log-odds; approximate, see predict.py), largest
first, with the bias in `driver_bias` (bias + every contribution = margin).
"""

from __future__ import annotations

import gc
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import date
from pathlib import Path

import numpy as np

from retention.customer import CustomerSnapshot
from retention.errors import InvalidInput
from retention.health import HealthScore
from retention.model.features import SEED_FEATURES, feature_frame
from retention.model.persist import load_model
from retention.model.predict import ChurnModel
from retention.risk import ChurnPrediction, RiskPolicy, fired_rules_many

TOP_DRIVERS = 5
BASELINE_NAMES = frozenset({"", "baseline", "baseline-0"})
PROBABILITY_DECIMALS = 3
CONTRIBUTION_DECIMALS = 4


class ModelScorer:
    """A trained churn model bound to the snapshot's seed features."""

    def __init__(
        self, model: ChurnModel, version: str, *, top: int = TOP_DRIVERS, where: str = "model"
    ) -> None:
        missing = [column for column in model.spec.columns if column not in SEED_FEATURES]
        if missing:
            raise InvalidInput(
                f"{where}: the model reads {', '.join(map(repr, missing))}, which a customer "
                "snapshot cannot provide (it provides the seed features: "
                f"{', '.join(SEED_FEATURES)})"
            )
        self.model = model
        self.version = version
        self.top = top
        self._names = np.array(model.spec.columns, dtype=object)

    @classmethod
    def load(cls, folder: Path, *, top: int = TOP_DRIVERS) -> ModelScorer:
        model, card = load_model(folder)
        return cls(model, card.model_version, top=top, where=str(folder))

    def predict(
        self,
        snapshots: Sequence[CustomerSnapshot],
        healths: Sequence[HealthScore],
        expansion_counts: Sequence[int | None],
        policy: RiskPolicy,
        as_of: date,
    ) -> list[ChurnPrediction]:
        """One prediction per customer, index for index, as of `as_of`."""
        table = feature_frame(snapshots, healths, [as_of] * len(snapshots), expansion_counts)
        scores = self.model.score(table, contributions=True)
        assert scores.contributions is not None
        # float64 before rounding: XGBoost's float32 would round to 0.09560000151395798
        contributions = scores.contributions.astype(np.float64)
        features, bias = contributions[:, :-1], contributions[:, -1]
        order = np.argsort(-features, axis=1, kind="stable")[:, : self.top]
        names = self._names[order].tolist()
        pushes = np.take_along_axis(features, order, axis=1).round(CONTRIBUTION_DECIMALS).tolist()
        rounded = np.round(scores.probability, PROBABILITY_DECIMALS)
        probability = rounded.tolist()
        value = np.array([s.financial.annual_contract_value for s in snapshots], dtype=np.float64)
        severity = np.round(rounded * value, 2).tolist()
        days = np.rint(scores.time_to_churn_days).astype(int).tolist()
        confidence = scores.confidence.tolist()
        biases = np.round(bias, CONTRIBUTION_DECIMALS).tolist()
        fired = fired_rules_many(snapshots, policy)
        with _gc_paused():
            return [
                # validated from plain values in one call: faster than building each driver model
                ChurnPrediction.model_validate(
                    {
                        "probability": probability[i],
                        "confidence": confidence[i],
                        "time_to_churn_days": days[i],
                        "risk_factors": [factor for _, factor in fired[i]],
                        "severity_value": severity[i],
                        "model_version": self.version,
                        "recommended_actions": [rule.action for rule, _ in fired[i]],
                        "drivers": [
                            {"feature": name, "contribution": push}
                            for name, push in zip(names[i], pushes[i], strict=True)
                        ],
                        "driver_bias": biases[i],
                    }
                )
                for i in range(len(snapshots))
            ]

    def predict_one(
        self,
        snapshot: CustomerSnapshot,
        health: HealthScore,
        expansion_count: int | None,
        policy: RiskPolicy,
        as_of: date,
    ) -> ChurnPrediction:
        return self.predict([snapshot], [health], [expansion_count], policy, as_of)[0]


@contextmanager
def _gc_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector while a batch's predictions are built: they hold no
    cycles, but each collection it triggers walks every live object, and a portfolio's 100,000
    snapshots are many (measured: a third of the build time)."""
    if not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


def load_scorer(model_dir: str | Path | None) -> ModelScorer | None:
    """The scorer for a RETENTION_MODEL_DIR value; None (baseline-0) for `baseline` or empty."""
    if model_dir is None or str(model_dir).strip() in BASELINE_NAMES:
        return None
    return ModelScorer.load(Path(model_dir))
