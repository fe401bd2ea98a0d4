"""Assess a customer: load, apply what happened since, score everything, record."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal

from pydantic import BaseModel, Field
from sqlalchemy import Engine
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.counters import count
from retention.customer import CustomerEvent, CustomerSnapshot
from retention.errors import CustomerNotFound
from retention.events import EventEffects, apply_effects, fold_events
from retention.rulebook.source import RulebookSource
from retention.runtime.metrics import ASSESSMENTS
from retention.scoring.assessment import Assessment, ChurnScorer, assess_customer
from retention.scoring.sentiment import InteractionScorer, vader_score
from retention.store.records import journey_snapshot, load_customer, record_assessment
from retention.store.tables import DecisionRow

# where a journey's snapshot came from: kept under its key, in the request, or the customers table
SnapshotSource = Literal["kept", "given", "loaded"]


@dataclass(frozen=True)
class Scored:
    assessment: Assessment
    keep: tuple[str, CustomerSnapshot] | None = None  # a journey key and its snapshot to keep


class AssessInput(BaseModel):
    journey_id: str
    customer_id: str
    customer: CustomerSnapshot | None = Field(
        default=None, description="None: the one kept under `journey_key`, else load by id"
    )
    journey_key: str | None = Field(
        default=None, description="keep the snapshot scored from under this journey's key"
    )
    effects: EventEffects = Field(
        default_factory=EventEffects, description="what the journey's events did, folded"
    )
    events: list[CustomerEvent] = Field(
        default_factory=list, description="as journeys sent them before folding; folded here"
    )
    elapsed_hours: float = Field(default=0, ge=0, description="journey time since the snapshot")
    upstream_churn_probability: float | None = None


class AssessActivities:
    def __init__(
        self,
        engine: Engine,
        rulebooks: RulebookSource,
        scorer: ChurnScorer | None = None,
        sentiment: InteractionScorer = vader_score,
    ) -> None:
        """`scorer`: the trained churn model the worker loaded; None scores with baseline-0.
        `sentiment`: the interaction scorer the worker loaded (RETENTION_SENTIMENT_MODEL)."""
        self._engine = engine
        self._rulebooks = rulebooks
        self._scorer = scorer
        self._sentiment = sentiment

    @activity.defn(name="assess")
    def assess(self, request: AssessInput) -> Assessment:
        scored = self.score(request)
        self.record(request, scored)
        return scored.assessment

    def score(self, request: AssessInput) -> Scored:
        """Assess without recording: `record` writes it, with what a caller decided from it."""
        customer, source = self._snapshot(request)
        effects = fold_events(request.events) if request.events else request.effects
        now = apply_effects(customer, effects, request.elapsed_hours)
        assessment = assess_customer(
            now,
            self._rulebooks.current(),  # the rule set in force scores too
            datetime.now(UTC),
            request.upstream_churn_probability,
            self._scorer,
            self._sentiment,
        )
        # kept so the journey's later activities name it by key: the first assessment's
        keep = (request.journey_key, customer) if request.journey_key and source != "kept" else None
        if source == "loaded":
            assessment.loaded = customer  # the journey keeps it and applies events to it
        return Scored(assessment, keep)

    def record(
        self, request: AssessInput, scored: Scored, decision: DecisionRow | None = None
    ) -> None:
        """One transaction under the activity's attempt key: a retry records nothing twice."""
        assessment = scored.assessment
        record_assessment(
            self._engine, request.journey_id, assessment, attempt_key(), scored.keep, decision
        )
        count(ASSESSMENTS, model_version=assessment.prediction.model_version)

    def _snapshot(self, request: AssessInput) -> tuple[CustomerSnapshot, SnapshotSource]:
        """The snapshot to score from, and where it came from."""
        key = request.journey_key
        if request.customer is None and key and (kept := journey_snapshot(self._engine, key)):
            return kept, "kept"
        if request.customer is not None:
            return request.customer, "given"
        return self._load(request.customer_id), "loaded"

    def _load(self, customer_id: str) -> CustomerSnapshot:
        try:
            return load_customer(self._engine, customer_id)
        except CustomerNotFound as exc:
            raise ApplicationError(str(exc), type="CustomerNotFound", non_retryable=True) from exc


def attempt_key() -> str | None:
    """The running activity's identity, the same for each of its retries (None outside one: a
    test calling the method directly)."""
    if not activity.in_activity():
        return None
    info = activity.info()
    return f"{info.workflow_id}/{info.workflow_run_id}/{info.activity_id}"
