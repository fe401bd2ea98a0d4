"""What the deliver activity takes and gives back: the contract between the journey, the
outbox (retention/delivery/outbox.py) and CSM tasks (retention/delivery/csm_tasks.py)."""

from __future__ import annotations

from pydantic import BaseModel, Field

from retention.customer import CustomerSnapshot
from retention.plan import Channel, PlanStep, RetentionOffer
from retention.risk_factor import RiskFactor


class DeliverInput(BaseModel):
    """The deliver activity's input: a plan step and what the journey knows of the customer.
    The snapshot travels once, in the journey's first assessment, which keeps it by journey
    key; journeys from before that carry it each time."""

    journey_id: str
    journey_key: str
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

    @property
    def idempotency_key(self) -> str:
        return f"{self.journey_key}:{self.step.step_id}"

    def to(self, customer: CustomerSnapshot) -> DeliverRequest:
        return DeliverRequest(**{**dict(self), "customer": customer})


class DeliverRequest(DeliverInput):
    """A step to deliver to a known customer."""

    customer: CustomerSnapshot


class DeliveryReceipt(BaseModel):
    outbox_id: str
    idempotency_key: str
    channel: Channel
    recipient: str
    fallback_used: bool
    duplicate: bool
    path: str
    subject: str
    held_out: bool = False
    mode: str = Field(default="capture", description="capture or live")
    provider: str | None = None
    provider_message_id: str | None = None
    note: str | None = Field(
        default=None, description="why the fallback channel was used; which CSM task it updated"
    )
