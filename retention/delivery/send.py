"""Deliver one plan step: captured, or live through the channel's provider, to each person it
reaches (retention/delivery/audience.py), each on the step's fallback channel when the provider
refuses the first for good or the person is suppressed on it. A suppressed message is never
rendered or sent; its outbox row says why. One person refused never silences the others."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from types import MappingProxyType
from typing import NoReturn

from sqlalchemy import Engine
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session

from retention.delivery.audience import Audience, audience_of, masked
from retention.delivery.channels import CSM_CHANNELS, can_reach, resolve_channel
from retention.delivery.holds import Holds
from retention.delivery.live import refused_or_receipt, send_live
from retention.delivery.outbox import (
    DeliverRequest,
    DeliveryReceipt,
    Route,
    capture,
    find,
    find_in,
    insert_once,
    intervention,
    new_row,
)
from retention.delivery.providers import Provider
from retention.delivery.templates import RenderedMessage, TemplateSet
from retention.errors import (
    DeliveryFailed,
    HeldBack,
    InvalidRecipient,
    ProviderRejected,
    ProviderUnavailable,
    Suppressed,
)
from retention.plan import CUSTOMER_CHANNELS, Channel
from retention.recipients import (
    NextReach,
    RecipientReceipt,
    RecipientStatus,
    address_for,
    spoken_to,
)
from retention.store.db import session
from retention.store.suppressions import suppression_for
from retention.store.tables import SuppressionRow

CAPTURE_ONLY: Mapping[Channel, Provider] = MappingProxyType({})
_REFUSAL_STATUS: dict[type[DeliveryFailed], RecipientStatus] = {
    Suppressed: "suppressed",
    InvalidRecipient: "invalid_recipient",
    ProviderRejected: "rejected",
}


class _Sender:
    """Delivers a step's routes: the outbox, the templates and the providers it sends with,
    and the step's holds (each person's messages read once)."""

    def __init__(
        self,
        engine: Engine,
        outbox_dir: Path,
        templates: TemplateSet,
        providers: Mapping[Channel, Provider],
        holds: Holds,
    ) -> None:
        self.engine, self.outbox_dir = engine, outbox_dir
        self.templates, self.providers = templates, providers
        self.holds = holds


def deliver(
    engine: Engine,
    outbox_dir: Path,
    templates: TemplateSet,
    request: DeliverRequest,
    providers: Mapping[Channel, Provider] = CAPTURE_ONLY,
) -> DeliveryReceipt:
    """Exactly once per person a step reaches. A channel without a provider (capture mode,
    in-app, CSM work) and a held-out customer's message are captured; raises DeliveryFailed
    when nothing got through to anyone: `ProviderUnavailable` to retry later (also when it
    got through to some: they are not sent again), or the refusal (or suppression) when no
    usable fallback is left."""
    sender = _Sender(engine, outbox_dir, templates, providers, Holds(engine, request))
    audience = audience_of(request)
    if audience is None:
        return _deliver_step(sender, request)
    return _deliver_each(sender, request, audience)


def _deliver_step(sender: _Sender, request: DeliverRequest) -> DeliveryReceipt:
    """The step's one message: to the CSM, or to the primary contact at the profile's address."""
    channel, fallback_used = resolve_channel(request.step, request.customer)
    first = Route.to(request.idempotency_key, channel, fallback_used, request)
    if channel in CSM_CHANNELS:
        contact_id, role = first.recipient, "csm"
    else:
        contact, role = spoken_to(request.step.addressing, channel, request.customer)
        contact_id = contact.contact_id
    reach = _Reach(sender.holds, request)
    try:
        receipt = _deliver_route(sender, request, first)
    except Suppressed:
        _record_suppressed_step(sender.engine, request, first)
        raise
    except HeldBack as hold:
        entry = reach.held(contact_id, role, first, hold)
        return _receipt(request, first, [], [entry], reach)
    entry = _delivered(contact_id, role, receipt)
    reach.after(contact_id, first, receipt)
    return receipt.model_copy(update={"recipients": [entry], "next_reach": reach.next})


def _deliver_each(sender: _Sender, request: DeliverRequest, audience: Audience) -> DeliveryReceipt:
    """Every person's own message; the receipt of the first delivered, listing them all."""
    delivered: list[DeliveryReceipt] = []
    refused: list[tuple[Route, DeliveryFailed]] = []
    entries: list[RecipientReceipt] = []
    reach = _Reach(sender.holds, request)
    for person in audience.people:
        route = Route.for_person(request, audience.channel, person)
        who = (person.contact.contact_id, person.role)
        try:
            receipt = _deliver_route(sender, request, route)
        except DeliveryFailed as failure:
            refused.append((route, failure))
            entries.append(_listed(*who, route, _REFUSAL_STATUS.get(type(failure)), str(failure)))
            continue
        except HeldBack as hold:
            entries.append(reach.held(*who, route, hold))
            continue
        delivered.append(receipt)
        entries.append(_delivered(*who, receipt))
        reach.after(person.contact.contact_id, route, receipt)
    if waiting := [why for _route, why in refused if not why.permanent]:
        raise _retry_all(waiting)
    if not delivered and not reach.holds and not reach.capped:
        first, refusal = refused[0]
        if isinstance(refusal, Suppressed):
            _record_suppressed_step(sender.engine, request, first)
        raise refusal
    first = Route.for_person(request, audience.channel, audience.people[0])
    receipt = _receipt(request, first, delivered, entries, reach)
    return receipt.model_copy(update={"recipients_left_out": audience.left_out})


class _Reach:
    """The step's holds, and when each of its people may next be sent to on their channel:
    the receipt tells the journey, which waits for it rather than ask only to be held. A
    person held on the step's last ask (held once already) is recorded capped instead."""

    def __init__(self, guard: Holds, request: DeliverRequest) -> None:
        self.guard, self.request = guard, request
        rails = request.guard_rails
        self.last_ask = rails is not None and rails.last_ask
        self.holds: list[HeldBack] = []
        self.capped = 0
        self.next: list[NextReach] = []

    def held(self, contact_id: str, role: str, route: Route, hold: HeldBack) -> RecipientReceipt:
        self.next.append(
            NextReach(channel=route.channel, contact_id=contact_id, at=hold.until, why=str(hold))
        )
        if self.last_ask:
            self.capped += 1
            return _listed(contact_id, role, route, "capped", f"not sent: {hold}")
        self.holds.append(hold)
        return _listed(contact_id, role, route, "held", str(hold))

    def after(self, contact_id: str, route: Route, receipt: DeliveryReceipt) -> None:
        """Their next free moment on the channel this step's message used (the fallback's)."""
        if self.request.guard_rails is None or receipt.channel in CSM_CHANNELS:
            return
        used = replace(route, channel=receipt.channel, recipient=receipt.recipient)
        if (free := self.guard.next_reach(used, contact_id, receipt.idempotency_key)) is not None:
            self.next.append(free)


def _receipt(
    request: DeliverRequest,
    first: Route,
    delivered: list[DeliveryReceipt],
    entries: list[RecipientReceipt],
    reach: _Reach,
) -> DeliveryReceipt:
    """The first delivered message's receipt (a blank one when none was), listing everyone,
    when to ask again when some are held, and when each may next be sent to."""
    held = reach.holds
    until = min((hold.until for hold in held), default=None)
    why = next((str(hold) for hold in held if hold.until == until), "")
    update: dict[str, object] = {
        "recipients": entries,
        "held_until": until,
        "held_why": why,
        "next_reach": reach.next,
    }
    if delivered:
        duplicate = all(receipt.duplicate for receipt in delivered)
        return delivered[0].model_copy(update=update | {"duplicate": duplicate})
    blank = DeliveryReceipt(
        outbox_id="",
        idempotency_key=request.idempotency_key,
        channel=first.channel,
        recipient="",
        fallback_used=False,
        duplicate=False,
        path="",
        subject="",
    )
    return blank.model_copy(update=update)


def _deliver_route(sender: _Sender, request: DeliverRequest, route: Route) -> DeliveryReceipt:
    """One message, on the route's fallback when the first channel is refused for good."""
    while True:  # at most twice: a fallback route has no fallback of its own
        try:
            return _deliver_on(sender, request, route)
        except DeliveryFailed as failure:
            if not failure.permanent:
                raise
            fallback = _fallback_route(request, route, because=str(failure))
            if fallback is None:
                raise type(failure)(f"{failure}; no usable fallback channel") from failure
            route = fallback


def _deliver_on(sender: _Sender, request: DeliverRequest, route: Route) -> DeliveryReceipt:
    engine = sender.engine
    # What it reads before it writes, in one session: the row, the suppression, the cap's count.
    entry: SuppressionRow | None = None
    hold: HeldBack | None = None
    with session(engine) as reads:
        existing = find_in(reads, route.key)
        if existing is None:  # a reserved row was on its way out before any suppression: resend
            entry = _suppression(reads, request, route)
            hold = None if entry is not None else sender.holds.hold_on(route, reads)
    if existing is not None and existing.status != "sending":
        return refused_or_receipt(existing)
    if entry is not None:
        _refuse_suppressed(engine, request, route, entry)
    if hold is not None:
        raise hold
    provider = None if request.held_out else sender.providers.get(route.channel)
    if provider is not None:
        return send_live(engine, sender.templates, request, route, provider)
    if existing is not None:
        # Reserved by a worker that had this provider: never silently captured instead.
        raise ProviderUnavailable(
            f"{route.key} is being sent live, but no {route.channel} provider"
        )
    return capture(engine, sender.outbox_dir, sender.templates, request, route)


def _fallback_route(request: DeliverRequest, refused: Route, because: str) -> Route | None:
    """The step's fallback channel, if it is another channel that can reach the person (the
    customer, for the step's one message)."""
    fallback = request.step.fallback_channel
    if fallback is None or fallback == refused.channel or refused.fallback_used:
        return None
    note = f"fallback: {because}"
    if (person := refused.person) is not None:
        address = address_for(fallback, person.contact)
        if address is None:
            return None
        moved = person.model_copy(update={"address": address})
        return Route.for_person(request, fallback, moved, note=note)
    if not can_reach(fallback, request.customer):
        return None
    return Route.to(f"{request.idempotency_key}:fallback", fallback, True, request, note=note)


def _suppression(reads: Session, request: DeliverRequest, route: Route) -> SuppressionRow | None:
    """The entry that puts the customer or the address on the suppression list for the route's
    channel, if any. CSM work is never suppressed."""
    if route.channel not in CUSTOMER_CHANNELS:
        return None
    addresses = _addressed(request, route)
    return suppression_for(reads, request.customer.customer_id, route.channel, addresses)


def _refuse_suppressed(
    engine: Engine, request: DeliverRequest, route: Route, entry: SuppressionRow
) -> NoReturn:
    """Raise Suppressed, after recording the unsent message."""
    why = (
        f"{route.channel} to {entry.person or route.recipient} suppressed since "
        f"{entry.at:%Y-%m-%d} ({entry.reason}; {entry.source})"
    )
    unsent = RenderedMessage(subject="", body="")  # never rendered: it is never sent
    row = new_row(request, route, unsent, status="suppressed")
    row.note = why
    insert_once(engine, request, row, with_intervention=False)
    raise Suppressed(why)


def _addressed(request: DeliverRequest, route: Route) -> list[str]:
    """The addresses a suppression of the route is checked against: where it goes and, for the
    step's one in-app message, where the account's inbox is everyone's, the email of the
    person the message speaks to."""
    if route.channel != "in_app" or route.person is not None:
        return [route.recipient]
    person, _role = spoken_to(request.step.addressing, route.channel, request.customer)
    return [route.recipient, person.email]


def _record_suppressed_step(engine: Engine, request: DeliverRequest, route: Route) -> None:
    """The step's intervention row, when suppression left it nothing to send on: the last
    channel's (the fallback's when it had one)."""
    row = find(engine, f"{route.key}:fallback") or find(engine, route.key)
    if row is None:
        return
    try:
        with session(engine) as db:
            db.add(intervention(request, row))
    except IntegrityError:
        pass  # a retried activity recorded it already


def _delivered(contact_id: str, role: str, receipt: DeliveryReceipt) -> RecipientReceipt:
    status: RecipientStatus = "held_out" if receipt.held_out else "captured"
    if receipt.mode == "live" and not receipt.held_out:
        status = "sent"
    return RecipientReceipt(
        contact_id=contact_id,
        role=role,
        channel=receipt.channel,
        address=masked(receipt.recipient),
        status=status,
        fallback_used=receipt.fallback_used,
        note=receipt.note,
    )


def _listed(
    contact_id: str, role: str, route: Route, status: RecipientStatus | None, why: str
) -> RecipientReceipt:
    """A person the step did not reach (yet): refused, suppressed or held back."""
    return RecipientReceipt(
        contact_id=contact_id,
        role=role,
        channel=route.channel,
        address=masked(route.recipient),
        status=status or "rejected",
        note=why,
    )


def _retry_all(waiting: list[DeliveryFailed]) -> ProviderUnavailable:
    """Some people's provider asked to wait: the step is tried again whole (those it reached
    find their rows and get nothing twice), after the longest wait any provider asked for."""
    delays = [failure.retry_after for failure in waiting if failure.retry_after is not None]
    reasons = "; ".join(dict.fromkeys(str(failure) for failure in waiting))
    return ProviderUnavailable(reasons, retry_after=max(delays, default=None))
