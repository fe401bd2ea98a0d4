"""Deliver one plan step: captured, or live through the channel's provider, with the step's
fallback channel when the provider refuses the first for good."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from types import MappingProxyType

from sqlalchemy import Engine

from retention.delivery.channels import can_reach, resolve_channel
from retention.delivery.live import refused_or_receipt, send_live
from retention.delivery.outbox import DeliverRequest, DeliveryReceipt, Route, capture, find
from retention.delivery.providers import Provider
from retention.delivery.templates import TemplateSet
from retention.errors import DeliveryFailed, ProviderUnavailable
from retention.plan import Channel

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
    `ProviderUnavailable` to retry later, or the refusal when no usable fallback is left."""
    channel, fallback_used = resolve_channel(request.step, request.customer)
    route = Route.to(request.idempotency_key, channel, fallback_used, request)
    try:
        return _deliver_on(engine, outbox_dir, templates, request, route, providers)
    except DeliveryFailed as failure:
        if not failure.permanent:
            raise
        fallback = _fallback_route(request, route)
        if fallback is None:
            raise type(failure)(f"{failure}; no usable fallback channel") from failure
        return _deliver_on(engine, outbox_dir, templates, request, fallback, providers)


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
    provider = None if request.held_out else providers.get(route.channel)
    if provider is not None:
        return send_live(engine, templates, request, route, provider)
    if existing is not None:
        # Reserved by a worker that had this provider: never silently captured instead.
        raise ProviderUnavailable(
            f"{route.key} is being sent live, but no {route.channel} provider"
        )
    return capture(engine, outbox_dir, templates, request, route)


def _fallback_route(request: DeliverRequest, refused: Route) -> Route | None:
    """The step's fallback channel, if it is another channel that can reach the customer."""
    fallback = request.step.fallback_channel
    if fallback is None or fallback == refused.channel or refused.fallback_used:
        return None
    if not can_reach(fallback, request.customer):
        return None
    return Route.to(f"{request.idempotency_key}:fallback", fallback, True, request)
