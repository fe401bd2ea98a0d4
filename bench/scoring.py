"""Churn scoring: the scorer end to end against the XGBoost calls it makes, in the same run.

    .venv/bin/python bench/scoring.py [--customers 100000] [--model models/churn-default]

Prints one JSON line:
- end_to_end_per_s: a portfolio scan's scoring, `ModelScorer.score_portfolio` on the whole
  population in one call: snapshots → seed features → calibrated probability, confidence, time
  to churn, severity, top-5 drivers (exact contributions, for the customers at or above the
  model's threshold: the only ones whose drivers a scan shows or keeps) and the rule set's risk
  factors, as arrays; then one validated `ChurnPrediction` (drivers, risk factors, actions), as
  the journey receives it, for each customer the model flags (p >= its threshold), ranked by
  margin, handed out one at a time (`each_prediction`) as a scan starting journeys takes them.
  Health and expansion counts are computed before the clock: they are the assessment's, not the
  scorer's (`health_per_s` says what they cost);
- floor_per_s: the raw XGBoost calls the scorer makes on the same rows, from the ready matrix:
  `inplace_predict` of the classifier (margin) and of the survival model on every row, and the
  exact contributions (`predict(DMatrix, pred_contribs=True)`) of the flagged rows;
- ratio = end to end ÷ floor, the median over alternating rounds (target ≥ 0.5: the project's
  own work at most doubles XGBoost's);
- cpu_ratio: the same with the process's CPU time (all threads) instead of wall time: the work
  done, less swayed by other processes taking the cores (both XGBoost's threads and ours wait
  alike for a core on a busy machine, but the wall clock also counts the waits);
- portfolio_s: seconds to score the whole population end to end;
- flagged: how many customers got a `ChurnPrediction` object;
- all_predictions_per_s, all_predictions_ratio: `ModelScorer.predict`, a `ChurnPrediction`
  for every customer (drivers for the flagged), as a scan page's `assess_customers` builds
  them today (and what end to end measured before 2026-11-26 15:00), timed in the same
  alternating rounds, and its ratio to the floor;
- us_per_customer: where the end to end time goes, each stage timed alone: seed features (the
  one pass over the snapshots included), `ChurnModel.score` (the XGBoost calls plus
  calibration), risk factors (`RiskFlags`), and the rest (top drivers, ranking and the flagged
  customers' `ChurnPrediction` objects).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import xgboost as xgb

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from retention.customer import read_fields  # noqa: E402
from retention.model.features import feature_frame  # noqa: E402
from retention.model.generator import DEFAULT_SNAPSHOT_DATE, generate_population  # noqa: E402
from retention.model.portfolio import gc_paused  # noqa: E402
from retention.model.scorer import SCORED_PATHS, ModelScorer, portfolio_risk  # noqa: E402
from retention.rulebook.loader import load_rulebook  # noqa: E402
from retention.scoring.expansion import expansion_opportunities  # noqa: E402
from retention.scoring.health import score_health  # noqa: E402

ROUNDS = 7


def timed(work: Callable[[], object]) -> float:
    start = time.perf_counter()
    work()
    return time.perf_counter() - start


def timed_both(work: Callable[[], object], cpu: list[float]) -> float:
    """Wall seconds; the process's CPU seconds (every thread's) appended to `cpu`."""
    start = time.process_time()
    wall = timed(work)
    cpu.append(time.process_time() - start)
    return wall


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=100_000)
    parser.add_argument("--model", type=Path, default=ROOT / "models" / "churn-default")
    args = parser.parse_args()
    n = args.customers
    rulebook = load_rulebook(ROOT / "rules")
    scorer = ModelScorer.load(args.model)
    customers = generate_population(n, seed=1).customers
    at = datetime.combine(DEFAULT_SNAPSHOT_DATE, datetime.min.time(), UTC)
    start = time.perf_counter()
    healths = [score_health(c, at, rulebook.scoring.health) for c in customers]
    counts = [len(expansion_opportunities(c, rulebook.expansion)) for c in customers]
    health_s = time.perf_counter() - start
    policy, as_of = rulebook.scoring.risk, at.date()
    model = scorer.model
    frame = feature_frame(customers, healths, [as_of] * n, counts)
    matrix = model.matrix(frame)

    def end_to_end() -> int:  # as a scan consumes it: one flagged customer at a time
        portfolio = scorer.score_portfolio(customers, healths, counts, policy, as_of)
        return sum(1 for _ in portfolio.each_prediction(portfolio.at_risk()))

    def every_prediction() -> None:
        scorer.predict(customers, healths, counts, policy, as_of)

    rows = np.flatnonzero(model.score(frame).flagged)
    flagged_matrix = matrix.iloc[rows]

    def floor() -> None:
        model.classifier.inplace_predict(matrix, predict_type="margin")
        model.survival.inplace_predict(matrix)
        model.classifier.predict(
            xgb.DMatrix(flagged_matrix, enable_categorical=True), pred_contribs=True
        )

    flagged = end_to_end()  # warm up outside the clock
    assert flagged == len(rows)
    floor_times, full_times, all_times, floor_cpu, full_cpu = [], [], [], [], []
    for _ in range(ROUNDS):  # alternating, so drifting machine noise hits all alike
        floor_times.append(timed_both(floor, floor_cpu))
        full_times.append(timed_both(end_to_end, full_cpu))
        all_times.append(timed(every_prediction))
    ratios = [f / e for f, e in zip(floor_times, full_times, strict=True)]
    all_ratios = [f / e for f, e in zip(floor_times, all_times, strict=True)]
    cpu_ratios = [f / e for f, e in zip(floor_cpu, full_cpu, strict=True)]
    full_s, floor_s = statistics.median(full_times), statistics.median(floor_times)
    all_s = statistics.median(all_times)
    fields = read_fields(customers, SCORED_PATHS)
    table = feature_frame(customers, healths, [as_of] * n, counts, fields)

    def features() -> None:
        feature_frame(customers, healths, [as_of] * n, counts, read_fields(customers, SCORED_PATHS))

    with gc_paused():  # as the scorer runs them
        stages = {
            "features": timed(features),
            "model_score": timed(lambda: model.score(table)),
            "risk_factors": timed(lambda: portfolio_risk(customers, policy, fields, table)),
        }
    stages["drivers_and_objects"] = max(0.0, full_s - sum(stages.values()))
    print(
        json.dumps(
            {
                "bench": "scoring",
                "customers": n,
                "model": scorer.version,
                "trees": model.classifier.num_boosted_rounds(),
                "end_to_end_per_s": round(n / full_s),
                "floor_per_s": round(n / floor_s),
                "ratio": round(statistics.median(ratios), 3),
                "cpu_ratio": round(statistics.median(cpu_ratios), 3),
                "portfolio_s": round(full_s, 2),
                "flagged": flagged,
                "all_predictions_per_s": round(n / all_s),
                "all_predictions_ratio": round(statistics.median(all_ratios), 3),
                "health_per_s": round(n / health_s),
                "us_per_customer": {k: round(1e6 * v / n, 1) for k, v in stages.items()},
            }
        )
    )


if __name__ == "__main__":
    main()
