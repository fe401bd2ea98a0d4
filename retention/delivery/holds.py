"""Frequency caps and quiet hours per person, judged when a step's message to them is about to
be made: the cap counts the messages to that person's address on that channel in the outbox,
every journey's; quiet hours are on their own clock (the contact's time zone, else the
account's). A held message gets no outbox row: the journey asks for the step again when the
hold ends, and the people already reached find their rows (docs/delivery.md, "Guard rails")."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta

from sqlalchemy import BindParameter, Engine, and_, bindparam, or_
from sqlmodel import Session, col, select

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


class Holds:
    """One deliver call's holds. Each person's counted messages on a channel are read once,
    before their message is made; `next_reach` then adds the row the call wrote in memory
    instead of reading them all again (one statement and session fewer a message)."""

    def __init__(self, engine: Engine, request: DeliverRequest) -> None:
        self.engine, self.request = engine, request
        # (channel, recipient) -> {idempotency key: when asked for}, as read plus as written
        self._sent: dict[tuple[str, str], dict[str, datetime]] = {}

    def next_reach(self, route: Route, contact_id: str, key: str) -> NextReach | None:
        """When the route's person may next be sent to on its channel, now that this step's
        message to them is in the outbox under `key`, if not at once: the journey waits for it
        before its next step to them instead of asking the deliver activity to learn of the
        hold."""
        rails = self.request.guard_rails
        known = self._sent.get((route.channel, route.recipient))
        if rails is not None and known is not None:
            # the row as written (journey_at is the ask's `at`); one read before keeps its own
            known.setdefault(key, rails.at)
        hold = self.hold_on(route, None)
        if hold is None:
            return None
        return NextReach(channel=route.channel, contact_id=contact_id, at=hold.until, why=str(hold))

    def hold_on(self, route: Route, reads: Session | None) -> HeldBack | None:
        """The hold on the route's message at the journey's `at`, if any: the person's cap on
        its channel is full, or it is their quiet hours; CSM work is never held. Given `reads`,
        the person's messages are read in it even when this call read them before (another
        person of the step may share the address); else what was read is used, if anything
        was."""
        request, rails = self.request, self.request.guard_rails
        if rails is None or route.channel not in CUSTOMER_CHANNELS:
            return None
        if not _judged(rails, route.channel):
            return None
        clock = JourneyClock(rails.started_at, rails.time_scale)
        sent = [clock.journey(at) for at in self._sent_to(route, rails, clock, reads)]
        hold = hold_for(rails, route.channel, clock.journey(rails.at), sent, _zone(request, route))
        if hold is None:
            return None
        # at least a second on: a hold that rounding ended early must not spin the journey
        until = max(clock.real(hold.until), rails.at + timedelta(seconds=1))
        who = f"{route.person.contact.contact_id} " if route.person else ""
        return HeldBack(f"{who}{hold.why}", until)

    def _sent_to(
        self, route: Route, rails: GuardRails, clock: JourneyClock, reads: Session | None
    ) -> Iterable[datetime]:
        cap = next((c for c in rails.frequency_caps if c.channel == route.channel), None)
        if cap is None:
            return ()  # quiet hours alone count no messages: nothing to read
        where = (route.channel, route.recipient)
        if reads is None and where in self._sent:
            return self._sent[where].values()
        # hold_for only moves later than `at`, so older messages never fill the window;
        # a second more for the clock's rounding (hold_for judges each time exactly)
        since = rails.at - clock.span(cap.per_hours) - timedelta(seconds=1)
        if reads is not None:
            self._sent[where] = sent_to(reads, route.channel, route.recipient, since)
        else:  # a retry that found its row read nothing before
            with session(self.engine) as db:
                self._sent[where] = sent_to(db, route.channel, route.recipient, since)
        return self._sent[where].values()


def _judged(rails: GuardRails, channel: str) -> bool:
    """Whether a cap or quiet hours apply to `channel` at all (else no outbox read)."""
    quiet = rails.quiet_hours
    return any(cap.channel == channel for cap in rails.frequency_caps) or (
        quiet is not None and channel in quiet.channels
    )


def sent_to(db: Session, channel: str, recipient: str, since: datetime) -> dict[str, datetime]:
    """When each counted message to `recipient` on `channel` asked for from `since` on was
    asked for, by idempotency key (`created_at` for rows from before `journey_at`)."""
    params = {"channel": channel, "recipient": recipient, "since": since}
    return {key: asked or made for key, asked, made in db.exec(_SENT_TO, params=params).all()}


# built once: the deliver activity reads it for every capped message
_SINCE: BindParameter[datetime] = bindparam("since")
_SENT_TO = select(OutboxRow.idempotency_key, OutboxRow.journey_at, OutboxRow.created_at).where(
    col(OutboxRow.channel) == bindparam("channel"),
    col(OutboxRow.recipient) == bindparam("recipient"),
    col(OutboxRow.status).in_(COUNTED),
    or_(
        col(OutboxRow.journey_at) >= _SINCE,
        and_(col(OutboxRow.journey_at).is_(None), col(OutboxRow.created_at) >= _SINCE),
    ),
)


def _zone(request: DeliverRequest, route: Route) -> str:
    """The person's time zone; the account's (the profile's) when they have none."""
    contact = route.person.contact if route.person else request.customer.primary_contact
    return contact.timezone or request.customer.profile.timezone
