"""Ask the rule set what to do for an assessed customer."""

from __future__ import annotations

from pydantic import BaseModel, Field
from sqlalchemy import Engine
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.assess import attempt_key
from activities.counters import count
from retention.errors import RulebookError
from retention.plan import Decision, JourneyContext
from retention.rulebook.decide import FIRST_DECISION, decide, decision_facts
from retention.rulebook.source import RulebookSource
from retention.runtime.metrics import RULE_DECISIONS
from retention.scoring.assessment import Assessment
from retention.store.decisions import decision_row, record_decision
from retention.store.tables import DecisionRow


class DecideInput(BaseModel):
    assessment: Assessment
    generation: int = Field(default=1, ge=1)
    escalate_from: str | None = Field(default=None, description="force a strategy above this")
    journey: JourneyContext = Field(default=FIRST_DECISION, description="the journey so far")


class DecideActivities:
    def __init__(self, rulebooks: RulebookSource, engine: Engine) -> None:
        self._rulebooks = rulebooks
        self._engine = engine

    @activity.defn(name="decide")
    def decide(self, request: DecideInput) -> Decision:
        """For journeys that began before scoring and deciding were one activity (rescore.py):
        their decision is recorded here, named by the journey's workflow id."""
        decision = self.choose(request)
        if activity.in_activity() and (journey_id := activity.info().workflow_id):
            # the input does not carry the journey key
            record_decision(self._engine, decision_record(decision, request, journey_id, None))
        return decision

    def choose(self, request: DecideInput) -> Decision:
        """The rule set's decision, recorded by the caller."""
        facts = decision_facts(request.assessment, request.journey)
        try:
            decision = decide(
                self._rulebooks.current(),
                facts,
                generation=request.generation,
                escalate_from=request.escalate_from,
            )
        except RulebookError as exc:
            raise ApplicationError(str(exc), type="RulebookError", non_retryable=True) from exc
        count(RULE_DECISIONS, strategy=decision.strategy, rules_version=decision.rules_version)
        return decision


def decision_record(
    decision: Decision, request: DecideInput, journey_id: str, journey_key: str | None
) -> DecisionRow:
    """The row of a decision the running activity made (its attempt key names it)."""
    return decision_row(
        decision,
        customer_id=request.assessment.customer.customer_id,
        journey_id=journey_id,
        journey_key=journey_key,
        current=request.journey.strategy,
        escalate_from=request.escalate_from,
        key=attempt_key(),
    )
