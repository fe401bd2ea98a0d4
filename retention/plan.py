"""What the rulebook decides for a customer: a strategy and the plan of interventions."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

Channel = Literal[
    "email", "sms", "phone", "in_app", "csm_task", "internal", "meeting", "webinar", "document"
]
Owner = Literal["csm", "automated", "internal"]


class _Value(BaseModel):
    """Decisions are shared between callers (see rulebook.decide), so nothing may change them."""

    model_config = ConfigDict(frozen=True)


class PlanStep(_Value):
    step_id: str = Field(description="stable within a plan, e.g. g1-03-retention_offer")
    action: str
    at_hours: float = Field(ge=0, description="offset from the start of the plan")
    channel: Channel
    fallback_channel: Channel | None = None
    owner: Owner
    template: str
    success_criteria: str = ""
    escalation_path: str = ""
    source: str = Field(description="the rule that put it in the plan")


class InterventionPlan(_Value):
    strategy: str
    generation: int = Field(default=1, ge=1, description="1 for the first plan, +1 per re-plan")
    steps: list[PlanStep]


class ExitRule(_Value):
    event: str
    outcome: str = Field(description="saved, churned, recovered or exited:<reason>")


class JourneyPolicy(_Value):
    """How a journey ends and when it looks again: the rule set's journey-wide settings."""

    exits: list[ExitRule]
    checkpoint_hours: list[float] = Field(
        default_factory=list, description="plan offsets at which the customer is re-scored"
    )
    observation_hours: float = Field(ge=0, description="how long to watch after the last step")
    recovered_strategy: str | None = Field(
        default=None,
        description="a checkpoint re-score that lands on this strategy ends the journey recovered",
    )
    strategy_order: list[str] = Field(description="every strategy, least to most intensive")

    def outcome_for(self, event_type: str) -> str | None:
        return next((e.outcome for e in self.exits if e.event == event_type), None)


class Decision(_Value):
    strategy: str
    risk_tier: str
    severity_tier: str
    plan: InterventionPlan
    policy: JourneyPolicy
    rules_version: str
    fired_rules: list[str]
