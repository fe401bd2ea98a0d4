"""Retrain the churn model from the database: train a challenger, judge it beside the
champion on the same held-out customers, record the decision (retention/model/retrain.py)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date

from pydantic import BaseModel, Field
from sqlalchemy import Engine
from temporalio import activity
from temporalio.exceptions import ApplicationError

from retention.errors import InvalidInput
from retention.model.retrain import (
    Challenger,
    HoldoutFigures,
    RetrainDecision,
    RetrainPolicy,
    decide,
    evaluate_on_holdout,
    train_challenger,
)
from retention.rulebook.source import RulebookSource


class TrainInput(BaseModel):
    seed: int = 1
    as_of: date | None = Field(default=None, description="label as of this day; None: today")


class EvaluateInput(BaseModel):
    challenger: Challenger
    as_of: date | None = None


class DecideModelInput(BaseModel):
    retrain_id: str = Field(description="one decision per retrain, however often retried")
    challenger: Challenger
    held_out: HoldoutFigures


class TrainActivities:
    def __init__(self, engine: Engine, rulebooks: RulebookSource, policy: RetrainPolicy) -> None:
        self._engine = engine
        self._rulebooks = rulebooks
        self._policy = policy

    @activity.defn(name="train_challenger")
    def train_challenger(self, request: TrainInput) -> Challenger:
        with _refused_input():
            return train_challenger(
                self._engine,
                self._rulebooks.current(),
                self._policy,
                seed=request.seed,
                as_of=request.as_of,
                progress=activity.heartbeat,  # long work: the server sees it is alive
            )

    @activity.defn(name="evaluate_on_holdout")
    def evaluate_on_holdout(self, request: EvaluateInput) -> HoldoutFigures:
        with _refused_input():
            return evaluate_on_holdout(
                self._engine,
                self._rulebooks.current(),
                self._policy,
                request.challenger,
                as_of=request.as_of,
            )

    @activity.defn(name="decide_promotion")
    def decide_promotion(self, request: DecideModelInput) -> RetrainDecision:
        return decide(
            self._engine, self._policy, request.retrain_id, request.challenger, request.held_out
        )


@contextmanager
def _refused_input() -> Iterator[None]:
    """Too little history or a broken model folder will not improve by retrying."""
    try:
        yield
    except InvalidInput as exc:
        raise ApplicationError(str(exc), type="InvalidInput", non_retryable=True) from exc
