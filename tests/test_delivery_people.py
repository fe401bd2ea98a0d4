"""A step that reaches several people sends each their own message: their own outbox row and
idempotency key, their own provider answer, suppression and fallback; one person refused or
suppressed never silences the others, and the receipt lists how each went."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, time, timedelta
from pathlib import Path
from typing import Any

import pytest
from factories import count, make_customer, make_request, make_step, person
from fake_providers import FakeSendGrid
from sqlalchemy import Engine, event
from sqlmodel import select

from activities.deliver import _send_status as send_status
from retention.customer import CustomerSnapshot
from retention.delivery.audience import masked
from retention.delivery.holds import sent_to
from retention.delivery.requests import MAX_RECIPIENTS_PER_STEP, DeliverRequest, GuardRails
from retention.delivery.send import deliver
from retention.delivery.templates import TemplateSet
from retention.errors import ProviderUnavailable, Suppressed
from retention.plan import Addressing, FrequencyCap, QuietHours
from retention.runtime.settings import ROOT
from retention.store.db import session
from retention.store.suppressions import add_suppression
from retention.store.tables import InterventionRow, OutboxRow
from retention.suppression import SuppressRequest

pytestmark = pytest.mark.database

SHIPPED = TemplateSet.read(ROOT / "rules" / "templates")
KEY = "retention-cust-001:run-1:g1-01-retention_offer"
EVERY_ADMIN = Addressing(to=["admin"], recipients="every")


def acme(*extra: dict[str, Any]) -> CustomerSnapshot:
    """Dana (the profile's person) and two admins, Ana and Ben."""
    contacts = [
        person("dana", "champion"),
        person("ana", "admin", timezone="Europe/Berlin"),
        person("ben", "admin"),
        *extra,
    ]
    return make_customer(contacts=contacts)


def to_admins(customer: CustomerSnapshot | None = None, **step: Any) -> DeliverRequest:
    return make_request(make_step(addressing=EVERY_ADMIN, **step), customer or acme())


def suppress(engine: Engine, address: str, channel: str = "email") -> None:
    fields = {"customer_id": "cust-001", "channel": channel, "person": address, "source": "test"}
    add_suppression(engine, SuppressRequest.model_validate(fields))


def rows(engine: Engine) -> dict[str, OutboxRow]:
    with session(engine) as db:
        return {row.idempotency_key: row for row in db.exec(select(OutboxRow)).all()}


def test_every_admin_gets_their_own_row_key_and_message(engine: Engine, tmp_path: Path) -> None:
    outbox = tmp_path / "outbox"

    first = deliver(engine, outbox, SHIPPED, to_admins())
    again = deliver(engine, outbox, SHIPPED, to_admins())

    sent = rows(engine)
    assert sorted(sent) == [f"{KEY}:ana", f"{KEY}:ben"]
    assert sent[f"{KEY}:ana"].recipient == "ana@acme.example"
    files = sorted((outbox / "retention-cust-001").iterdir())
    assert [p.name for p in files] == [
        "g1-01-retention_offer.ana.txt",
        "g1-01-retention_offer.ben.txt",
    ]
    assert files[0].read_text().startswith("To: ana@acme.example\n")
    assert "\nHi Ana," in files[0].read_text() and "\nHi Ben," in files[1].read_text()
    assert [(r.contact_id, r.role, r.address, r.status) for r in first.recipients] == [
        ("ana", "admin", "a***@acme.example", "captured"),
        ("ben", "admin", "b***@acme.example", "captured"),
    ]
    assert not first.duplicate and again.duplicate
    assert again.recipients == first.recipients
    assert count(engine, OutboxRow) == 2 and count(engine, InterventionRow) == 1


def test_a_step_to_the_primary_contact_alone_keeps_its_key(engine: Engine, tmp_path: Path) -> None:
    receipt = deliver(engine, tmp_path, SHIPPED, make_request(customer=acme()))

    assert receipt.idempotency_key == KEY
    assert [(r.contact_id, r.role, r.status) for r in receipt.recipients] == [
        ("dana", "primary", "captured")
    ]


def test_a_suppressed_admin_falls_back_while_the_other_gets_email(
    engine: Engine, tmp_path: Path
) -> None:
    suppress(engine, "ana@acme.example")

    receipt = deliver(engine, tmp_path, SHIPPED, to_admins())

    sent = rows(engine)
    assert sent[f"{KEY}:ana"].status == "suppressed"
    assert sent[f"{KEY}:ana:fallback"].channel == "in_app"
    assert sent[f"{KEY}:ben"].channel == "email"
    assert [(r.contact_id, r.channel, r.fallback_used) for r in receipt.recipients] == [
        ("ana", "in_app", True),
        ("ben", "email", False),
    ]


def test_a_suppressed_admin_without_fallback_is_listed_and_the_other_still_hears(
    engine: Engine, tmp_path: Path
) -> None:
    suppress(engine, "ana@acme.example")

    receipt = deliver(engine, tmp_path, SHIPPED, to_admins(fallback_channel=None))

    [ana, ben] = receipt.recipients
    assert (ana.status, ben.status) == ("suppressed", "captured")
    assert ana.note is not None and "email to ana@acme.example suppressed" in ana.note
    assert receipt.recipient == "ben@acme.example"


def test_everyone_suppressed_refuses_the_step_and_records_it_once(
    engine: Engine, tmp_path: Path
) -> None:
    suppress(engine, "ana@acme.example")
    suppress(engine, "ben@acme.example")
    request = to_admins(fallback_channel=None)

    for _ in range(2):
        with pytest.raises(Suppressed, match="ana@acme.example suppressed"):
            deliver(engine, tmp_path, SHIPPED, request)

    assert count(engine, InterventionRow) == 1
    assert {row.status for row in rows(engine).values()} == {"suppressed"}


def test_one_admins_busy_provider_retries_the_step_without_sending_the_other_twice(
    engine: Engine, tmp_path: Path, fake_sendgrid: FakeSendGrid
) -> None:
    providers = {"email": fake_sendgrid.provider()}
    fake_sendgrid.fail_next(fake_sendgrid.busy(retry_after=5))  # Ana's, the first request

    with pytest.raises(ProviderUnavailable, match="429") as busy:
        deliver(engine, tmp_path, SHIPPED, to_admins(), providers)
    receipt = deliver(engine, tmp_path, SHIPPED, to_admins(), providers)

    assert busy.value.retry_after is not None and busy.value.retry_after.total_seconds() == 5
    assert fake_sendgrid.requests_for(f"{KEY}:ben") == 1
    assert fake_sendgrid.requests_for(f"{KEY}:ana") == 2
    assert fake_sendgrid.message_count == 2
    assert [r.status for r in receipt.recipients] == ["sent", "sent"]
    to = [r.body["personalizations"][0]["to"] for r in fake_sendgrid.received]
    assert to[-1] == [{"email": "ana@acme.example"}]


def test_an_address_the_provider_refuses_leaves_the_others_sent(
    engine: Engine, tmp_path: Path, fake_sendgrid: FakeSendGrid
) -> None:
    providers = {"email": fake_sendgrid.provider()}
    fake_sendgrid.fail_next(fake_sendgrid.invalid_recipient())

    receipt = deliver(engine, tmp_path, SHIPPED, to_admins(fallback_channel=None), providers)

    assert [(r.contact_id, r.status) for r in receipt.recipients] == [
        ("ana", "invalid_recipient"),
        ("ben", "sent"),
    ]
    assert rows(engine)[f"{KEY}:ana"].status == "invalid_recipient"


def test_a_role_holding_many_people_reaches_the_first_fifty_and_counts_the_rest(
    engine: Engine, tmp_path: Path
) -> None:
    users = [person(f"user{n:03d}") for n in range(MAX_RECIPIENTS_PER_STEP + 7)]
    step = make_step(addressing=Addressing(to=["user"], recipients="every"))

    receipt = deliver(engine, tmp_path, SHIPPED, make_request(step, acme(*users)))

    assert len(receipt.recipients) == MAX_RECIPIENTS_PER_STEP
    assert receipt.recipients_left_out == 7
    assert count(engine, OutboxRow) == MAX_RECIPIENTS_PER_STEP


def test_csm_work_stays_one_task_for_the_csm(engine: Engine, tmp_path: Path) -> None:
    step = make_step("alert_csm", channel="csm_task", fallback_channel=None, owner="csm")

    receipt = deliver(engine, tmp_path, SHIPPED, make_request(step, acme()))

    assert receipt.idempotency_key == "retention-cust-001:run-1:g1-01-alert_csm"
    assert [(r.contact_id, r.role) for r in receipt.recipients] == [("csm-jordan", "csm")]


@pytest.mark.parametrize(
    ("address", "shown"),
    [
        ("ana@acme.example", "a***@acme.example"),
        ("+14155550199", "+*******0199"),
        ("csm-jordan", "csm-jordan"),
    ],
)
def test_addresses_are_masked_in_receipts(address: str, shown: str) -> None:
    assert masked(address) == shown


# ---- each person's own frequency cap and quiet hours -----------------------------------------

MONDAY = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
EMAIL_CAP = FrequencyCap(channel="email", at_most=3, per_hours=7 * 24)
QUIET = QuietHours(start=time(21, 0), end=time(8, 0), channels=["email", "sms"])


def rails(at: datetime, **fields: Any) -> GuardRails:
    return GuardRails(at=at, started_at=MONDAY, frequency_caps=[EMAIL_CAP], **fields)


def on_day(day: int, step_id: str, addressing: Addressing, **fields: Any) -> DeliverRequest:
    step = make_step(step_id=step_id, addressing=addressing)
    return make_request(step, acme(), guard_rails=rails(MONDAY + timedelta(days=day), **fields))


def test_a_full_cap_holds_that_person_back_and_the_other_still_hears(
    engine: Engine, tmp_path: Path
) -> None:
    one_admin = Addressing(to=["admin"])  # Ana, the first
    for day in range(3):
        deliver(engine, tmp_path, SHIPPED, on_day(day, f"g1-0{day}-ana", one_admin))

    held = deliver(engine, tmp_path, SHIPPED, on_day(3, "g1-09-all", EVERY_ADMIN))
    later = on_day(7, "g1-09-all", EVERY_ADMIN)
    assert f"{later.idempotency_key}:ana" not in rows(engine)
    done = deliver(engine, tmp_path, SHIPPED, later)

    assert [(r.contact_id, r.status) for r in held.recipients] == [
        ("ana", "held"),
        ("ben", "captured"),
    ]
    assert held.held_until == MONDAY + timedelta(days=7)
    assert "ana waited for the email cap of 3 per 7d" in held.held_why
    assert done.held_until is None and not done.duplicate
    assert [(r.contact_id, r.status) for r in done.recipients] == [
        ("ana", "captured"),
        ("ben", "captured"),
    ]
    assert rows(engine)[f"{later.idempotency_key}:ana"].journey_at == MONDAY + timedelta(days=7)


def test_quiet_hours_are_each_persons_own_clock(engine: Engine, tmp_path: Path) -> None:
    evening = MONDAY.replace(hour=20, minute=30)  # 21:30 for Ana in Berlin, 20:30 for Ben (UTC)
    request = make_request(
        make_step(addressing=EVERY_ADMIN), acme(), guard_rails=rails(evening, quiet_hours=QUIET)
    )

    receipt = deliver(engine, tmp_path, SHIPPED, request)

    assert [(r.contact_id, r.status) for r in receipt.recipients] == [
        ("ana", "held"),
        ("ben", "captured"),
    ]
    assert receipt.held_until == datetime(2026, 12, 1, 7, 0, tzinfo=UTC)  # 08:00 in Berlin
    assert "quiet hours 21:00-08:00 Europe/Berlin" in receipt.held_why
    assert f"{KEY}:ana" not in rows(engine)


def test_the_primary_contact_alone_held_gets_a_receipt_with_nothing_sent(
    engine: Engine, tmp_path: Path
) -> None:
    night = MONDAY.replace(hour=23)
    request = make_request(guard_rails=rails(night, quiet_hours=QUIET))

    receipt = deliver(engine, tmp_path, SHIPPED, request)

    assert (receipt.outbox_id, receipt.held_until) == ("", datetime(2026, 12, 1, 8, tzinfo=UTC))
    assert [(r.contact_id, r.status) for r in receipt.recipients] == [("primary", "held")]
    assert count(engine, OutboxRow) == 0 and count(engine, InterventionRow) == 0
    assert send_status(receipt) == "held"  # the sends metric does not count it as captured


def test_the_receipt_says_when_a_person_whose_cap_it_filled_may_next_be_written_to(
    engine: Engine, tmp_path: Path
) -> None:
    one_admin = Addressing(to=["admin"])  # Ana, the first
    receipts = [
        deliver(engine, tmp_path, SHIPPED, on_day(day, f"g1-0{day}-ana", one_admin))
        for day in range(3)
    ]

    assert [r.next_reach for r in receipts[:2]] == [[], []]  # room left: nobody waits
    [free] = receipts[2].next_reach
    assert (free.channel, free.contact_id) == ("email", "ana")
    assert free.at == MONDAY + timedelta(days=7)  # the first of the three leaves the window
    assert "email cap of 3 per 7d" in free.why


def test_a_step_held_once_is_not_held_again_the_person_still_held_is_capped(
    engine: Engine, tmp_path: Path
) -> None:
    one_admin = Addressing(to=["admin"])
    for day in range(3):
        deliver(engine, tmp_path, SHIPPED, on_day(day, f"g1-0{day}-ana", one_admin))

    again = on_day(4, "g1-09-all", EVERY_ADMIN, last_ask=True)  # another journey filled it
    receipt = deliver(engine, tmp_path, SHIPPED, again)

    assert receipt.held_until is None
    assert [(r.contact_id, r.status) for r in receipt.recipients] == [
        ("ana", "capped"),
        ("ben", "captured"),
    ]
    assert "not sent: ana waited for the email cap" in (receipt.recipients[0].note or "")
    assert f"{again.idempotency_key}:ana" not in rows(engine)


def test_a_step_whose_only_person_is_capped_on_its_last_ask_sends_nothing(
    engine: Engine, tmp_path: Path
) -> None:
    night = MONDAY.replace(hour=23)
    request = make_request(guard_rails=rails(night, quiet_hours=QUIET, last_ask=True))

    receipt = deliver(engine, tmp_path, SHIPPED, request)

    assert (receipt.outbox_id, receipt.held_until) == ("", None)
    assert [(r.contact_id, r.status) for r in receipt.recipients] == [("primary", "capped")]
    assert count(engine, OutboxRow) == 0
    assert send_status(receipt) == "capped"


# ---- what the cap reads: once a message, only its window -------------------------------------


@contextmanager
def cap_reads(engine: Engine) -> Iterator[list[str]]:
    """The statements that read a person's messages on a channel (holds.sent_to), as run."""
    seen: list[str] = []

    def note(_conn: Any, _cursor: Any, statement: str, *_rest: Any) -> None:
        if "FROM outbox" in statement and "outbox.recipient =" in statement:
            seen.append(statement)

    event.listen(engine, "before_cursor_execute", note)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", note)


def test_a_capped_message_reads_its_persons_messages_once(engine: Engine, tmp_path: Path) -> None:
    one_admin = Addressing(to=["admin"])
    for day in range(2):
        deliver(engine, tmp_path, SHIPPED, on_day(day, f"g1-0{day}-ana", one_admin))
    third = on_day(2, "g1-02-ana", one_admin)

    with cap_reads(engine) as reads:
        receipt = deliver(engine, tmp_path, SHIPPED, third)
    with cap_reads(engine) as again_reads:
        again = deliver(engine, tmp_path, SHIPPED, third)

    assert len(reads) == 1  # before the message; its own row is added to what was read
    [free] = receipt.next_reach  # the third filled the cap: counted without a second read
    assert free.at == MONDAY + timedelta(days=7)
    # A retry finds its row and reads the person's messages then, its own among them.
    assert again.duplicate and len(again_reads) == 1
    assert again.next_reach == receipt.next_reach


def test_quiet_hours_alone_read_no_messages(engine: Engine, tmp_path: Path) -> None:
    noon = GuardRails(at=MONDAY, started_at=MONDAY, quiet_hours=QUIET)
    request = make_request(make_step(addressing=EVERY_ADMIN), acme(), guard_rails=noon)

    with cap_reads(engine) as reads:
        receipt = deliver(engine, tmp_path, SHIPPED, request)

    assert [r.status for r in receipt.recipients] == ["captured", "captured"]
    assert reads == []


def test_the_cap_reads_only_the_messages_in_its_window(engine: Engine, tmp_path: Path) -> None:
    one_admin = Addressing(to=["admin"])
    for day in (0, 10, 12):
        deliver(engine, tmp_path, SHIPPED, on_day(day, f"g1-{day:02}-ana", one_admin))
    with session(engine) as db:  # a row from before journey_at: counted at created_at
        old = db.exec(select(OutboxRow).where(OutboxRow.step_id == "g1-10-ana")).one()
        old.journey_at, old.created_at = None, MONDAY + timedelta(days=1)
        db.add(old)

    with session(engine) as db:
        since = sent_to(db, "email", "ana@acme.example", MONDAY + timedelta(days=5))
        every = sent_to(db, "email", "ana@acme.example", MONDAY)

    assert sorted(since.values()) == [MONDAY + timedelta(days=12)]
    assert sorted(every) == [
        f"{on_day(d, f'g1-{d:02}-ana', one_admin).idempotency_key}:ana" for d in (0, 10, 12)
    ]


def test_a_capped_message_reads_in_one_session_and_writes_in_another(
    engine: Engine, tmp_path: Path
) -> None:
    checkouts: list[object] = []

    def note(*args: object) -> None:
        checkouts.append(args)

    request = on_day(0, "g1-00-ana", Addressing(to=["admin"]))
    event.listen(engine, "checkout", note)
    try:
        receipt = deliver(engine, tmp_path, SHIPPED, request)
    finally:
        event.remove(engine, "checkout", note)

    assert [r.status for r in receipt.recipients] == ["captured"]
    # the row, the suppression list and the cap's count; then the row with its intervention
    assert len(checkouts) == 2
