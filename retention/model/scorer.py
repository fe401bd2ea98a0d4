"""The churn scorer a worker holds: a trained model turning assessed customers into the
`ChurnPrediction`s a journey receives.

- `load_scorer(model_dir)`: the model in a folder `model train` wrote (read from disk, never
  downloaded), or None for `baseline-0` (`RETENTION_MODEL_DIR=baseline` or empty). A model whose
  spec names a column the snapshot cannot provide (anything but the sixteen seed features: a
  model trained on a team's own columns) is refused here, naming the columns, so a worker fails
  at start, not at the first journey. Also the function a later model-retrain schedule calls to
  pick up a promoted model.
- `ModelScorer.score_portfolio(...)`: many customers in one call (one XGBoost call per model for
  the whole batch), as arrays, with `ChurnPrediction`s built only for the customers asked for
  (a portfolio scan: the flagged ones; see portfolio.py); `predict(...)` builds every
  customer's; `predict_one` for the assess activity.

A prediction: the calibrated probability, the model's confidence, time to churn (the survival
model's median), severity_value = p x annual contract value, the rule set's risk factors and
their actions (as `baseline-0` has them), and the top drivers: the classifier's own
per-prediction contributions to its margin (log-odds; exact TreeSHAP, see predict.py), largest
first, with the bias in `driver_bias` (bias + every contribution = margin). A batch computes
them for the customers at or above the model's threshold only (a portfolio scan shows and keeps
no others'); `predict_one`, a journey's own assessment, always.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from retention.customer import CustomerSnapshot, read_fields
from retention.errors import InvalidInput
from retention.model.features import SNAPSHOT_PATHS, feature_frame
from retention.model.persist import load_model
from retention.model.portfolio import (
    PROBABILITY_DECIMALS,
    DriverSource,
    ScoredPortfolio,
    gc_paused,
)
from retention.model.predict import ChurnModel, Explained
from retention.scoring.health import HealthScore
from retention.scoring.risk import (
    RISK_METRICS,
    SEED_FEATURES,
    ChurnPrediction,
    RiskFlags,
    RiskMetric,
    RiskPolicy,
)

TOP_DRIVERS = 5
# The risk metrics read straight from the snapshot, and every path a portfolio's one pass reads
RISK_READS: dict[RiskMetric, str] = {
    name: metric.path for name, metric in RISK_METRICS.items() if name != "usage_decline"
}
SCORED_PATHS = tuple(dict.fromkeys([*SNAPSHOT_PATHS, *RISK_READS.values()]))
BASELINE_NAMES = frozenset({"", "baseline", "baseline-0"})


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

    @classmethod
    def load(cls, folder: Path, *, top: int = TOP_DRIVERS) -> ModelScorer:
        model, card = load_model(folder)
        return cls(model, card.model_version, top=top, where=str(folder))

    def score_portfolio(
        self,
        snapshots: Sequence[CustomerSnapshot],
        healths: Sequence[HealthScore],
        expansion_counts: Sequence[int | None],
        policy: RiskPolicy,
        as_of: date,
        explain: Explained = "flagged",
    ) -> ScoredPortfolio:
        """Every customer scored as of `as_of`, as arrays (see portfolio.py), with the drivers
        of those `explain` names."""
        with gc_paused():
            # One pass over the snapshots for the features and the risk metrics alike
            fields = read_fields(snapshots, SCORED_PATHS)
            dates = [as_of] * len(snapshots)
            table = feature_frame(snapshots, healths, dates, expansion_counts, fields)
            scores = self.model.score(table)
            risk = portfolio_risk(snapshots, policy, fields, table)
            value = table["contract_value"].to_numpy()
        probability = np.round(scores.probability, PROBABILITY_DECIMALS)
        return ScoredPortfolio(
            model_version=self.version,
            threshold=self.model.threshold,
            margin=scores.margin,
            flagged=scores.flagged,
            probability=probability,
            confidence=scores.confidence,
            time_to_churn_days=np.rint(scores.time_to_churn_days).astype(int),
            severity_value=np.round(probability * value, 2),
            explained=scores.flagged
            if explain == "flagged"
            else np.full(len(table), explain == "all"),
            drivers=DriverSource(self.model, scores.matrix, self.top),
            risk=risk,
        )

    def predict(
        self,
        snapshots: Sequence[CustomerSnapshot],
        healths: Sequence[HealthScore],
        expansion_counts: Sequence[int | None],
        policy: RiskPolicy,
        as_of: date,
        explain: Explained = "flagged",
    ) -> list[ChurnPrediction]:
        """One prediction per customer, index for index, as of `as_of`."""
        portfolio = self.score_portfolio(
            snapshots, healths, expansion_counts, policy, as_of, explain
        )
        return portfolio.predictions()

    def predict_one(
        self,
        snapshot: CustomerSnapshot,
        health: HealthScore,
        expansion_count: int | None,
        policy: RiskPolicy,
        as_of: date,
    ) -> ChurnPrediction:
        """A journey's own assessment: its drivers are shown and kept, flagged or not."""
        return self.predict([snapshot], [health], [expansion_count], policy, as_of, "all")[0]


def portfolio_risk(
    snapshots: Sequence[CustomerSnapshot],
    policy: RiskPolicy,
    fields: Mapping[str, Sequence[Any]],
    table: pd.DataFrame,
) -> RiskFlags:
    """The risk flags from what the portfolio's one pass read (`SCORED_PATHS`) and its features."""
    known: dict[RiskMetric, Sequence[Any]] = {m: fields[path] for m, path in RISK_READS.items()}
    # usage_decline is a computed property: the seed features computed it already
    known["usage_decline"] = table["usage_decline"].to_numpy()
    return RiskFlags.of(snapshots, policy, known)


def load_scorer(model_dir: str | Path | None) -> ModelScorer | None:
    """The scorer for a RETENTION_MODEL_DIR value; None (baseline-0) for `baseline` or empty."""
    if model_dir is None or str(model_dir).strip() in BASELINE_NAMES:
        return None
    return ModelScorer.load(Path(model_dir))
