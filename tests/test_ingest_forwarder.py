"""The forwarder against a real worker on the time-skipping server: two forwarders racing over
one inbox deliver every event once and in order; an event that opens a journey starts it."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from conftest import JourneyWorld
from factories import make_customer
from journeys import end_journey, nurture_customer, start, state_of, until
from temporalio.client import Client

from retention.customer import CustomerEvent
from retention.ingest import inbox
from retention.ingest.forwarder import Forwarder
from retention.ingest.sources import MappedEvent, load_sources
from retention.journey import JourneyState
from retention.store.db import session
from retention.store.records import save_customer
from retention.store.tables import CustomerRow

pytestmark = pytest.mark.database

RULES = Path(__file__).resolve().parent.parent / "rules"


def forwarder(world: JourneyWorld) -> Forwarder:
    async def connect() -> Client:
        return world.client

    sources = load_sources(RULES)
    return Forwarder(world.engine, lambda: sources, connect, task_queue=world.task_queue)


def receive(world: JourneyWorld, event_id: str, customer_id: str, event: CustomerEvent) -> int:
    mapped = MappedEvent(event_id, event.type, customer_id, event)
    return int(inbox.receive(world.engine, "generic", mapped).row.id or 0)


async def test_racing_forwarders_deliver_each_event_once_in_order(world: JourneyWorld) -> None:
    customer = nurture_customer()
    handle = await start(world, customer)
    used = [CustomerEvent(type="feature_used", data={"n": n}) for n in range(12)]
    ids = [receive(world, f"e-{n}", customer.customer_id, e) for n, e in enumerate(used)]
    stranger = receive(world, "e-x", "nobody-here", CustomerEvent(type="login"))

    settled = await asyncio.gather(forwarder(world).drain(), forwarder(world).drain())

    assert sum(settled) == 13
    rows = {row.id: row for row in inbox.rows(world.engine)}
    assert {rows[i].status for i in ids} == {"forwarded"}
    assert rows[stranger].status == "no_journey"
    state = await until(world, handle, lambda s: s.events.received >= 12)
    assert [e.data["n"] for e in state.events.recent] == list(range(12))
    await end_journey(handle)


async def test_payment_failed_opens_a_journey_for_a_high_value_customer(
    world: JourneyWorld,
) -> None:
    acv = {"annual_contract_value": 80_000.0}
    save_customer(world.engine, make_customer(profile={"customer_id": "fw-big"}, financial=acv))
    row_id = receive(world, "evt-1", "fw-big", CustomerEvent(type="payment_failed"))

    assert await forwarder(world).drain() == 1

    row = inbox.get(world.engine, row_id)
    assert row is not None and row.status == "forwarded" and row.started_journey
    handle = world.client.get_workflow_handle(str(row.workflow_id), result_type=JourneyState)
    world.journeys.append(handle)
    state = await state_of(handle)
    assert [e.type for e in state.events.recent][:1] == ["payment_failed"]
    await end_journey(handle)


async def test_a_row_that_cannot_be_delivered_fails_without_blocking_the_rest(
    world: JourneyWorld,
) -> None:
    with session(world.engine) as db:  # a record an older version wrote, no longer valid
        db.add(CustomerRow(customer_id="fw-broken", snapshot={"profile": {"name": "?"}}))
    broken = receive(world, "evt-2", "fw-broken", CustomerEvent(type="payment_failed"))
    customer = nurture_customer()
    handle = await start(world, customer)
    after = receive(world, "evt-3", customer.customer_id, CustomerEvent(type="login"))

    assert await forwarder(world).drain() == 2

    failed = inbox.get(world.engine, broken)
    assert failed is not None and failed.status == "failed"
    assert "customers[fw-broken]: profile.customer_id" in (failed.note or "")
    assert inbox.get(world.engine, after).status == "forwarded"  # type: ignore[union-attr]
    state = await until(world, handle, lambda s: s.events.received >= 1)
    assert [e.type for e in state.events.recent] == ["login"]
    await end_journey(handle)
