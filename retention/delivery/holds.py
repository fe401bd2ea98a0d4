"""Frequency caps and quiet hours per person, judged when a step's message to them is about to
be made: the cap counts the messages to that person's address on that channel in the outbox,
every journey's; quiet hours are on their own clock (the contact's time zone, else the
account's). A held message gets no outbox row: the journey asks for the step again when the
hold ends, and the people already reached find their rows (docs/delivery.md, "Guard rails")."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import Engine
from sqlmodel import col, select

from retention.delivery.guardrails import hold_for
from retention.delivery.outbox import Route
from retention.delivery.requests import DeliverRequest, GuardRails
from retention.errors import HeldBack
from retention.journey_clock import JourneyClock
from retention.plan import CUSTOMER_CHANNELS
from retention.recipients import NextReach
from retention.store.db import session
from retention.store.tables import OutboxRow

# Rows that stand for a message on its way or gone (held-out ones too: the holdout keeps the
# treated group's pace); refused and suppressed ones reached nobody.
COUNTED = ("captured", "held_out", "sending", "sent")


def refuse_if_held(engine: Engine, request: DeliverRequest, route: Route) -> None:
    """Raise HeldBack when the person's cap on the route's channel is full, or it is their
    quiet hours; CSM work is never held."""
    hold = held_back(engine, request, route)
    if hold is not None:
        raise hold


def next_reach(
    engine: Engine, request: DeliverRequest, route: Route, contact_id: str
) -> NextReach | None:
    """When the route's person may next be sent to on its channel, once this step's message to
    them is in the outbox (or held), if not at once: the journey waits for it before its next
    step to them instead of asking the deliver activity to learn of the hold."""
    hold = held_back(engine, request, route)
    if hold is None:
        return None
    return NextReach(channel=route.channel, contact_id=contact_id, at=hold.until, why=str(hold))


def held_back(engine: Engine, request: DeliverRequest, route: Route) -> HeldBack | None:
    """The hold on a message of the route at the journey's `at`, if any."""
    rails = request.guard_rails
    if rails is None or route.channel not in CUSTOMER_CHANNELS:
        return None
    if not _judged(rails, route.channel):
        return None
    clock = JourneyClock(rails.started_at, rails.time_scale)
    sent = [clock.journey(at) for at in sent_to(engine, route.channel, route.recipient)]
    hold = hold_for(rails, route.channel, clock.journey(rails.at), sent, _zone(request, route))
    if hold is None:
        return None
    # at least a second on: a hold that rounding ended early must not spin the journey
    until = max(clock.real(hold.until), rails.at + timedelta(seconds=1))
    who = f"{route.person.contact.contact_id} " if route.person else ""
    return HeldBack(f"{who}{hold.why}", until)


def _judged(rails: GuardRails, channel: str) -> bool:
    """Whether a cap or quiet hours apply to `channel` at all (else no outbox read)."""
    quiet = rails.quiet_hours
    return any(cap.channel == channel for cap in rails.frequency_caps) or (
        quiet is not None and channel in quiet.channels
    )


def sent_to(engine: Engine, channel: str, recipient: str) -> list[datetime]:
    """When each counted message to `recipient` on `channel` was asked for."""
    query = select(OutboxRow.journey_at, OutboxRow.created_at).where(
        col(OutboxRow.channel) == channel,
        col(OutboxRow.recipient) == recipient,
        col(OutboxRow.status).in_(COUNTED),
    )
    with session(engine) as db:
        return [journey_at or created_at for journey_at, created_at in db.exec(query).all()]


def _zone(request: DeliverRequest, route: Route) -> str:
    """The person's time zone; the account's (the profile's) when they have none."""
    contact = route.person.contact if route.person else request.customer.primary_contact
    return contact.timezone or request.customer.profile.timezone
