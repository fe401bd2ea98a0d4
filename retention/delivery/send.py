"""Deliver one plan step: captured, or live through the channel's provider, with the step's
fallback channel when the provider refuses the first for good or the customer is suppressed on
it. A suppressed message is never rendered or sent; its outbox row says why."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from types import MappingProxyType

from sqlalchemy import Engine
from sqlalchemy.exc import IntegrityError

from retention.delivery.channels import can_reach, resolve_channel
from retention.delivery.live import refused_or_receipt, send_live
from retention.delivery.outbox import (
    DeliverRequest,
    DeliveryReceipt,
    Route,
    capture,
    find,
    insert_once,
    intervention,
    new_row,
)
from retention.delivery.providers import Provider
from retention.delivery.templates import RenderedMessage, TemplateSet
from retention.errors import DeliveryFailed, ProviderUnavailable, Suppressed
from retention.plan import CUSTOMER_CHANNELS, Channel
from retention.recipients import spoken_to
from retention.store.db import session
from retention.store.suppressions import suppression_for

CAPTURE_ONLY: Mapping[Channel, Provider] = MappingProxyType({})


def deliver(
    engine: Engine,
    outbox_dir: Path,
    templates: TemplateSet,
    request: DeliverRequest,
    providers: Mapping[Channel, Provider] = CAPTURE_ONLY,
) -> DeliveryReceipt:
    """Exactly once per step. A channel without a provider (capture mode, in-app, CSM work) and
    a held-out customer's message are captured; raises DeliveryFailed when nothing got through:
    `ProviderUnavailable` to retry later, or the refusal (or suppression) when no usable
    fallback is left."""
    channel, fallback_used = resolve_channel(request.step, request.customer)
    route = Route.to(request.idempotency_key, channel, fallback_used, request)
    while True:  # at most twice: a fallback route has no fallback of its own
        try:
            return _deliver_on(engine, outbox_dir, templates, request, route, providers)
        except DeliveryFailed as failure:
            if not failure.permanent:
                raise
            fallback = _fallback_route(request, route, because=str(failure))
            if fallback is None:
                if isinstance(failure, Suppressed):
                    _record_suppressed_step(engine, request, route)
                raise type(failure)(f"{failure}; no usable fallback channel") from failure
            route = fallback


def _deliver_on(
    engine: Engine,
    outbox_dir: Path,
    templates: TemplateSet,
    request: DeliverRequest,
    route: Route,
    providers: Mapping[Channel, Provider],
) -> DeliveryReceipt:
    existing = find(engine, route.key)
    if existing is not None and existing.status != "sending":
        return refused_or_receipt(existing)
    if existing is None:  # a reserved row was on its way out before any suppression: resend
        _refuse_if_suppressed(engine, request, route)
    provider = None if request.held_out else providers.get(route.channel)
    if provider is not None:
        return send_live(engine, templates, request, route, provider)
    if existing is not None:
        # Reserved by a worker that had this provider: never silently captured instead.
        raise ProviderUnavailable(
            f"{route.key} is being sent live, but no {route.channel} provider"
        )
    return capture(engine, outbox_dir, templates, request, route)


def _fallback_route(request: DeliverRequest, refused: Route, because: str) -> Route | None:
    """The step's fallback channel, if it is another channel that can reach the customer."""
    fallback = request.step.fallback_channel
    if fallback is None or fallback == refused.channel or refused.fallback_used:
        return None
    if not can_reach(fallback, request.customer):
        return None
    key, note = f"{request.idempotency_key}:fallback", f"fallback: {because}"
    return Route.to(key, fallback, True, request, note=note)


def _refuse_if_suppressed(engine: Engine, request: DeliverRequest, route: Route) -> None:
    """Raise Suppressed, after recording the unsent message, when the customer or the address is
    on the suppression list for the route's channel. CSM work is never suppressed."""
    if route.channel not in CUSTOMER_CHANNELS:
        return
    customer_id = request.customer.customer_id
    addresses = _addressed(request, route)
    entry = suppression_for(engine, customer_id, route.channel, addresses)
    if entry is None:
        return
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
    """The addresses a suppression of the route is checked against: where it goes and, in-app,
    where the account's inbox is everyone's, the email of the person the message speaks to."""
    if route.channel != "in_app":
        return [route.recipient]
    person, _role = spoken_to(request.step.addressing, route.channel, request.customer)
    return [route.recipient, person.email]


def _record_suppressed_step(engine: Engine, request: DeliverRequest, route: Route) -> None:
    """The step's intervention row, when suppression left it nothing to send on."""
    row = find(engine, route.key)
    if row is None:
        return
    try:
        with session(engine) as db:
            db.add(intervention(request, row))
    except IntegrityError:
        pass  # a retried activity recorded it already
