"""The inbox on SQLite and PostgreSQL: dedupe by source event id, claims that never overlap."""

from __future__ import annotations

import concurrent.futures
from datetime import timedelta

import pytest
from sqlalchemy import Engine

from retention.customer import CustomerEvent
from retention.ingest import inbox
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
    assert first.row.event == {"type": "login", "at": None, "data": {}}


def test_an_unmapped_kind_is_kept_as_ignored_and_never_claimed(engine: Engine) -> None:
    inbox.receive(engine, "segment", mapped("m-2", kind="Page"))
    assert [(r.status, r.event) for r in inbox.rows(engine)] == [("ignored", None)]
    assert inbox.claim_next(engine, "f1") is None


def test_claims_go_oldest_first_and_settle_once(engine: Engine) -> None:
    ids = [inbox.receive(engine, "generic", mapped(f"e-{n}", f"c-{n}")).row.id for n in range(3)]
    first = inbox.claim_next(engine, "f1")
    assert first is not None and first.id == ids[0]
    assert (first.status, first.claimed_by, first.attempts) == ("forwarding", "f1", 1)
    inbox.settle(engine, ids[0], "forwarded", workflow_id="retention-c-0")
    second = inbox.claim_next(engine, "f1")
    assert second is not None and second.id == ids[1]
    inbox.release(engine, ids[1], "Temporal unreachable")
    assert inbox.get(engine, ids[1]).status == "pending"  # type: ignore[union-attr]
    settled = inbox.get(engine, ids[0])
    assert settled is not None and settled.forwarded_at is not None
    assert (settled.status, settled.workflow_id) == ("forwarded", "retention-c-0")
    assert inbox.pending_count(engine) == 2


def test_a_customers_later_event_waits_for_the_earlier_one(engine: Engine) -> None:
    inbox.receive(engine, "generic", mapped("e-1", "acme"))
    inbox.receive(engine, "generic", mapped("e-2", "acme"))
    inbox.receive(engine, "generic", mapped("e-3", "globex"))
    taken = [inbox.claim_next(engine, "f1"), inbox.claim_next(engine, "f2")]
    assert [(r.source_event_id if r else None) for r in taken] == ["e-1", "e-3"]
    assert inbox.claim_next(engine, "f3") is None


def test_a_claim_whose_lease_ran_out_is_taken_again(engine: Engine) -> None:
    row_id = inbox.receive(engine, "generic", mapped("e-1")).row.id
    assert inbox.claim_next(engine, "dead") is not None
    assert inbox.claim_next(engine, "f2") is None
    later = utcnow() + inbox.CLAIM_LEASE + timedelta(seconds=1)
    retaken = inbox.claim_next(engine, "f2", now=later)
    assert retaken is not None and (retaken.id, retaken.claimed_by, retaken.attempts) == (
        row_id,
        "f2",
        2,
    )


def test_racing_forwarders_never_take_the_same_row(engine: Engine) -> None:
    for n in range(40):
        inbox.receive(engine, "generic", mapped(f"e-{n}", f"c-{n}"))

    def take_all(name: str) -> list[int]:
        taken = []
        while (row := inbox.claim_next(engine, name)) is not None:
            taken.append(int(row.id or 0))
        return taken

    with concurrent.futures.ThreadPoolExecutor(max_workers=4) as pool:
        runs = list(pool.map(take_all, ["f1", "f2", "f3", "f4"]))
    every = [row_id for run in runs for row_id in run]
    assert len(every) == len(set(every)) == 40
    assert {r.claimed_by for r in inbox.rows(engine)} <= {"f1", "f2", "f3", "f4"}
