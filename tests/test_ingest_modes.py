"""`delivery` in rules/sources.yaml: what each mode does to an inbox row, and the mappings
`rules check`, the service and a live edit refuse because they would drop or blur an event a
rule reads."""

from __future__ import annotations

import logging
import re
from pathlib import Path

import pytest
from factories import replace_once
from sqlalchemy import Engine

from retention.customer import CustomerEvent
from retention.ingest import inbox
from retention.ingest.claims import claim
from retention.ingest.pace import Pace
from retention.ingest.sources import (
    MappedEvent,
    Sources,
    SourcesWatch,
    load_sources,
    sources_findings,
)
from retention.store.tables import utcnow

RULES = Path(__file__).resolve().parent.parent / "rules"


@pytest.fixture(scope="module")
def sources() -> Sources:
    return load_sources(RULES)


def add_delivery(rules: Path, entry: str) -> None:
    replace_once(rules / "sources.yaml", "delivery:\n", f"delivery:\n  {entry}\n")


def line_of(path: Path, text: str) -> int:
    return next(n for n, line in enumerate(path.read_text().splitlines(), 1) if text in line)


def test_the_shipped_modes_coalesce_analytics_and_forward_the_rest(sources: Sources) -> None:
    def mode(kind: str) -> tuple[str, float]:
        found = sources.mode(CustomerEvent.model_validate({"type": kind, **_data(kind)}))
        return found.name, found.interval.total_seconds()

    assert mode("feature_used") == ("coalesce", 300)
    assert {mode(k) for k in ("login", "email_opened", "email_clicked")} == {("coalesce", 60)}
    forwarded = ["churned", "renewed", "meeting_booked", "payment_failed", "nps_response"]
    assert {mode(k) for k in [*forwarded, "unsubscribed", "milestone_reached"]} == {("forward", 0)}


EXAMPLE_DATA: dict[str, dict[str, object]] = {
    "nps_response": {"data": {"score": 9}},
    "milestone_reached": {"data": {"milestone": "first_success"}},
}


def _data(kind: str) -> dict[str, object]:
    return EXAMPLE_DATA.get(kind, {})


@pytest.mark.parametrize(
    ("entry", "reader"),
    [
        ("churned: record", r"journey exit exits\[1\] reads it \(.*journey.yaml:\d+:"),
        ("replied: record", r"campaign advocacy's exit reads it \(.*campaigns.yaml:\d+:"),
        ("milestone_reached: record", r"campaign success_milestone's on_event reads it"),
        ("payment_failed: record", r"opens_journey\[0\] reads it \(.*sources.yaml:\d+:"),
        ("ticket_opened: record", r"the re-score effect \(EFFECTS\) reads it \(retention/events"),
        (
            "unsubscribed: record",
            r"unsubscribe handling .* reads it \(workflows/retention_journey.py\)",
        ),
        ("renewed: {coalesce: 60s}", r"exits\[0\] ends the journey on it \(.*journey.yaml:\d+:"),
        ("nps_response: {coalesce: 60s}", r"would merge each answer's score"),
        ("payment_succeeded: {coalesce: 1h}", r"would merge the invoice each one names"),
        ("task_completed: {coalesce: 1h}", r"would merge which CSM task"),
    ],
)
def test_rules_check_refuses_a_mode_that_drops_or_blurs_what_a_rule_reads(
    rules_copy: Path, entry: str, reader: str
) -> None:
    add_delivery(rules_copy, entry)
    path = rules_copy / "sources.yaml"
    event = entry.split(":")[0]

    (finding,) = sources_findings(rules_copy)

    assert finding.startswith(f"{path}:{line_of(path, entry)}:3: delivery {event}: ")
    assert re.search(reader, finding), finding


@pytest.mark.parametrize(
    ("entry", "problem"),
    [
        ("ticket_message: {coalesce: soon}", "a duration like 24h"),
        ("ticket_message: {coalesce: 2d}", "above 0 and at most 24h"),
        ("ticket_message: later", "expected forward, record or {coalesce: <interval>}"),
    ],
)
def test_a_malformed_mode_is_refused_at_its_line(
    rules_copy: Path, entry: str, problem: str
) -> None:
    add_delivery(rules_copy, entry)
    path = rules_copy / "sources.yaml"

    (finding,) = sources_findings(rules_copy)

    assert finding.startswith(f"{path}:{line_of(path, entry)}:3: delivery.ticket_message: ")
    assert problem in finding


def test_each_refused_mode_is_a_finding_of_its_own(rules_copy: Path) -> None:
    add_delivery(rules_copy, "churned: record\n  nps_response: {coalesce: 60s}")

    findings = sources_findings(rules_copy)

    assert [f.split(": ")[1] for f in findings] == ["delivery churned", "delivery nps_response"]


def test_a_condition_anywhere_in_the_rule_files_counts_as_a_reader(rules_copy: Path) -> None:
    campaigns = rules_copy / "campaigns.yaml"
    replace_once(
        campaigns,
        "when: {days_since_last_login: {gte: 7}}",
        "when: {days_since_last_login: {gte: 7}, recent_events: {excludes: ticket_message}}",
    )
    add_delivery(rules_copy, "ticket_message: record")

    (finding,) = sources_findings(rules_copy)

    line = line_of(campaigns, "recent_events")
    assert f"`recent_events: {{excludes: ticket_message}}` reads it ({campaigns}:{line}:" in finding


def test_a_type_nothing_reads_may_be_recorded(rules_copy: Path, engine: Engine) -> None:
    add_delivery(rules_copy, "ticket_message: record")
    assert sources_findings(rules_copy) == []
    event = CustomerEvent(type="ticket_message", data={"text": "thanks"})

    row = inbox.receive(
        engine,
        "generic",
        MappedEvent("t-1", "x", "acme", event),
        load_sources(rules_copy).mode(event),
    ).row

    assert (row.status, row.delivery, row.event_type) == ("recorded", "record", "ticket_message")
    assert claim(engine, "f1", customers=8) == []
    assert inbox.pending_count(engine) == 0


def test_a_refused_edit_keeps_the_mapping_in_use(
    rules_copy: Path, caplog: pytest.LogCaptureFixture
) -> None:
    watch = SourcesWatch(rules_copy)
    good = watch()
    add_delivery(rules_copy, "churned: record")

    with caplog.at_level(logging.ERROR):
        assert watch() is good
    assert f"sources refused, keeping {good.version}" in caplog.text
    assert "delivery churned: `record` never signals it" in caplog.text


@pytest.mark.database
def test_coalesced_rows_wait_for_their_interval_then_go_out_as_one_batch(
    engine: Engine, sources: Sources
) -> None:
    def used(n: int, customer: str = "acme") -> int:
        event = CustomerEvent(type="feature_used", data={"feature": f"f{n}"})
        mapped = MappedEvent(f"u-{customer}-{n}", "x", customer, event)
        return int(inbox.receive(engine, "generic", mapped, sources.mode(event)).row.id or 0)

    ids = [used(n) for n in range(5)]
    other = used(0, customer="globex")
    assert claim(engine, "f1", customers=8) == []  # nothing due before the interval is over

    later = utcnow() + sources.mode(CustomerEvent(type="feature_used")).interval
    claims = claim(engine, "f1", customers=8, now=later)

    assert [(c.customer_id, len(c.batches)) for c in claims] == [("acme", 1), ("globex", 1)]
    batch = claims[0].batches[0]
    assert batch.ids == ids and claims[1].ids == [other]
    assert batch.request_id == f"inbox:coalesced:acme:feature_used:{ids[0]}-{ids[-1]}"
    signal = batch.event()
    assert (signal.type, signal.count, signal.data) == ("feature_used", 5, {"feature": "f4"})


async def test_the_forwarders_pace_lets_a_backlog_out_at_the_set_rate() -> None:
    """On a clock of its own: 1,000 signals at 50 a second take 20 s of that clock, less the
    burst the bucket starts with."""
    now = [0.0]

    async def sleep(seconds: float) -> None:
        now[0] += seconds

    pace = Pace(50, burst=5, clock=lambda: now[0], sleep=sleep)
    for _ in range(1_000):
        await pace.take()

    assert now[0] == pytest.approx((1_000 - 5) / 50)
