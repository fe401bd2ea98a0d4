"""A journey's request, its options and the state it keeps, queries and carries across runs."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field, field_validator, model_validator

from retention.compact import CompactModel
from retention.customer import CUSTOMER_ID_PATTERN, CustomerSnapshot
from retention.event_summary import EventRecord, EventSummary, summarize
from retention.plan import Channel, JourneyPolicy, PlanStep, RetentionOffer, SharesFallback
from retention.recipients import NextReach, RecipientReceipt
from retention.risk_factor import RiskFactor
from retention.suppression import SuppressRequest

Stage = Literal["assessing", "waiting", "intervening", "paused", "rescoring", "closed"]
FIRST_STAGE: Stage = "assessing"
StepStatus = Literal["pending", "done", "skipped"]
# Events that arrive before the first decision wait for it one by one (an event campaign may
# read their data); past this many they are still counted, and exits still end the journey.
MAX_EARLY_EVENTS = 1_000
# A run takes at most this many events, whatever its continue-as-new threshold: past it the
# `record_event` update refuses for the moment (the sender sends again, to the next run). Below
# Temporal's own per-run limits: 2,000 updates and 10,000 signals.
MAX_EVENTS_PER_RUN = 1_500
# What the `record_event` validator says when it refuses for the moment; senders match on it.
JOURNEY_ROLLING_OVER = "the journey is continuing as new"


class JourneyOptions(BaseModel):
    time_scale: float = Field(
        default=1.0, gt=0, le=1_000_000, description="journey hours per real hour (demos)"
    )
    upstream_churn_probability: float | None = Field(
        default=None, ge=0, le=1, description="a probability from upstream that wins over ours"
    )
    continue_as_new_after_events: int = Field(
        default=500, ge=1, description="start a fresh run after this many events in one run"
    )


class StepState(CompactModel):
    step: PlanStep
    generation: int
    due_at: datetime
    status: StepStatus = "pending"
    done_at: datetime | None = None
    channel_used: Channel | None = None
    outbox_id: str | None = None
    note: str = ""
    deferred_until: datetime | None = Field(
        default=None, description="held back by quiet hours or a frequency cap until then"
    )
    deferred_why: str = ""
    delivery_mode: str | None = Field(default=None, description="capture or live")
    provider: str | None = Field(default=None, description="sendgrid, twilio; None if captured")
    provider_message_id: str | None = None
    recipients: list[RecipientReceipt] = Field(
        default_factory=list,
        description="each person the step reached, is holding back or could not reach",
    )
    recipients_left_out: int = Field(default=0, description="reachable people past the cap")
    held_once: bool = Field(
        default=False,
        description="a deliver activity held someone back from it: the next ask sends to "
        "them or records them capped, never holds again",
    )

    @property
    def ready_at(self) -> datetime:
        """When the step may run: its due time, or later if a guard rail holds it back."""
        return self.deferred_until or self.due_at


class StrategyChange(BaseModel):
    at: datetime
    from_strategy: str | None
    to_strategy: str
    why: str


class JourneyState(SharesFallback):
    """Everything a journey knows: the `state` query answer and what continue-as-new carries
    (and, compact, the journey's result: its steps name the fallback order they share once)."""

    customer_id: str
    customer: CustomerSnapshot | None = Field(
        default=None,
        description="the snapshot as first assessed (None until loaded; in the journey's result, "
        "None once kept by journey key)",
    )
    snapshot_kept: bool = Field(
        default=False, description="kept by journey key: activity inputs name it, not carry it"
    )
    journey_key: str = Field(description="workflow id + first run id: unique per journey")
    started_at: datetime
    stage: Stage = FIRST_STAGE
    strategy: str | None = None
    risk_tier: str | None = None
    severity_tier: str | None = None
    churn_probability: float | None = None
    probability_source: str | None = None
    health_score: float | None = None
    risk_factors: list[RiskFactor] = Field(default_factory=list)
    model_version: str | None = None
    rules_version: str | None = None
    fired_rules: list[str] = Field(default_factory=list)
    policy: JourneyPolicy | None = Field(
        default=None, description="the first decision's; None in the result of a compact journey"
    )
    plan_started_at: datetime | None = None
    plan_generation: int = 0
    steps: list[StepState] = Field(default_factory=list)
    checkpoints_done: list[float] = Field(default_factory=list)
    events: EventSummary = Field(default_factory=EventSummary)
    early_events: list[EventRecord] = Field(
        default_factory=list,
        description="accepted before the first decision; followed one by one once it is made",
    )
    strategy_history: list[StrategyChange] = Field(default_factory=list)
    holdout: bool = Field(default=False, description="held out: steps recorded, nothing sent")
    offer: RetentionOffer | None = None
    campaigns_started: list[str] = Field(
        default_factory=list, description="campaign starts, e.g. re_engagement or a milestone's"
    )
    campaigns_exited: dict[str, str] = Field(default_factory=dict, description="campaign → why")
    paused: bool = False
    pause_reason: str | None = None
    exit_reason: str | None = None
    outcome: str | None = None
    finished_at: datetime | None = None
    runs: int = Field(default=1, description="runs so far, counting continue-as-new")
    next_reach: list[NextReach] = Field(
        default_factory=list,
        description="people not free on a channel yet, from the last deliver receipts: when "
        "each may next be sent to; a step to them waits for it (kept only until then)",
    )
    pending_suppressions: list[SuppressRequest] = Field(
        default_factory=list, description="unsubscribes heard, not yet on the suppression list"
    )

    @field_validator("events", mode="before")
    @classmethod
    def _summarize_event_list(cls, events: Any) -> Any:
        """Journeys carried every event as a list before summaries: fold theirs on arrival."""
        return summarize(events) if isinstance(events, list) else events

    @staticmethod
    def steps_in_json(data: dict[str, Any]) -> list[Any]:
        return [s["step"] for s in data.get("steps") or [] if isinstance(s, dict) and "step" in s]

    def as_record(self) -> JourneyRecord:
        fields = JourneyRecord.model_fields.keys() - {"strategy_path"}
        return JourneyRecord(
            **{name: getattr(self, name) for name in fields},
            strategy_path=[change.to_strategy for change in self.strategy_history],
        )

    def next_step(self) -> StepState | None:
        pending = [s for s in self.steps if s.status == "pending"]
        return min(pending, key=lambda s: s.ready_at) if pending else None


class JourneyRecord(BaseModel):
    """What the database keeps of a journey (its `journeys` row): a few fields, not the state."""

    journey_key: str
    customer_id: str
    stage: Stage
    strategy: str | None
    risk_tier: str | None
    severity_tier: str | None
    churn_probability: float | None
    health_score: float | None
    outcome: str | None
    exit_reason: str | None
    rules_version: str | None
    model_version: str | None
    started_at: datetime
    finished_at: datetime | None
    holdout: bool
    strategy_path: list[str]


class JourneyRequest(BaseModel):
    """Start a journey from a snapshot or from a customer id in the database."""

    customer: CustomerSnapshot | None = None
    customer_id: str | None = Field(default=None, pattern=CUSTOMER_ID_PATTERN)
    options: JourneyOptions = Field(default_factory=JourneyOptions)
    carried_state: JourneyState | None = Field(
        default=None, description="set only by continue-as-new"
    )

    @model_validator(mode="after")
    def _one_customer_source(self) -> JourneyRequest:
        if self.carried_state is None and (self.customer is None) == (self.customer_id is None):
            raise ValueError("give exactly one of customer or customer_id")
        return self

    @property
    def target_customer_id(self) -> str:
        if self.carried_state is not None:
            return self.carried_state.customer_id
        return self.customer.customer_id if self.customer else str(self.customer_id)


class PauseRequest(BaseModel):
    reason: str = ""


class ResumeRequest(BaseModel):
    note: str = ""


class CancelRequest(BaseModel):
    reason: str = Field(default="", description="required; checked by the update's validator")


class EscalateRequest(BaseModel):
    reason: str = ""


class CommandResult(BaseModel):
    stage: Stage
    strategy: str | None
    message: str


class EventReceipt(BaseModel):
    """The `record_event` update's answer: the event is in the journey's history."""

    accepted: bool = Field(description="false when it was recorded as rejected")
    reason: str | None = Field(default=None, description="why it was rejected or not followed")


def journey_id(customer_id: str) -> str:
    return f"retention-{customer_id}"
