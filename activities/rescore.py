"""A journey's re-score: assess the customer and ask the rule set what to do, in one activity.

One activity rather than two halves the round trips of every checkpoint, and the journey's
history holds the scores and the decision, not the whole assessment it was made from. A plan
the journey will not adopt (it keeps its strategy, or ends recovered) comes back with only the
steps of campaigns that start now: the rest would be history the journey never reads.
"""

from __future__ import annotations

from pydantic import BaseModel, Field
from temporalio import activity

from activities.assess import AssessActivities, AssessInput
from activities.decide import DecideActivities, DecideInput, decision_record
from retention.customer import CustomerSnapshot
from retention.plan import Decision, JourneyContext
from retention.rulebook.decide import FIRST_DECISION
from retention.scoring.assessment import JourneyScores


class RescoreInput(BaseModel):
    assess: AssessInput
    generation: int = Field(default=1, ge=1)
    escalate_from: str | None = Field(default=None, description="force a strategy above this")
    journey: JourneyContext = Field(default=FIRST_DECISION, description="the journey so far")
    campaigns_started: list[str] = Field(
        default_factory=list, description="campaigns the journey has started, which run once"
    )


class Rescored(BaseModel):
    scores: JourneyScores
    decision: Decision
    loaded: CustomerSnapshot | None = Field(
        default=None, description="the snapshot as loaded from the database, before any event"
    )


class RescoreActivities:
    def __init__(self, assessing: AssessActivities, deciding: DecideActivities) -> None:
        self._assessing = assessing
        self._deciding = deciding

    @activity.defn(name="assess_and_decide")
    def assess_and_decide(self, request: RescoreInput) -> Rescored:
        """Scores and decision written in one transaction, once however often it is retried."""
        scored = self._assessing.score(request.assess)
        assessment = scored.assessment
        asked = DecideInput(
            assessment=assessment,
            generation=request.generation,
            escalate_from=request.escalate_from,
            journey=request.journey,
        )
        decision = self._deciding.choose(asked)
        journey = request.assess
        row = decision_record(decision, asked, journey.journey_id, journey.journey_key)
        self._assessing.record(journey, scored, row)
        return Rescored(
            scores=JourneyScores.of(assessment),
            decision=_what_the_journey_reads(decision, request),
            loaded=assessment.loaded,
        )


def _what_the_journey_reads(decision: Decision, request: RescoreInput) -> Decision:
    current = request.journey.strategy
    assert decision.policy is not None  # the rule set's, as decided
    recovered = decision.policy.recovered_strategy
    if request.generation > 1:
        decision = decision.model_copy(update={"policy": None})  # the journey keeps its first
    if current is None or decision.strategy not in (current, recovered):
        return decision  # a new plan: every step
    new = set(decision.campaigns) - set(request.campaigns_started)
    steps = [step for step in decision.plan.steps if step.campaign in new]
    return decision.model_copy(update={"plan": decision.plan.model_copy(update={"steps": steps})})
