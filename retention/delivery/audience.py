"""Whom one step's messages go to: each person `recipients_for` reaches gets their own outbox
row, keyed `<journey_key>:<step_id>:<contact_id>`, so a retry, a replay or a crash never sends
anyone twice and one person refused never silences the others (docs/delivery.md)."""

from __future__ import annotations

from dataclasses import dataclass

from retention.customer import CustomerSnapshot
from retention.delivery.channels import CSM_CHANNELS, resolve_channel
from retention.delivery.requests import MAX_RECIPIENTS_PER_STEP, DeliverRequest
from retention.errors import InvalidInput
from retention.plan import Channel, PlanStep
from retention.recipients import Recipient, spoken_to, step_recipients


@dataclass(frozen=True)
class Audience:
    """The people a step reaches on `channel`, at most MAX_RECIPIENTS_PER_STEP of them."""

    channel: Channel
    people: list[Recipient]
    left_out: int


def audience_of(request: DeliverRequest) -> Audience | None:
    """See `audience_for`: the request's step and customer."""
    return audience_for(request.step, request.customer)


def reached_by(step: PlanStep, customer: CustomerSnapshot) -> tuple[Channel, list[str]]:
    """The channel a step's messages will go on and the contact ids of the people they go to,
    as the deliver activity will find them (none for CSM work, which is never held): the
    journey waits for these people's next free moment before it asks for the step."""
    if step.channel in CSM_CHANNELS:
        return step.channel, []
    audience = audience_for(step, customer)
    if audience is not None:
        return audience.channel, [p.contact.contact_id for p in audience.people]
    try:
        channel, _fallback_used = resolve_channel(step, customer)
    except InvalidInput:
        return step.channel, []  # reaches no one: the deliver activity says so
    if channel in CSM_CHANNELS:
        return channel, []
    contact, _role = spoken_to(step.addressing, channel, customer)
    return channel, [contact.contact_id]


def audience_for(step: PlanStep, customer: CustomerSnapshot) -> Audience | None:
    """The step's people, or None when it sends the one message a step sent before contacts
    (key `<journey_key>:<step_id>`, the profile's addresses): CSM work, whose recipient is the
    CSM; a step reaching nobody, which speaks to the primary contact; and one reaching only the
    primary contact, so the rows of journeys in flight across the deploy keep their keys."""
    if step.channel in CSM_CHANNELS:
        return None
    channel, people = step_recipients(
        step.addressing, step.channel, step.fallback_channel, customer
    )
    primary = customer.primary_contact.contact_id
    if not people or [p.contact.contact_id for p in people] == [primary]:
        return None
    cut = people[:MAX_RECIPIENTS_PER_STEP]
    return Audience(channel, cut, len(people) - len(cut))


def masked(address: str) -> str:
    """An email or phone number with most of it hidden; other addresses (a CSM's id, an
    account's in-app inbox) name no one and stay as they are."""
    if "@" in address:
        local, domain = address.split("@", 1)
        return f"{local[:1]}***@{domain}"
    if address.startswith("+") and len(address) > 5:
        return "+" + "*" * (len(address) - 5) + address[-4:]
    return address
