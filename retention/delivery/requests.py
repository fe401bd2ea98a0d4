"""What the deliver activity takes and gives back: the contract between the journey, the
outbox (retention/delivery/outbox.py) and CSM tasks (retention/delivery/task_filing.py)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, ClassVar

from pydantic import Field, model_validator

from retention.compact import CompactModel
from retention.customer import CustomerSnapshot
from retention.plan import Channel, FrequencyCap, PlanStep, QuietHours, RetentionOffer
from retention.recipients import NextReach, RecipientReceipt
from retention.risk_factor import RiskFactor


class GuardRails(CompactModel):
    """The journey's frequency caps and quiet hours, which the deliver activity judges each
    person by (their own messages in the outbox, their own time zone), on the journey's clock."""

    at: datetime = Field(description="the journey's now when it asked for the step")
    started_at: datetime
    time_scale: float = Field(default=1.0, gt=0)
    frequency_caps: list[FrequencyCap] = Field(default_factory=list)
    quiet_hours: QuietHours | None = None
    last_ask: bool = Field(
        default=False,
        description="the step was held once already: a person still held is recorded capped "
        "and the step goes on without them, so a step is never held twice",
    )


class DeliverInput(CompactModel):
    """The deliver activity's input: a plan step and what the journey knows of the customer.
    The snapshot travels once, in the journey's first assessment, which keeps it by journey
    key; journeys from before that carry it each time."""

    journey_id: str = Field(description="left out of JSON: the journey key begins with it")
    journey_key: str = Field(description="journey id / first run id")
    step: PlanStep
    strategy: str
    risk_tier: str
    churn_probability: float
    health_score: float
    risk_factors: list[RiskFactor] = Field(default_factory=list)
    held_out: bool = Field(default=False, description="record the message, send nothing")
    rules_version: str | None = Field(
        default=None, description="the rule set whose templates render it (the plan's)"
    )
    offer: RetentionOffer | None = None
    csm_booking_link: str = Field(
        default="", description="set by the deliver activity from RETENTION_CSM_BOOKING_URL"
    )
    customer: CustomerSnapshot | None = Field(
        default=None, description="None: the snapshot the journey kept"
    )
    guard_rails: GuardRails | None = Field(
        default=None, description="None: the journey held the step back itself, if at all"
    )

    @model_validator(mode="before")
    @classmethod
    def _journey_id_from_key(cls, data: Any) -> Any:
        """Payloads since journey ids left them carry only the key, which begins with the id."""
        if isinstance(data, dict) and "journey_id" not in data and "journey_key" in data:
            return {**data, "journey_id": str(data["journey_key"]).rpartition("/")[0]}
        return data

    def _leaner_json(self, data: dict[str, Any]) -> dict[str, Any]:
        """Without what the deliver activity can tell from the rest (every deliver input stays
        in a journey's history): the journey id, in the key; the caps of channels the step goes
        on neither first nor as its fallback, which it never judges."""
        if self.journey_key.rpartition("/")[0] == self.journey_id:
            data.pop("journey_id", None)
        rails = data.get("guard_rails")
        if isinstance(rails, dict) and rails.get("frequency_caps"):
            used = {self.step.channel, self.step.fallback_channel}
            caps = [cap for cap in rails["frequency_caps"] if cap.get("channel") in used]
            data["guard_rails"] = {k: v for k, v in rails.items() if k != "frequency_caps"}
            if caps:
                data["guard_rails"]["frequency_caps"] = caps
        return data

    @property
    def idempotency_key(self) -> str:
        return f"{self.journey_key}:{self.step.step_id}"

    def to(self, customer: CustomerSnapshot) -> DeliverRequest:
        return DeliverRequest(**{**dict(self), "customer": customer})


class DeliverRequest(DeliverInput):
    """A step to deliver to a known customer."""

    customer: CustomerSnapshot


# A role can hold many people: one step reaches at most this many, the first in recipient order;
# the receipt counts the rest (`recipients_left_out`) so the cut shows in the journey's state.
MAX_RECIPIENTS_PER_STEP = 50


class DeliveryReceipt(CompactModel):
    """A step's delivery: its first delivered message (the fields a step had before it reached
    several people) and each recipient's own result in `recipients`.

    The journey never reads the message's key, address, file or subject: they stay on this side
    (`LOCAL_FIELDS`) and in its outbox row, which the step's `outbox_id` names; in the journey's
    receipt they are empty (receipts recorded before carry them)."""

    LOCAL_FIELDS: ClassVar[frozenset[str]] = frozenset(
        {"idempotency_key", "recipient", "path", "subject"}
    )

    outbox_id: str
    idempotency_key: str = ""
    channel: Channel
    recipient: str = ""
    fallback_used: bool = False
    duplicate: bool = False
    path: str = Field(default="", description="the captured message's file; empty if live")
    subject: str = ""
    held_out: bool = False
    mode: str = Field(default="capture", description="capture or live")
    provider: str | None = None
    provider_message_id: str | None = None
    note: str | None = Field(
        default=None, description="why the fallback channel was used; which CSM task it updated"
    )
    recipients: list[RecipientReceipt] = Field(
        default_factory=list, description="empty in receipts recorded before steps fanned out"
    )
    recipients_left_out: int = Field(
        default=0, ge=0, description=f"reachable people past the {MAX_RECIPIENTS_PER_STEP} cap"
    )
    held_until: datetime | None = Field(
        default=None, description="some people wait for their cap or quiet hours: ask again then"
    )
    held_why: str = ""
    next_reach: list[NextReach] = Field(
        default_factory=list,
        description="the people of this step not free on their channel at once after it: when "
        "each may next be sent to (their cap window and quiet hours, every journey's messages)",
    )
