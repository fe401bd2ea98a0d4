"""Retraining without surprises: a challenger trained from the database is promoted only when
it is not worse than the champion on the same recent held-out customers.

1. `train_challenger`: the labelled history (retention/model/history.py), oldest first; the most
   recent `holdout_share` of customers (by snapshot date) are held out, the rest train a
   challenger with the usual recipe and card, installed as `models_root/<version>/` by renaming
   a finished temporary folder (never a half-written model).
2. `evaluate_on_holdout`: the challenger and the champion (the newest promoted model, else
   RETENTION_MODEL_DIR, else baseline-0) scored on exactly those held-out customers.
3. `decide`: promoted when the challenger's ROC AUC is at least the champion's minus
   `auc_tolerance` and its calibration error (ECE) at most the champion's plus `ece_tolerance`;
   the decision, both cards and both sets of figures go into `model_versions`.
"""

from __future__ import annotations

import math
import os
import shutil
from datetime import UTC, date, datetime, time
from pathlib import Path
from typing import Any, Literal
from uuid import uuid4

import numpy as np
import pandas as pd
from pydantic import BaseModel, Field
from sqlalchemy import Engine

from retention.errors import InvalidInput
from retention.model.card import ModelCard, build_card
from retention.model.evaluate import Progress, evaluate
from retention.model.history import SOURCE, LabelledHistory, history_table, labelled_history
from retention.model.persist import load_model, save_model
from retention.model.predict import ChurnModel
from retention.model.quality import ModelFigures, false_positive_target, figures
from retention.model.scorer import BASELINE_NAMES
from retention.model.spec import SEED_SPEC, durations, labels
from retention.model.train import train_churn_model
from retention.model.training_data import training_table
from retention.retraining import RetrainDecision
from retention.rulebook.loader import Rulebook
from retention.runtime.settings import Settings
from retention.scoring.health import score_health
from retention.scoring.risk import BASELINE_MODEL_VERSION, baseline_probability, risk_factors
from retention.store.model_versions import promoted_model, record_model_decision
from retention.store.tables import ModelVersionRow

BASELINE_THRESHOLD = 0.5  # baseline-0 has no trained flag threshold


class RetrainPolicy(BaseModel):
    models_root: Path = Field(description="challengers are installed here, one folder each")
    initial_champion: str = Field(description="RETENTION_MODEL_DIR: the champion until a promotion")
    holdout_share: float = Field(default=0.2, gt=0, lt=1)
    auc_tolerance: float = Field(default=0.0, ge=0)
    ece_tolerance: float = Field(default=0.01, ge=0)

    @classmethod
    def from_settings(cls, settings: Settings) -> RetrainPolicy:
        return cls(
            models_root=settings.models_root,
            initial_champion=settings.model_dir,
            holdout_share=settings.model_holdout_share,
            auc_tolerance=settings.model_auc_tolerance,
            ece_tolerance=settings.model_ece_tolerance,
        )


class Challenger(BaseModel):
    version: str
    path: str
    card: dict[str, Any]
    training_rows: int
    holdout_ids: list[str] = Field(description="the held-out customers, most recent snapshots")


class Champion(BaseModel):
    version: str = Field(description="model version, or baseline-0")
    path: str = Field(description="its folder; empty for baseline-0")


class HoldoutFigures(BaseModel):
    rows: int
    challenger: ModelFigures
    champion: ModelFigures
    champion_model: Champion
    champion_card: dict[str, Any] | None = None


# ---- 1. train ---------------------------------------------------------------------------------


def train_challenger(
    engine: Engine,
    rulebook: Rulebook,
    policy: RetrainPolicy,
    *,
    seed: int = 1,
    as_of: date | None = None,
    progress: Progress | None = None,
) -> Challenger:
    say = progress or (lambda _: None)
    history = labelled_history(engine, as_of)
    table = history_table(history, rulebook)
    held = holdout_rows(history, policy.holdout_share)
    training = table.iloc[: len(table) - held].reset_index(drop=True)
    say(f"training on {len(training)} customers, {held} held out")
    target = false_positive_target(rulebook)  # the threshold's rule, as `model train` has it
    model = train_churn_model(training, SEED_SPEC, seed=seed, source=SOURCE, false_positives=target)
    card = build_card(model, training, seed=seed, progress=say, false_positives=target)
    path = install_model(model, card, policy.models_root)
    return Challenger(
        version=card.model_version,
        path=str(path),
        card=card.model_dump(mode="json"),
        training_rows=len(training),
        holdout_ids=history.customer_ids[len(table) - held :],
    )


def holdout_rows(history: LabelledHistory, share: float) -> int:
    """How many of the most recent customers to hold out; both classes must be among them."""
    held = max(1, math.ceil(len(history.customer_ids) * share))
    churned = sum(history.training_set.churned[-held:])
    if churned in (0, held):
        raise InvalidInput(
            f"{SOURCE}: the {held} most recent labelled customers (held out to judge the "
            f"models) are all {'churned' if churned else 'retained'}; a held-out check needs "
            "both (more history, or a larger RETENTION_MODEL_HOLDOUT_SHARE)"
        )
    return held


def install_model(model: ChurnModel, card: ModelCard, models_root: Path) -> Path:
    """`models_root/<version>/`, renamed into place once complete. A folder already holding
    this version (a retried activity: training is deterministic) is kept as it is."""
    target = models_root / card.model_version
    if target.is_dir():
        load_model(target)  # refuses a damaged folder, naming the file
        return target
    partial = models_root / f".{card.model_version}.{uuid4().hex}.partial"
    try:
        save_model(model, card, partial)
        os.rename(partial, target)
    except OSError:
        if not target.is_dir():  # not a concurrent attempt that finished first
            raise
    finally:
        shutil.rmtree(partial, ignore_errors=True)
    return target


# ---- 2. evaluate ------------------------------------------------------------------------------


def current_champion(engine: Engine, initial: str) -> Champion:
    """The newest promoted model, else the initial one (RETENTION_MODEL_DIR), else baseline-0."""
    promoted = promoted_model(engine)
    if promoted is not None:
        return Champion(version=promoted.version, path=promoted.path)
    if initial.strip() in BASELINE_NAMES:
        return Champion(version=BASELINE_MODEL_VERSION, path="")
    _, card = load_model(Path(initial))
    return Champion(version=card.model_version, path=initial)


def evaluate_on_holdout(
    engine: Engine,
    rulebook: Rulebook,
    policy: RetrainPolicy,
    challenger: Challenger,
    *,
    as_of: date | None = None,
) -> HoldoutFigures:
    history = labelled_history(engine, as_of, only=challenger.holdout_ids)
    if sorted(history.customer_ids) != sorted(challenger.holdout_ids):
        raise InvalidInput(
            f"{SOURCE}: {len(challenger.holdout_ids) - len(history.customer_ids)} held-out "
            "customers are gone or no longer labelled since the challenger was trained"
        )
    table = _table(history, rulebook)
    model, _ = load_model(Path(challenger.path))
    champion = current_champion(engine, policy.initial_champion)
    champion_card: dict[str, Any] | None = None
    if champion.path:
        champion_model, card = load_model(Path(champion.path))
        champion_figures = evaluate(champion_model, table, champion_model.spec, SOURCE)
        champion_card = card.model_dump(mode="json")
    else:
        champion_figures = baseline_figures(history, table, rulebook)
    return HoldoutFigures(
        rows=len(table),
        challenger=evaluate(model, table, model.spec, SOURCE),
        champion=champion_figures,
        champion_model=champion,
        champion_card=champion_card,
    )


def _table(history: LabelledHistory, rulebook: Rulebook) -> pd.DataFrame:
    return training_table(history.training_set, rulebook.scoring, expansion=rulebook.expansion)


def baseline_figures(
    history: LabelledHistory, table: pd.DataFrame, rulebook: Rulebook
) -> ModelFigures:
    """baseline-0's figures on the same rows, scored as of each snapshot date."""
    scoring = rulebook.scoring
    ts = history.training_set
    probability = np.array(
        [
            baseline_probability(
                risk_factors(customer, scoring.risk),
                score_health(customer, datetime.combine(day, time(), UTC), scoring.health),
            )
            for customer, day in zip(ts.customers, ts.snapshot_dates, strict=True)
        ]
    )
    return figures(
        labels(table, SEED_SPEC), probability, BASELINE_THRESHOLD, durations(table, SEED_SPEC)
    )


# ---- 3. decide --------------------------------------------------------------------------------


def judge(
    challenger: ModelFigures, champion: ModelFigures, policy: RetrainPolicy
) -> tuple[Literal["promoted", "kept"], str]:
    """Promoted only when not worse on both: AUC and calibration error, within tolerance."""
    auc = f"ROC AUC {challenger.roc_auc:.3f} vs {champion.roc_auc:.3f}"
    ece = f"ECE {challenger.calibration_error:.3f} vs {champion.calibration_error:.3f}"
    worse = []
    if challenger.roc_auc < champion.roc_auc - policy.auc_tolerance:
        worse.append(f"lower {auc} (tolerance {policy.auc_tolerance})")
    if challenger.calibration_error > champion.calibration_error + policy.ece_tolerance:
        worse.append(f"higher {ece} (tolerance {policy.ece_tolerance})")
    if worse:
        return "kept", "challenger worse: " + "; ".join(worse)
    return "promoted", f"challenger not worse: {auc}, {ece}"


def decide(
    engine: Engine,
    policy: RetrainPolicy,
    retrain_id: str,
    challenger: Challenger,
    held_out: HoldoutFigures,
) -> RetrainDecision:
    """Judge, and record the decision with both cards (once per `retrain_id`)."""
    if challenger.version == held_out.champion_model.version:
        decision, reason = "kept", "the challenger is the champion (same model files)"
    else:
        decision, reason = judge(held_out.challenger, held_out.champion, policy)
    row = record_model_decision(
        engine,
        ModelVersionRow(
            retrain_id=retrain_id,
            version=challenger.version,
            path=challenger.path,
            card=challenger.card,
            figures=held_out.challenger.model_dump(mode="json"),
            champion_version=held_out.champion_model.version,
            champion_path=held_out.champion_model.path,
            champion_card=held_out.champion_card,
            champion_figures=held_out.champion.model_dump(mode="json"),
            holdout_rows=held_out.rows,
            decision=decision,
            reason=reason,
        ),
    )
    return decision_of(row)


def decision_of(row: ModelVersionRow) -> RetrainDecision:
    ours = ModelFigures.model_validate(row.figures)
    theirs = ModelFigures.model_validate(row.champion_figures)
    return RetrainDecision(
        version=row.version,
        path=row.path,
        champion_version=row.champion_version,
        decision="promoted" if row.decision == "promoted" else "kept",
        reason=row.reason,
        holdout_rows=row.holdout_rows,
        challenger_auc=ours.roc_auc,
        champion_auc=theirs.roc_auc,
        challenger_ece=ours.calibration_error,
        champion_ece=theirs.calibration_error,
    )
