"""The shape of `rules/*.yaml`: what a rule author may write, validated field by field."""

from __future__ import annotations

import re
from typing import Annotated, Any, cast, get_args

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, SkipValidation, model_validator

from retention.health import HealthPolicy
from retention.plan import Channel, Owner
from retention.risk import RiskPolicy
from retention.rulebook.conditions import Condition, parse_condition

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([hdw])\s*$")
_HOURS_PER_UNIT = {"h": 1.0, "d": 24.0, "w": 168.0}


def parse_hours(value: object) -> float:
    """`immediate`, `24h`, `3d`, `1w` (or a number of hours) → hours."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        hours = float(value)
    elif value == "immediate":
        hours = 0.0
    elif isinstance(value, str) and (match := _DURATION.match(value)):
        hours = float(match.group(1)) * _HOURS_PER_UNIT[match.group(2)]
    else:
        raise ValueError(f"expected immediate or a duration like 24h, 3d, 1w; got {value!r}")
    if hours < 0:
        raise ValueError("a duration cannot be negative")
    return hours


Hours = Annotated[float, BeforeValidator(parse_hours)]


class DecisionFacts(BaseModel):
    """The facts a rule's `when` can compare: one customer, as assessed now."""

    model_config = ConfigDict(extra="forbid")

    churn_probability: float
    severity_value: float
    health_score: float
    annual_contract_value: float
    days_since_last_login: int
    usage_decline: float
    nps: int | None
    segment: str
    plan: str
    champion_status: str
    product_usage_score: float
    engagement_score: float
    support_score: float
    financial_score: float
    relationship_score: float
    health_trend: str
    health_status: str
    time_to_churn_days: int | None
    prediction_confidence: float
    risk_factor_count: int
    top_risk_factor: str | None


class _Rule(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Intervention(_Rule):
    action: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    at: Hours
    every: Hours | None = None
    times: int = Field(default=1, ge=1, le=52)
    owner: Owner
    channel: Channel
    fallback: Channel | None = None
    template: str | None = None
    success: str = ""
    escalation: str = ""

    @model_validator(mode="after")
    def _repeat_needs_interval(self) -> Intervention:
        if self.times > 1 and not self.every:
            raise ValueError("times > 1 needs `every`")
        return self


def _kind(annotation: Any) -> type:
    """float, int or str: the type a fact's comparisons must use (None means absent)."""
    kinds = [a for a in get_args(annotation) if a is not type(None)] or [annotation]
    return cast(type, kinds[0])


FACT_KINDS = {name: _kind(f.annotation) for name, f in DecisionFacts.model_fields.items()}
When = Annotated[
    SkipValidation[Condition], BeforeValidator(lambda raw: parse_condition(raw, FACT_KINDS))
]


class _Conditional(_Rule):
    name: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    when: When


class Strategy(_Conditional):
    risk_tier: str
    interventions: list[Intervention] = Field(min_length=1)


class SeverityTier(_Conditional):
    """A band of severity (churn probability x annual contract value)."""


class StrategiesFile(_Rule):
    strategies: list[Strategy] = Field(min_length=1)


class TimelinesFile(_Rule):
    severity_tiers: list[SeverityTier] = Field(min_length=1)
    timelines: dict[str, list[Intervention]] = Field(default_factory=dict)


class Exit(_Rule):
    event: str
    outcome: str = Field(pattern=r"^(saved|churned|recovered|exited:[a-z_]+)$")


class JourneyFile(_Rule):
    exits: list[Exit] = Field(default_factory=list)
    checkpoints: list[Hours] = Field(default_factory=list)
    recovered_strategy: str | None = None
    observation: Hours = 0.0


class ScoringFile(_Rule):
    """`scoring.yaml`: the numbers behind the health score and the risk factors."""

    health: HealthPolicy
    risk: RiskPolicy
