"""Whom one step's messages go to: each person `recipients_for` reaches gets their own outbox
row, keyed `<journey_key>:<step_id>:<contact_id>`, so a retry, a replay or a crash never sends
anyone twice and one person refused never silences the others (docs/delivery.md)."""

from __future__ import annotations

from dataclasses import dataclass

from retention.delivery.channels import CSM_CHANNELS
from retention.delivery.requests import MAX_RECIPIENTS_PER_STEP, DeliverRequest
from retention.plan import Channel
from retention.recipients import Recipient, step_recipients


@dataclass(frozen=True)
class Audience:
    """The people a step reaches on `channel`, at most MAX_RECIPIENTS_PER_STEP of them."""

    channel: Channel
    people: list[Recipient]
    left_out: int


def audience_of(request: DeliverRequest) -> Audience | None:
    """The step's people, or None when it sends the one message a step sent before contacts
    (key `<journey_key>:<step_id>`, the profile's addresses): CSM work, whose recipient is the
    CSM; a step reaching nobody, which speaks to the primary contact; and one reaching only the
    primary contact, so the rows of journeys in flight across the deploy keep their keys."""
    step, customer = request.step, request.customer
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
