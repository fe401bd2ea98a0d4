"""The inbox on SQLite and PostgreSQL: dedupe by source event id; claims that take many
customers at once, one customer's rows in order, and never overlap."""

from __future__ import annotations

import concurrent.futures
from datetime import timedelta

import pytest
from sqlalchemy import Engine

from retention.customer import CustomerEvent
from retention.ingest import inbox
from retention.ingest.claims import Claim, claim
from retention.ingest.modes import Mode
from retention.ingest.sources import MappedEvent
from retention.store.tables import utcnow

pytestmark = pytest.mark.database


def mapped(event_id: str, customer_id: str = "acme", kind: str = "login") -> MappedEvent:
    event = CustomerEvent(type="login") if kind == "login" else None
    return MappedEvent(event_id, kind, customer_id, event)


def test_a_second_delivery_finds_the_first_row(engine: Engine) -> None:
    first = inbox.receive(engine, "segment", mapped("m-1"))
    again = inbox.receive(engine, "segment", mapped("m-1"))
    other_source = inbox.receive(engine, "generic", mapped("m-1"))
    assert not first.duplicate and again.duplicate and not other_source.duplicate
    assert again.row.id == first.row.id != other_source.row.id
    assert [r.status for r in inbox.rows(engine)] == ["pending", "pending"]
    assert first.row.event == {"type": "login", "at": None, "data": {}, "count": 1}


def test_an_unmapped_kind_is_kept_as_ignored_and_never_claimed(engine: Engine) -> None:
    inbox.receive(engine, "segment", mapped("m-2", kind="Page"))
    assert [(r.status, r.event) for r in inbox.rows(engine)] == [("ignored", None)]
    assert claim(engine, "f1", customers=8) == []


def test_an_event_a_journey_took_from_the_cli_is_kept_settled_and_never_claimed(
    engine: Engine,
) -> None:
    inbox.record_sent(engine, "cli", "acme", CustomerEvent(type="login"), "request-1")

    [row] = inbox.rows(engine)
    assert (row.source, row.source_event_id, row.status) == ("cli", "request-1", "forwarded")
    assert (row.workflow_id, row.event_type) == ("retention-acme", "login")
    assert row.forwarded_at is not None and inbox.pending_count(engine) == 0
    assert claim(engine, "f1", customers=8) == []


def test_a_claim_takes_many_customers_at_once_each_in_order(engine: Engine) -> None:
    for n in range(6):
        inbox.receive(engine, "generic", mapped(f"e-{n}", f"c-{n % 3}"))

    claims = claim(engine, "f1", customers=8)

    assert [c.customer_id for c in claims] == ["c-0", "c-1", "c-2"]
    assert [[b.rows[0].source_event_id for b in c.batches] for c in claims] == [
        ["e-0", "e-3"],
        ["e-1", "e-4"],
        ["e-2", "e-5"],
    ]
    assert [b.request_id for b in claims[0].batches] == ["inbox:generic:e-0", "inbox:generic:e-3"]
    assert {(r.status, r.claimed_by, r.attempts) for r in inbox.rows(engine)} == {
        ("forwarding", "f1", 1)
    }


def test_a_customer_in_flight_is_not_claimed_again_until_settled(engine: Engine) -> None:
    first = inbox.receive(engine, "generic", mapped("e-1", "acme")).row
    assert [c.customer_id for c in claim(engine, "f1", customers=8)] == ["acme"]
    inbox.receive(engine, "generic", mapped("e-2", "acme"))
    inbox.receive(engine, "generic", mapped("e-3", "globex"))

    assert [c.customer_id for c in claim(engine, "f2", customers=8)] == ["globex"]
    inbox.settle(engine, [int(first.id or 0)], "forwarded", workflow_id="retention-acme")
    again = claim(engine, "f2", customers=8)
    assert [(c.customer_id, c.batches[0].rows[0].source_event_id) for c in again] == [
        ("acme", "e-2")
    ]
    settled = inbox.get(engine, int(first.id or 0))
    assert settled is not None and settled.forwarded_at is not None
    assert (settled.status, settled.workflow_id) == ("forwarded", "retention-acme")
    assert inbox.pending_count(engine) == 2


def test_released_rows_are_pending_again_and_keep_their_batch(engine: Engine) -> None:
    inbox.receive(engine, "generic", mapped("e-1"))
    (taken,) = claim(engine, "f1", customers=8)
    inbox.release(engine, taken.ids, "Temporal unreachable")

    (again,) = claim(engine, "f2", customers=8)
    assert again.batches[0].name == taken.batches[0].name == "generic:e-1"
    row = inbox.get(engine, again.ids[0])
    assert row is not None and (row.attempts, row.note) == (2, "Temporal unreachable")


def test_a_claim_whose_lease_ran_out_is_taken_again(engine: Engine) -> None:
    row_id = inbox.receive(engine, "generic", mapped("e-1")).row.id
    assert claim(engine, "dead", customers=8) != []
    assert claim(engine, "f2", customers=8) == []
    later = utcnow() + inbox.CLAIM_LEASE + timedelta(seconds=1)
    (retaken,) = claim(engine, "f2", customers=8, now=later)
    assert retaken.ids == [row_id]
    row = inbox.get(engine, int(row_id or 0))
    assert row is not None and (row.claimed_by, row.attempts) == ("f2", 2)


def test_racing_forwarders_never_take_the_same_row(engine: Engine) -> None:
    for n in range(120):
        inbox.receive(engine, "generic", mapped(f"e-{n}", f"c-{n % 40}"))

    def take_all(name: str) -> list[int]:
        taken = []
        while claims := claim(engine, name, customers=3, per_customer=2):
            ids = [i for c in claims for i in c.ids]
            inbox.settle(engine, ids, "forwarded")
            taken += ids
        return taken

    with concurrent.futures.ThreadPoolExecutor(max_workers=4) as pool:
        runs = list(pool.map(take_all, ["f1", "f2", "f3", "f4"]))
    every = [row_id for run in runs for row_id in run]
    assert len(every) == len(set(every)) == 120
    assert {(r.status, r.attempts) for r in inbox.rows(engine)} == {("forwarded", 1)}


def test_one_claim_gives_each_customer_its_oldest_rows_up_to_its_share(engine: Engine) -> None:
    for n in range(9):
        inbox.receive(engine, "generic", mapped(f"e-{n}", f"c-{n % 3}"))

    def taken(claims: list[Claim]) -> list[list[str]]:
        return [[b.rows[0].source_event_id for b in c.batches] for c in claims]

    first = claim(engine, "f1", customers=8, per_customer=2)
    assert taken(first) == [["e-0", "e-3"], ["e-1", "e-4"], ["e-2", "e-5"]]
    inbox.settle(engine, [i for c in first for i in c.ids], "forwarded")
    assert taken(claim(engine, "f1", customers=8, per_customer=2)) == [["e-6"], ["e-7"], ["e-8"]]


def test_one_claim_batches_each_customers_coalesced_types_apart(engine: Engine) -> None:
    """Every customer's due types in one claim, each batch only its customer's and type's
    rows; a type not due yet (globex's logins) stays pending, out of any batch."""
    now, later = Mode("coalesce"), Mode("coalesce", timedelta(minutes=5))

    def row(n: int, customer_id: str, kind: str, mode: Mode) -> int:
        event = CustomerEvent(type=kind)
        found = inbox.receive(
            engine, "generic", MappedEvent(f"e-{n}", kind, customer_id, event), mode
        )
        return int(found.row.id or 0)

    acme_login = [row(0, "acme", "login", now), row(1, "acme", "login", now)]
    acme_used = [row(2, "acme", "feature_used", now), row(3, "acme", "feature_used", later)]
    globex_used = [row(4, "globex", "feature_used", now)]
    globex_login = row(5, "globex", "login", later)

    claims = claim(engine, "f1", customers=8)

    assert [(c.customer_id, [b.ids for b in c.batches]) for c in claims] == [
        ("acme", [acme_login, acme_used]),
        ("globex", [globex_used]),
    ]
    assert [b.event().count for c in claims for b in c.batches] == [2, 2, 1]
    waiting = inbox.get(engine, globex_login)
    assert waiting is not None and (waiting.status, waiting.batch) == ("pending", None)


def test_settlements_written_together_keep_each_its_own_values(engine: Engine) -> None:
    a, b, c = (
        int(inbox.receive(engine, "generic", mapped(f"e-{n}")).row.id or 0) for n in range(3)
    )
    claim(engine, "f1", customers=8)

    inbox.settle_all(
        engine,
        [
            inbox.Settlement([a, b], "forwarded", "retention-acme", note="one signal"),
            inbox.Settlement([c], "failed", note="refused"),
        ],
    )

    assert [
        (r.status, r.workflow_id, r.note, r.forwarded_at is not None, r.claimed_by)
        for r in inbox.rows(engine)
    ] == [
        ("forwarded", "retention-acme", "one signal", True, None),
        ("forwarded", "retention-acme", "one signal", True, None),
        ("failed", None, "refused", False, None),
    ]
