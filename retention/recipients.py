"""Whom a plan step reaches at an account: its addressing (`to`, `recipients`, `fallback_to`)
applied to the customer's contacts on one channel. Pure: no I/O, the same answer every time.

A contact is reachable on a channel when they are active and have its address: a phone number
for SMS and calls, their email for everything else (email itself, in-app, where the email is
their login, and CSM work, which names the person it is for).
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from retention.compact import CompactModel
from retention.customer import Contact, CustomerSnapshot
from retention.plan import Addressee, Addressing, Channel

_PHONE_CHANNELS: frozenset[Channel] = frozenset({"sms", "phone"})


class Recipient(BaseModel):
    """One person a step goes to, at their address for the channel."""

    model_config = ConfigDict(frozen=True)

    contact: Contact
    role: Addressee  # the role they were addressed as (`primary`: as the primary contact)
    address: str


RecipientStatus = Literal[
    "captured", "held_out", "sent", "suppressed", "invalid_recipient", "rejected", "held", "capped"
]


class RecipientReceipt(CompactModel):
    """How a step went for one person: their own outbox row, or why they got nothing. The
    address is masked: receipts live on in workflow history and the `state` query."""

    contact_id: str
    role: str
    channel: Channel
    address: str = Field(description="masked, e.g. d***@acme.example, +*******4567")
    status: RecipientStatus
    fallback_used: bool = False
    note: str | None = None


class NextReach(CompactModel):
    """When a person may next be sent a message on a channel (real time), and why not sooner:
    the journey waits for it before a step to them, rather than learn of the hold by asking."""

    channel: Channel
    contact_id: str
    at: datetime
    why: str = ""


def address_for(channel: Channel, contact: Contact) -> str | None:
    """Where `contact` is reached on `channel`; None when they cannot be."""
    if not contact.active:
        return None
    return contact.phone if channel in _PHONE_CHANNELS else contact.email


def recipients_for(
    addressing: Addressing, channel: Channel, customer: CustomerSnapshot
) -> list[Recipient]:
    """The people `addressing` reaches on `channel`: those of `to`, else those of the first
    `fallback_to` role that reaches anyone; none when nobody is reachable."""
    reached = _reachable(addressing.to, channel, customer)
    for role in addressing.fallback_to:
        if reached:
            break
        reached = _reachable([role], channel, customer)
    return reached if addressing.recipients == "every" else reached[:1]


def spoken_to(
    addressing: Addressing, channel: Channel, customer: CustomerSnapshot
) -> tuple[Contact, Addressee]:
    """The person a step's one message speaks to (CSM work, or a step reaching only the primary
    contact or nobody: retention/delivery/audience.py) and the role they are addressed as: its
    first recipient, else the primary contact, whom every message went to before roles."""
    reached = recipients_for(addressing, channel, customer)
    if reached:
        return reached[0].contact, reached[0].role
    return customer.primary_contact, "primary"


def step_recipients(
    addressing: Addressing,
    channel: Channel,
    fallback_channel: Channel | None,
    customer: CustomerSnapshot,
) -> tuple[Channel, list[Recipient]]:
    """A step's channel and whom it reaches there, or its fallback channel's when the channel
    reaches nobody (as delivery falls back when the customer has no phone)."""
    reached = recipients_for(addressing, channel, customer)
    if reached or fallback_channel is None:
        return channel, reached
    return fallback_channel, recipients_for(addressing, fallback_channel, customer)


def _reachable(
    roles: list[Addressee], channel: Channel, customer: CustomerSnapshot
) -> list[Recipient]:
    """Each reachable person once, in the order of `roles`, then of the contact list."""
    found: dict[str, Recipient] = {}
    for role in roles:
        for contact in _holding(role, customer):
            address = address_for(channel, contact)
            if address is not None and contact.contact_id not in found:
                found[contact.contact_id] = Recipient(contact=contact, role=role, address=address)
    return list(found.values())


def _holding(role: Addressee, customer: CustomerSnapshot) -> list[Contact]:
    if role == "primary":  # the literal, not PRIMARY: mypy narrows the type on it
        return [customer.primary_contact]
    return customer.contacts_with_role(role)
