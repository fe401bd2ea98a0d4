"""The shape of `rules/*.yaml`: what a rule author may write, validated field by field."""

from __future__ import annotations

import re
from datetime import time
from typing import Annotated, Any, cast, get_args, get_origin, get_type_hints

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    SkipValidation,
    TypeAdapter,
    model_validator,
    with_config,
)
from typing_extensions import TypedDict  # pydantic needs this one before Python 3.12

from retention.plan import (
    CUSTOMER_CHANNELS,
    PRIMARY,
    Addressee,
    Addressing,
    Channel,
    Owner,
    RecipientChoice,
)
from retention.rulebook.conditions import Condition, parse_condition
from retention.scoring.health import HealthPolicy
from retention.scoring.risk import RiskPolicy

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*$")
_HOURS_PER_UNIT = {"s": 1 / 3600, "m": 1 / 60, "h": 1.0, "d": 24.0, "w": 168.0}


def parse_hours(value: object) -> float:
    """`immediate`, `24h`, `3d`, `1w`, `90s`, `15m` (or a number of hours) → hours."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        hours = float(value)
    elif value == "immediate":
        hours = 0.0
    elif isinstance(value, str) and (match := _DURATION.match(value)):
        hours = float(match.group(1)) * _HOURS_PER_UNIT[match.group(2)]
    else:
        raise ValueError(
            f"expected immediate or a duration like 24h, 3d, 1w, 15m, 90s; got {value!r}"
        )
    if hours < 0:
        raise ValueError("a duration cannot be negative")
    return hours


Hours = Annotated[float, BeforeValidator(parse_hours)]
_CLOCK = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)$")


def parse_clock(value: object) -> time:
    """`"21:00"` → 21:00. Unquoted, YAML reads 21:00 as a number (1260), hence the hint."""
    if isinstance(value, str) and (match := _CLOCK.match(value.strip())):
        return time(int(match.group(1)), int(match.group(2)))
    if isinstance(value, int) and not isinstance(value, bool):
        raise ValueError('write the time in quotes, e.g. "21:00" (unquoted it reads as a number)')
    raise ValueError(f'expected a time of day like "21:00" or "08:30"; got {value!r}')


ClockTime = Annotated[time, BeforeValidator(parse_clock)]


@with_config(ConfigDict(extra="forbid"))
class DecisionFacts(TypedDict):
    """The facts a rule's `when` can compare: one customer, as assessed now, and the journey.

    A plain dict on the decision path (one is built per customer, 100,000 in a portfolio scan);
    `validate_facts` checks one that comes from outside, e.g. a rule author's test case.
    """

    customer_id: str
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
    risk_factors: list[str]
    model_drivers: list[str]
    top_driver: str | None
    health_alerts: list[str]
    feature_adoption: float
    active_users: int
    max_users: int
    seat_utilisation: float | None
    tenure_days: int | None
    onboarding_progress: float | None
    sentiment_overall: float | None
    sentiment_recent: float | None
    sentiment_change: float | None
    sentiment_trend: str | None
    sentiment_alerts: list[str]
    emotions: list[str]
    expansion_opportunities: list[str]
    expansion_value: float
    top_expansion: str | None
    recent_events: list[str]
    logins_last_7d: int
    journey_strategy: str | None
    journey_stage: str
    steps_done: int
    days_running: float
    plan_generation: int


class _Rule(BaseModel):
    model_config = ConfigDict(extra="forbid")


def _each_once(roles: list[Addressee]) -> list[Addressee]:
    twice = sorted({role for role in roles if roles.count(role) > 1})
    if twice:
        raise ValueError(f"{', '.join(twice)} listed twice")
    return roles


Addressees = Annotated[list[Addressee], Field(min_length=1), AfterValidator(_each_once)]


class AddressedRule(_Rule):
    """A step's people: `to` roles, `one` or `every` of them, and whom to try when none is
    reachable (None: the rule set's `fallback_to`, in journey.yaml)."""

    to: Addressees = Field(default_factory=lambda: [PRIMARY])
    recipients: RecipientChoice = "one"
    fallback_to: Addressees | None = None

    def addressing(self, fallback_to: list[Addressee]) -> Addressing:
        """As written, with the rule set's `fallback_to` unless the step names its own."""
        own = self.fallback_to
        return Addressing(
            to=self.to, recipients=self.recipients, fallback_to=fallback_to if own is None else own
        )


class Intervention(AddressedRule):
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
    due: Hours | None = Field(
        default=None, gt=0, description="how long the CSM has for its task; journey.yaml's"
    )

    @model_validator(mode="after")
    def _repeat_needs_interval(self) -> Intervention:
        if self.times > 1 and not self.every:
            raise ValueError("times > 1 needs `every`")
        return self


def _kind(annotation: Any) -> type:
    """float, int, str or list: the type a fact's comparisons must use (None means absent)."""
    if get_origin(annotation) is list:
        return list
    kinds = [a for a in get_args(annotation) if a is not type(None)] or [annotation]
    return cast(type, kinds[0])


FACT_KINDS = {name: _kind(annotation) for name, annotation in get_type_hints(DecisionFacts).items()}
validate_facts = TypeAdapter(DecisionFacts).validate_python
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


class Holdout(_Rule):
    """A deterministic share of eligible customers whose journeys run and record, but send
    nothing: the comparison group that turns "retained" into measured lift."""

    share: float = Field(ge=0, le=0.5)
    salt: str = Field(min_length=1, description="change it to draw a new holdout group")
    eligible: When | None = None


class OfferValue(_Rule):
    share_of_contract: float = Field(gt=0, le=1)
    scale_by_probability: bool = True
    minimum: float = Field(default=0, ge=0)
    maximum: float | None = Field(default=None, gt=0)
    round_to: float = Field(default=10, gt=0)

    @model_validator(mode="after")
    def _ordered(self) -> OfferValue:
        if self.maximum is not None and self.minimum > self.maximum:
            raise ValueError("minimum cannot be more than maximum")
        return self


class OfferExpiry(_Rule):
    share_of_time_to_churn: float = Field(gt=0, le=1)
    min_days: int = Field(ge=1)
    max_days: int = Field(ge=1)

    @model_validator(mode="after")
    def _ordered(self) -> OfferExpiry:
        if self.min_days > self.max_days:
            raise ValueError("min_days cannot be more than max_days")
        return self


class Offer(_Conditional):
    type: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    value: OfferValue
    duration_months: int = Field(ge=1, le=36)
    conditions: list[str] = Field(default_factory=list)
    expiry: OfferExpiry


class OffersFile(_Rule):
    attach_to: list[str] = Field(default_factory=list, description="actions carrying the offer")
    offers: list[Offer] = Field(default_factory=list)


class CampaignMessage(AddressedRule):
    at: Hours
    template: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    subject: str = Field(min_length=1)
    cta: str = Field(min_length=1)
    channel: Channel = "email"
    fallback: Channel | None = "in_app"


class CampaignExitRule(_Rule):
    event: str
    at_least: int = Field(default=1, ge=1)
    within: Hours | None = None
    reason: str = Field(pattern=r"^[a-z][a-z0-9_]*$")


class EventTrigger(_Rule):
    event: str
    data: dict[str, list[str | int]] = Field(default_factory=dict)


class Campaign(_Rule):
    name: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    when: When | None = None
    on_event: EventTrigger | None = None
    owner: Owner = "automated"
    success: str = ""
    escalation: str = ""
    messages: list[CampaignMessage] = Field(min_length=1)
    exits: list[CampaignExitRule] = Field(default_factory=list)

    @model_validator(mode="after")
    def _one_trigger(self) -> Campaign:
        if (self.when is None) == (self.on_event is None):
            raise ValueError("give exactly one of `when` (at a decision) or `on_event`")
        return self


class CampaignsFile(_Rule):
    campaigns: list[Campaign] = Field(default_factory=list)


class Exit(_Rule):
    event: str
    outcome: str = Field(pattern=r"^(saved|churned|recovered|exited:[a-z_]+)$")


class FrequencyCapRule(_Rule):
    at_most: int = Field(ge=1)
    per: Hours = Field(gt=0)


def _customer_channels() -> list[Channel]:
    return list(CUSTOMER_CHANNELS)


class QuietHoursRule(_Rule):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    start: ClockTime = Field(alias="from")
    end: ClockTime = Field(alias="to")
    channels: list[Channel] = Field(default_factory=_customer_channels, min_length=1)

    @model_validator(mode="after")
    def _not_empty(self) -> QuietHoursRule:
        if self.start == self.end:
            raise ValueError("`from` and `to` must differ")
        return self


class ScanRule(_Rule):
    """Whom the portfolio scan starts a journey for: a customer whose decided strategy is not
    skipped and, when given, for whom `start_journey_when` holds too."""

    skip_strategies: list[str] | None = Field(
        default=None, description="None: the least intensive strategy (the last listed)"
    )
    start_journey_when: When | None = None


class JourneyFile(_Rule):
    exits: list[Exit] = Field(default_factory=list)
    fallback_to: Addressees = Field(
        default_factory=lambda: [PRIMARY], description="whom a step tries when `to` reaches none"
    )
    checkpoints: list[Hours] = Field(default_factory=list)
    recovered_strategy: str | None = None
    observation: Hours = 0.0
    csm_task_due: Hours | None = Field(
        default=None, gt=0, description="a CSM task's due time; None: a rule set from before"
    )
    holdout: Holdout | None = None
    frequency_caps: dict[Channel, FrequencyCapRule] = Field(default_factory=dict)
    quiet_hours: QuietHoursRule | None = None
    scan: ScanRule = Field(default_factory=ScanRule)


class ScoringFile(_Rule):
    """`scoring.yaml`: the numbers behind the health score and the risk factors."""

    health: HealthPolicy
    risk: RiskPolicy
