"""Which channel a step can use for a customer, and who a message on it goes to."""

from __future__ import annotations

from retention.customer import CustomerSnapshot
from retention.errors import InvalidInput
from retention.plan import Channel, PlanStep

PHONE_CHANNELS: frozenset[Channel] = frozenset({"sms", "phone"})
# Work for the customer's CSM rather than a message to the customer.
CSM_CHANNELS: frozenset[Channel] = frozenset(
    {"csm_task", "internal", "meeting", "webinar", "document"}
)


def can_reach(channel: Channel, customer: CustomerSnapshot) -> bool:
    return channel not in PHONE_CHANNELS or customer.profile.phone is not None


def likely_channel(step: PlanStep, customer: CustomerSnapshot) -> Channel:
    """The channel a step will use unless a provider refuses it: guard rails count on it."""
    if can_reach(step.channel, customer) or step.fallback_channel is None:
        return step.channel
    return step.fallback_channel


def resolve_channel(step: PlanStep, customer: CustomerSnapshot) -> tuple[Channel, bool]:
    """The step's channel, or its fallback (then True) when the channel cannot reach them."""
    if can_reach(step.channel, customer):
        return step.channel, False
    fallback = step.fallback_channel
    if fallback is not None and can_reach(fallback, customer):
        return fallback, True
    raise InvalidInput(
        f"step {step.step_id!r}: channel {step.channel!r} cannot reach customer "
        f"{customer.customer_id!r} (no phone) and fallback_channel {fallback!r} cannot either"
    )


def address_of(channel: Channel, customer: CustomerSnapshot) -> str | None:
    """Where a message on `channel` would go, or None when the customer has no such address."""
    if channel in PHONE_CHANNELS and customer.profile.phone is None:
        return None
    return recipient_for(channel, customer)


def recipient_for(channel: Channel, customer: CustomerSnapshot) -> str:
    profile = customer.profile
    if channel == "email":
        return profile.email
    if channel in PHONE_CHANNELS:
        if profile.phone is None:
            raise InvalidInput(f"customer {customer.customer_id!r} has no profile.phone")
        return profile.phone
    if channel == "in_app":
        return f"in_app:{customer.customer_id}"
    return profile.assigned_csm or "csm:unassigned"
