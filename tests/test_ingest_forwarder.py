"""The forwarder against a real worker on the time-skipping server: two forwarders racing over
one inbox deliver every event once and in order; an event that opens a journey starts it;
coalesced rows reach the journey as one signal, once, even across a forwarder's death."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from conftest import JourneyWorld
from factories import make_customer
from journey_stories import end_journey, nurture_customer, start, state_of, until
from sqlalchemy import update
from temporalio.client import Client, WorkflowHandle

from retention.customer import CustomerEvent
from retention.ingest import forwarder as forwarder_module
from retention.ingest import inbox
from retention.ingest.forwarder import Forwarder
from retention.ingest.modes import FORWARD, Mode
from retention.ingest.sources import MappedEvent, load_sources
from retention.journey_state import JourneyState
from retention.runtime.operations import recorded_event, send_event
from retention.store.db import session
from retention.store.records import save_customer
from retention.store.tables import CustomerRow, InboxRow, utcnow

pytestmark = pytest.mark.database

RULES = Path(__file__).resolve().parent.parent / "rules"


def forwarder(world: JourneyWorld) -> Forwarder:
    async def connect() -> Client:
        return world.client

    sources = load_sources(RULES)
    return Forwarder(world.engine, lambda: sources, connect, task_queue=world.task_queue)


def receive(
    world: JourneyWorld, event_id: str, customer_id: str, event: CustomerEvent, mode: Mode = FORWARD
) -> int:
    mapped = MappedEvent(event_id, event.type, customer_id, event)
    return int(inbox.receive(world.engine, "generic", mapped, mode).row.id or 0)


COALESCE_NOW = Mode("coalesce")  # interval 0: due at once, so the test need not wait


def used_at_minutes(world: JourneyWorld, customer_id: str, minutes: list[int]) -> list[int]:
    """`feature_used` rows, coalesced, happening at 12:00 + each minute."""
    at = datetime(2026, 12, 1, 12, tzinfo=UTC)
    return [
        receive(
            world,
            f"u-{m}",
            customer_id,
            CustomerEvent(type="feature_used", at=at + timedelta(minutes=m), data={"m": m}),
            COALESCE_NOW,
        )
        for m in minutes
    ]


async def signals(world: JourneyWorld, handle: WorkflowHandle) -> list[dict[str, Any]]:
    """The customer events in the journey's history, as sent."""
    history = await handle.fetch_history()
    found = [await recorded_event(world.client, entry) for entry in history.events]
    return [event for event in found if event is not None]


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


async def test_coalesced_rows_reach_the_journey_as_one_signal_with_their_count(
    world: JourneyWorld,
) -> None:
    customer = nurture_customer()
    handle = await start(world, customer)
    ids = used_at_minutes(world, customer.customer_id, [3, 9, 1, 7, 5, 2])

    assert await forwarder(world).drain() == 6

    rows = [inbox.get(world.engine, i) for i in ids]
    assert {(r.status, r.workflow_id, r.batch) for r in rows if r} == {
        (
            "forwarded",
            handle.id,
            f"coalesced:{customer.customer_id}:feature_used:{ids[0]}-{ids[-1]}",
        )
    }
    assert all("one signal for 6 rows" in (r.note or "") for r in rows if r)
    (sent,) = await signals(world, handle)
    assert (sent["type"], sent["count"], sent["data"]) == ("feature_used", 6, {"m": 2})
    assert sent["at"].startswith("2026-12-01T12:09")  # the newest, not the last received
    await end_journey(handle)


class Died(BaseException):
    """The forwarder's process ending at once: nothing after the signal runs."""


async def test_a_forwarder_dying_after_the_signal_resends_the_same_batch_and_request_id(
    world: JourneyWorld, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Temporal drops a signal whose request id it has seen (the dev server does:
    test_ingest_service.py; the time-skipping server does not), so what matters here is that
    the retry sends the very same batch under the very same request id."""
    customer = nurture_customer()
    handle = await start(world, customer)
    ids = used_at_minutes(world, customer.customer_id, [1, 2, 3, 4])
    sent: list[tuple[str, int]] = []

    async def send_and_note(
        client: Client, customer_id: str, event: CustomerEvent, *, request_id: str
    ) -> None:
        sent.append((request_id, event.count))
        await send_event(client, customer_id, event, request_id=request_id)

    def die(*_args: object, **_kwargs: object) -> None:
        raise Died

    monkeypatch.setattr(forwarder_module, "send_event", send_and_note)
    with monkeypatch.context() as patch:
        patch.setattr(inbox, "settle_all", die)
        patch.setattr(inbox, "release", die)
        with pytest.raises(Died):
            await forwarder(world).drain()
    assert {r.status for r in inbox.rows(world.engine)} == {"forwarding"}

    lease_over = utcnow() - inbox.CLAIM_LEASE - timedelta(seconds=1)
    with session(world.engine) as db:  # the dead forwarder's lease runs out
        db.exec(update(InboxRow).values(claimed_at=lease_over))  # type: ignore[call-overload]
    late = CustomerEvent(type="feature_used")
    receive(world, "u-late", customer.customer_id, late, COALESCE_NOW)

    assert await forwarder(world).drain() == 5

    batch = f"inbox:coalesced:{customer.customer_id}:feature_used:{ids[0]}-{ids[-1]}"
    assert sent[:2] == [(batch, 4), (batch, 4)] and sent[2][1] == 1 and sent[2][0] != batch
    settled = inbox.rows(world.engine)
    assert {r.status for r in settled} == {"forwarded"}
    assert {r.attempts for r in settled if r.id in ids} == {2}
    await end_journey(handle)
