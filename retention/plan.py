"""What the rulebook decides for a customer: a strategy and the plan of interventions."""

from __future__ import annotations

import copy
from collections import Counter
from collections.abc import Callable, Iterable
from datetime import time
from functools import cache
from typing import Any, Literal, get_args

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SerializationInfo,
    SerializerFunctionWrapHandler,
    ValidationInfo,
    model_serializer,
    model_validator,
)
from pydantic_core import to_jsonable_python

from retention.compact import EVERY_FIELD

Channel = Literal[
    "email", "sms", "phone", "in_app", "csm_task", "internal", "meeting", "webinar", "document"
]
Owner = Literal["csm", "automated", "internal"]
# Channels that reach the customer: the ones an unsubscribe can stop. CSM work never is.
CustomerChannel = Literal["email", "sms", "phone", "in_app"]
CUSTOMER_CHANNELS: tuple[CustomerChannel, ...] = ("email", "sms", "phone", "in_app")
DEFAULT_UNSUBSCRIBE_CHANNEL: CustomerChannel = "email"
# Here rather than beside `Contact`: a plan step names the roles it goes to, and the customer
# module builds on this one.
ContactRole = Literal["executive_sponsor", "champion", "admin", "billing", "user"]
CONTACT_ROLES: tuple[ContactRole, ...] = get_args(ContactRole)
# Whom a step goes to: the people holding a role, or `primary`, the profile's person
# (`CustomerSnapshot.primary_contact`), whom every message went to before steps named roles.
Addressee = Literal[ContactRole, "primary"]
PRIMARY: Addressee = "primary"
RecipientChoice = Literal["one", "every"]


class _Value(BaseModel):
    """Decisions are shared between callers (see rulebook.decide), so nothing may change them."""

    model_config = ConfigDict(frozen=True)


class _Compact(_Value):
    """Serialised to JSON without the fields at their defaults, which decode back the same: plan
    steps travel in many workflow payloads (a journey's history, bench/journey_cost.py)."""

    @model_serializer(mode="wrap")
    def _without_defaults(
        self, handler: SerializerFunctionWrapHandler, info: SerializationInfo
    ) -> Any:
        data = handler(self)
        if not info.mode_is_json() or (info.context or {}).get(EVERY_FIELD):
            return data
        defaults = _defaults(type(self))
        return {k: v for k, v in data.items() if k not in defaults or v != defaults[k]}


@cache
def _defaults(model: type[BaseModel]) -> dict[str, Any]:
    """The model's defaults as they serialise."""
    values = {
        name: field.get_default(call_default_factory=True)
        for name, field in model.model_fields.items()
        if not field.is_required()
    }
    return {name: to_jsonable_python(value) for name, value in values.items()}


class Addressing(_Compact):
    """Whom a step goes to (`retention.recipients` turns it into people): the first reachable
    person of `to`, or every one; when none is reachable, the first role of `fallback_to`
    that reaches someone."""

    to: list[Addressee] = Field(default_factory=lambda: [PRIMARY], min_length=1)
    recipients: RecipientChoice = "one"
    fallback_to: list[Addressee] = Field(default_factory=list)


class PlanStep(_Compact):
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
    campaign: str | None = Field(default=None, description="the campaign this message belongs to")
    subject: str | None = Field(default=None, description="a campaign message's subject line")
    cta: str | None = Field(default=None, description="a campaign message's call to action")
    # The default is what a step meant before it named roles, so recorded histories decode.
    addressing: Addressing = Field(default_factory=Addressing)
    task_due_hours: float | None = Field(
        default=None,
        gt=0,
        description="how long the CSM has for the task a CSM-channel step leaves (the rules');"
        " None: planned before the rules said",
    )


# The key under which a payload of several plan steps names their fallback order once.
STEPS_FALLBACK_TO = "steps_fallback_to"
# Where a payload's plan steps are in its JSON.
StepsOf = Callable[[dict[str, Any]], Iterable[Any]]


def share_fallback(data: Any, steps_of: StepsOf) -> Any:
    """`data` (a payload's JSON) with the fallback order most of its steps carry named once,
    under STEPS_FALLBACK_TO, and left out of each step that has it. Every step of a decided
    plan carries the rule set's order (journey.yaml): a journey's history would repeat it per
    step. Steps are PlanSteps as JSON, freshly made by the serializer: changed in place."""
    if not isinstance(data, dict):
        return data
    addressed = [
        a
        for step in steps_of(data)
        if isinstance(step, dict) and isinstance(a := step.get("addressing"), dict)
    ]
    orders = Counter(tuple(a["fallback_to"]) for a in addressed if a.get("fallback_to"))
    if not orders or (shared := orders.most_common(1)[0])[1] < 2:
        return data  # no order shared by two steps: each keeps its own
    order = list(shared[0])
    for a in addressed:
        own = a.pop("fallback_to", [])  # [] is the default: written out, it stays the step's
        if own != order:
            a["fallback_to"] = own
    data[STEPS_FALLBACK_TO] = order
    return data


def restore_fallback(data: Any, steps_of: StepsOf, *, owned: bool = False) -> Any:
    """The inverse of `share_fallback`, on a copy unless the data is `owned` (parsed from JSON
    for this validation alone): each step whose addressing names no fallback takes the
    payload's order. A step without addressing keeps the default (the primary contact, no
    fallback), as before steps named roles. Payloads from before name no shared order and carry
    each step's own: they decode as they did."""
    if not isinstance(data, dict) or STEPS_FALLBACK_TO not in data:
        return data
    if not owned:
        data = copy.deepcopy(data)
    order = data.pop(STEPS_FALLBACK_TO)
    for step in steps_of(data):
        if isinstance(step, dict) and isinstance(a := step.get("addressing"), dict):
            a.setdefault("fallback_to", order)
    return data


def compacted(info: SerializationInfo) -> bool:
    """Whether a dump is the JSON that leaves defaults out (not a Python dump, nor EVERY_FIELD)."""
    return info.mode_is_json() and not (info.context or {}).get(EVERY_FIELD)


class SharesFallback(BaseModel):
    """A model whose JSON holds several plan steps (`steps_in_json` says where): it names their
    shared fallback order once (`share_fallback`), and reads each step's back."""

    @staticmethod
    def steps_in_json(data: dict[str, Any]) -> Iterable[Any]:
        raise NotImplementedError

    @model_serializer(mode="wrap")
    def _fallback_once(
        self, handler: SerializerFunctionWrapHandler, info: SerializationInfo
    ) -> Any:
        data = handler(self)
        return share_fallback(data, self.steps_in_json) if compacted(info) else data

    @model_validator(mode="before")
    @classmethod
    def _fallback_per_step(cls, data: Any, info: ValidationInfo) -> Any:
        # a JSON payload's dict is made for this validation: no copy (a journey's plan is large)
        return restore_fallback(data, cls.steps_in_json, owned=info.mode == "json")


class InterventionPlan(_Value, SharesFallback):
    strategy: str
    generation: int = Field(default=1, ge=1, description="1 for the first plan, +1 per re-plan")
    steps: list[PlanStep]

    @staticmethod
    def steps_in_json(data: dict[str, Any]) -> Iterable[Any]:
        return data.get("steps") or []


class ExitRule(_Value):
    event: str
    outcome: str = Field(description="saved, churned, recovered or exited:<reason>")


class CampaignExit(_Value):
    """Ends a campaign's remaining messages (not the journey) once `event` has been seen
    `at_least` times, within the last `within_hours` of journey time when that is set."""

    event: str
    at_least: int = Field(default=1, ge=1)
    within_hours: float | None = Field(default=None, gt=0)
    reason: str


class EventCampaign(_Value):
    """A campaign that starts when a customer event arrives, e.g. a milestone reached."""

    name: str
    event: str
    data_match: dict[str, list[str | int]] = Field(
        default_factory=dict, description="event data field → values that start the campaign"
    )
    steps: list[PlanStep]

    def matches(self, event_type: str, data: dict[str, object]) -> bool:
        return event_type == self.event and all(
            data.get(key) in values for key, values in self.data_match.items()
        )


class FrequencyCap(_Value):
    """At most `at_most` messages on `channel` in any `per_hours` of journey time."""

    channel: Channel
    at_most: int = Field(ge=1)
    per_hours: float = Field(gt=0)


class QuietHours(_Value):
    """From `start` to `end` on the customer's clock nothing goes out on `channels`;
    `start` after `end` spans midnight (21:00 to 08:00)."""

    start: time
    end: time
    channels: list[Channel]

    @model_validator(mode="after")
    def _not_empty(self) -> QuietHours:
        if self.start == self.end:
            raise ValueError("quiet hours need different `from` and `to` times")
        return self


class JourneyPolicy(_Value, SharesFallback):
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
    campaign_exits: dict[str, list[CampaignExit]] = Field(default_factory=dict)
    event_campaigns: list[EventCampaign] = Field(default_factory=list)
    frequency_caps: list[FrequencyCap] = Field(default_factory=list)
    quiet_hours: QuietHours | None = None

    @staticmethod
    def steps_in_json(data: dict[str, Any]) -> Iterable[Any]:
        """The event campaigns' steps: the policy's only plan steps."""
        campaigns = data.get("event_campaigns") or []
        return [step for c in campaigns if isinstance(c, dict) for step in c.get("steps") or []]

    def outcome_for(self, event_type: str) -> str | None:
        return next((e.outcome for e in self.exits if e.event == event_type), None)


class RetentionOffer(_Value):
    """What a retention offer gives this customer, from the rule set's offer policy."""

    name: str = Field(description="the offer rule that chose it")
    type: str = Field(description="e.g. discount, free_months, services_credit")
    value: float = Field(ge=0, description="in the contract's currency")
    percent_of_contract: float = Field(ge=0)
    duration_months: int = Field(ge=1)
    conditions: list[str] = Field(default_factory=list)
    expires_in_days: int = Field(ge=1, description="from time to churn, within the rule's bounds")


class JourneyContext(BaseModel):
    """What a running journey tells the rules about itself (none at the first decision)."""

    strategy: str | None = None
    stage: str = "assessing"
    steps_done: int = 0
    days_running: float = 0.0
    plan_generation: int = 0
    recent_events: list[str] = Field(default_factory=list, description="types, last 7 days")
    logins_last_7d: int = 0


class Decision(_Value):
    strategy: str
    risk_tier: str
    severity_tier: str
    plan: InterventionPlan
    policy: JourneyPolicy | None = Field(
        description="None in a journey's later decisions: it keeps the policy of its first"
    )
    rules_version: str
    fired_rules: list[str]
    campaigns: list[str] = Field(default_factory=list, description="campaigns in the plan")
    offer: RetentionOffer | None = None
    holdout: bool = Field(default=False, description="held out: record everything, send nothing")
