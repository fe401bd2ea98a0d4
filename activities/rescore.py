"""A journey's re-score: assess the customer and ask the rule set what to do, in one activity.

One activity rather than two halves the round trips of every checkpoint, and the journey's
history holds the scores and the decision, not the whole assessment it was made from.
"""

from __future__ import annotations

from pydantic import BaseModel, Field
from temporalio import activity

from activities.assess import AssessActivities, AssessInput
from activities.decide import DecideActivities, DecideInput
from retention.assessment import JourneyScores
from retention.customer import CustomerSnapshot
from retention.plan import Decision, JourneyContext
from retention.rulebook.decide import FIRST_DECISION


class RescoreInput(BaseModel):
    assess: AssessInput
    generation: int = Field(default=1, ge=1)
    escalate_from: str | None = Field(default=None, description="force a strategy above this")
    journey: JourneyContext = Field(default=FIRST_DECISION, description="the journey so far")


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
        assessment = self._assessing.assess(request.assess)
        decision = self._deciding.decide(
            DecideInput(
                assessment=assessment,
                generation=request.generation,
                escalate_from=request.escalate_from,
                journey=request.journey,
            )
        )
        return Rescored(
            scores=JourneyScores.of(assessment), decision=decision, loaded=assessment.loaded
        )
