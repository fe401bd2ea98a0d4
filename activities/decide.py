"""Ask the rule set what to do for an assessed customer."""

from __future__ import annotations

from pydantic import BaseModel, Field
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.counters import count
from retention.errors import RulebookError
from retention.plan import Decision, JourneyContext
from retention.rulebook.decide import FIRST_DECISION, decide, decision_facts
from retention.rulebook.source import RulebookSource
from retention.runtime.metrics import RULE_DECISIONS
from retention.scoring.assessment import Assessment


class DecideInput(BaseModel):
    assessment: Assessment
    generation: int = Field(default=1, ge=1)
    escalate_from: str | None = Field(default=None, description="force a strategy above this")
    journey: JourneyContext = Field(default=FIRST_DECISION, description="the journey so far")


class DecideActivities:
    def __init__(self, rulebooks: RulebookSource) -> None:
        self._rulebooks = rulebooks

    @activity.defn(name="decide")
    def decide(self, request: DecideInput) -> Decision:
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
