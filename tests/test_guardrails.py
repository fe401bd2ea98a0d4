"""Guard rails without a server: the rule file's caps and quiet hours, when a step may go, the
suppression list in delivery (captured and live) and the CLI that manages it."""

from __future__ import annotations

import re
from datetime import UTC, datetime, time, timedelta
from pathlib import Path

import pytest
from factories import count, make_customer, make_request, make_step, replace_once
from fake_providers import FakeSendGrid
from sqlalchemy import Engine
from sqlmodel import select
from typer.testing import CliRunner

import starter
from cli.journey_commands import plan_table
from retention.customer import parse_event
from retention.delivery.guardrails import hold_for, quiet_hours_end
from retention.delivery.send import deliver
from retention.delivery.templates import TemplateSet
from retention.errors import InvalidInput, RulebookError, Suppressed
from retention.journey_clock import JourneyClock
from retention.plan import FrequencyCap, JourneyPolicy, QuietHours
from retention.rulebook.loader import load_rulebook
from retention.runtime.settings import ROOT
from retention.store.db import make_engine, session
from retention.store.records import save_customer
from retention.store.suppressions import add_suppression, list_suppressions
from retention.store.tables import InterventionRow, OutboxRow
from retention.suppression import SuppressRequest

SHIPPED = TemplateSet.read(ROOT / "rules" / "templates")
NIGHT = QuietHours(start=time(21), end=time(8), channels=["email", "sms", "phone", "in_app"])
T0 = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)  # a Monday, noon UTC


def policy(**fields: object) -> JourneyPolicy:
    return JourneyPolicy.model_validate(
        {"exits": [], "strategy_order": ["standard"], "observation_hours": 0} | fields
    )


# ---- the rule file --------------------------------------------------------------------------

GUARD_RAILS = """
frequency_caps: {email: {at_most: 3, per: 7d}, sms: {at_most: 2, per: 7d}}
quiet_hours: {from: "21:00", to: "08:00", channels: [email, sms, phone, in_app]}
"""
SHIPPED_CAPS = """frequency_caps:
  email: {at_most: 3, per: 7d}
  sms: {at_most: 2, per: 7d}
"""


@pytest.fixture
def rules_copy(rules_copy: Path) -> Path:
    """The shipped rules without their caps, so a test writes its own guard rails."""
    replace_once(rules_copy / "journey.yaml", SHIPPED_CAPS, "")
    return rules_copy


def test_the_shipped_rules_cap_email_and_sms_per_person() -> None:
    caps = load_rulebook(ROOT / "rules").journey.frequency_caps

    assert {(c, cap.at_most, cap.per) for c, cap in caps.items()} == {
        ("email", 3, 168),
        ("sms", 2, 168),
    }


def test_caps_and_quiet_hours_reach_the_journey_policy(rules_copy: Path) -> None:
    with (rules_copy / "journey.yaml").open("a") as file:
        file.write(GUARD_RAILS)

    journey = load_rulebook(rules_copy).journey

    assert journey.frequency_caps["email"].at_most == 3
    assert journey.frequency_caps["sms"].per == 168
    assert journey.quiet_hours is not None
    assert (journey.quiet_hours.start, journey.quiet_hours.end) == (time(21), time(8))


@pytest.mark.parametrize(
    ("written", "at", "problem"),
    [
        ("frequency_caps: {pigeon: {at_most: 1, per: 1d}}", "pigeon", "frequency_caps.pigeon"),
        ("frequency_caps: {email: {at_most: 0, per: 1d}}", "at_most", "greater than or equal"),
        ("frequency_caps: {email: {at_most: 2, per: 2 weeks}}", "per", "duration like 24h"),
        ("frequency_caps: {email: {at_most: 2, per: 0h}}", "per", "greater than 0"),
        ('quiet_hours: {from: 21:00, to: "08:00"}', "21:00", "write the time in quotes"),
        ('quiet_hours: {from: "25:00", to: "08:00"}', "25:00", "a time of day"),
        ('quiet_hours: {from: "08:00", to: "08:00"}', "08:00", "must differ"),
        ('quiet_hours: {from: "21:00", to: "08:00", channels: [fax]}', "fax", "channels.0"),
        ('quiet_hours: {from: "21:00", till: "08:00"}', "till", "till"),
    ],
)
def test_a_broken_guard_rail_is_refused_with_file_and_line(
    rules_copy: Path, written: str, at: str, problem: str
) -> None:
    path = rules_copy / "journey.yaml"
    with path.open("a") as file:
        file.write(f"\n{written}\n")
    line = len(path.read_text().splitlines())

    with pytest.raises(RulebookError) as refused:
        load_rulebook(rules_copy)

    assert str(refused.value).startswith(f"{path}:{line}:"), refused.value
    assert problem in str(refused.value)


# ---- when a step may go -----------------------------------------------------------------------


def test_a_channel_under_its_cap_goes_now() -> None:
    caps = policy(frequency_caps=[FrequencyCap(channel="email", at_most=2, per_hours=168)])
    assert hold_for(caps, "email", T0, [T0 - timedelta(days=1)], "UTC") is None
    assert hold_for(caps, "sms", T0, [T0, T0], "UTC") is None  # another channel's cap


def test_a_full_cap_waits_until_the_oldest_send_leaves_the_window() -> None:
    caps = policy(frequency_caps=[FrequencyCap(channel="email", at_most=2, per_hours=168)])
    sent = [T0 - timedelta(days=8), T0 - timedelta(days=3), T0 - timedelta(days=1)]

    hold = hold_for(caps, "email", T0, sent, "UTC")

    assert hold is not None and hold.until == T0 + timedelta(days=4)
    assert hold.why == "waited for the email cap of 2 per 7d"


@pytest.mark.parametrize(
    ("utc", "zone", "until"),
    [
        # 23:00 in Tokyo: until 08:00 there the next morning
        (datetime(2026, 3, 2, 14, 0), "Asia/Tokyo", datetime(2026, 3, 2, 23, 0)),
        # 03:00 in Tokyo: until 08:00 the same morning
        (datetime(2026, 3, 2, 18, 0), "Asia/Tokyo", datetime(2026, 3, 2, 23, 0)),
        # 20:59 in New York is not quiet yet
        (datetime(2026, 3, 3, 1, 59), "America/New_York", None),
        # the night the clocks go forward: 08:00 EDT is 12:00 UTC, not 13:00
        (datetime(2026, 3, 8, 5, 0), "America/New_York", datetime(2026, 3, 8, 12, 0)),
        # a zone the database does not know counts as UTC
        (datetime(2026, 3, 2, 22, 0), "Mars/Olympus", datetime(2026, 3, 3, 8, 0)),
    ],
)
def test_quiet_hours_end_by_the_customers_clock(
    utc: datetime, zone: str, until: datetime | None
) -> None:
    end = quiet_hours_end(NIGHT, utc.replace(tzinfo=UTC), zone)
    assert end == (until.replace(tzinfo=UTC) if until else None)


def test_quiet_hours_only_hold_their_channels() -> None:
    quiet = policy(quiet_hours=NIGHT)
    night = datetime(2026, 3, 2, 23, 0, tzinfo=UTC)
    assert hold_for(quiet, "csm_task", night, [], "UTC") is None
    hold = hold_for(quiet, "in_app", night, [], "UTC")
    assert hold is not None and hold.why == "waited for the quiet hours 21:00-08:00 UTC"


def test_a_cap_that_ends_in_quiet_hours_waits_for_the_morning() -> None:
    both = policy(
        quiet_hours=NIGHT,
        frequency_caps=[FrequencyCap(channel="email", at_most=1, per_hours=24)],
    )
    hold = hold_for(both, "email", T0, [T0 - timedelta(hours=14)], "UTC")  # room at 22:00

    assert hold is not None and hold.until == datetime(2026, 3, 3, 8, 0, tzinfo=UTC)
    assert "cap of 1 per 1d" in hold.why and "quiet hours" in hold.why


def test_a_sped_up_journey_keeps_quiet_hours_on_its_own_clock() -> None:
    clock = JourneyClock(started_at=T0, scale=24.0)  # a journey day per real hour
    # half a real hour in: 12:00 + 12 h = midnight on the journey clock, quiet until 08:00
    journey_now = clock.journey(T0 + timedelta(minutes=30))
    end = quiet_hours_end(NIGHT, journey_now, "UTC")

    assert journey_now == datetime(2026, 3, 3, 0, 0, tzinfo=UTC)
    assert end is not None and clock.real(end) == T0 + timedelta(minutes=50)


# ---- the suppression list in delivery ------------------------------------------------------


def suppress(engine: Engine, channel: str = "email", **fields: str) -> None:
    values = {"customer_id": "cust-001", "channel": channel, "source": "test"} | fields
    add_suppression(engine, SuppressRequest.model_validate(values))


@pytest.mark.database
def test_a_suppressed_email_goes_to_the_fallback_and_says_why(
    engine: Engine, tmp_path: Path
) -> None:
    suppress(engine, reason="asked by phone")
    request = make_request()

    receipt = deliver(engine, tmp_path / "outbox", SHIPPED, request)

    assert (receipt.channel, receipt.fallback_used) == ("in_app", True)
    assert receipt.note is not None and receipt.note.startswith(
        "fallback: email to dana@acme.example suppressed since "
    )
    assert "(asked by phone; test)" in receipt.note
    with session(engine) as db:
        first = db.exec(
            select(OutboxRow).where(OutboxRow.idempotency_key == request.idempotency_key)
        ).one()
        step = db.exec(select(InterventionRow)).one()
    assert (first.status, first.body, first.path) == ("suppressed", "", "")
    assert first.note is not None and "asked by phone" in first.note
    assert (step.channel, step.status, step.note) == ("in_app", "captured", receipt.note)
    [written] = (tmp_path / "outbox").rglob("*.txt")
    assert written.name.endswith(".fallback.txt")

    again = deliver(engine, tmp_path / "outbox", SHIPPED, request)  # a retried activity
    assert again.duplicate and again.outbox_id == receipt.outbox_id


@pytest.mark.database
def test_an_address_suppressed_under_another_customer_id_is_suppressed_too(
    engine: Engine, tmp_path: Path
) -> None:
    suppress(engine, customer_id="cust-old", address="dana@acme.example")
    receipt = deliver(engine, tmp_path / "outbox", SHIPPED, make_request())
    assert receipt.channel == "in_app"


@pytest.mark.database
def test_with_every_customer_channel_suppressed_nothing_is_sent(
    engine: Engine, tmp_path: Path
) -> None:
    suppress(engine, "email")
    suppress(engine, "in_app")

    with pytest.raises(Suppressed, match="in_app .* suppressed .*; no usable fallback channel"):
        deliver(engine, tmp_path / "outbox", SHIPPED, make_request())

    with session(engine) as db:
        rows = db.exec(select(OutboxRow)).all()
        step = db.exec(select(InterventionRow)).one()
    assert {(r.channel, r.status) for r in rows} == {
        ("email", "suppressed"),
        ("in_app", "suppressed"),
    }
    assert step.status == "suppressed" and step.note and "in_app" in step.note
    assert not (tmp_path / "outbox").exists()


@pytest.mark.database
def test_csm_work_is_never_suppressed(engine: Engine, tmp_path: Path) -> None:
    suppress(engine, "email")
    step = make_step("executive_call", channel="csm_task", fallback_channel="email", owner="csm")

    receipt = deliver(engine, tmp_path / "outbox", SHIPPED, make_request(step))

    assert (receipt.channel, receipt.fallback_used, receipt.note) == ("csm_task", False, None)


@pytest.mark.database
def test_a_suppressed_email_never_reaches_the_provider(
    engine: Engine, tmp_path: Path, fake_sendgrid: FakeSendGrid
) -> None:
    suppress(engine, "email")
    providers = {"email": fake_sendgrid.provider()}

    receipt = deliver(engine, tmp_path / "outbox", SHIPPED, make_request(), providers)

    assert fake_sendgrid.received == []
    assert (receipt.channel, receipt.mode) == ("in_app", "capture")


# ---- the CLI ----------------------------------------------------------------------------------

runner = CliRunner()


def test_suppress_and_unsuppress_from_the_cli(cli_database: str) -> None:
    engine = make_engine(cli_database)
    save_customer(engine, make_customer(profile={"customer_id": "cust-9", "phone": "+14155550100"}))

    added = runner.invoke(
        starter.app, ["suppress", "cust-9", "--channel", "sms", "--reason", "STOP"]
    )
    again = runner.invoke(starter.app, ["suppress", "cust-9", "--channel", "sms"])
    listed = runner.invoke(starter.app, ["suppressions", "cust-9"])

    assert added.exit_code == 0, added.output
    assert re.search(r"cust-9: sms suppressed since .* \(STOP; cli\)", added.stdout)
    assert "(STOP; cli)" in again.stdout  # the first entry stands
    assert "+14155550100" in listed.stdout and "STOP" in listed.stdout
    [entry] = list_suppressions(engine, "cust-9")
    assert (entry.channel, entry.address, entry.reason, entry.source) == (
        "sms",
        "+14155550100",
        "STOP",
        "cli",
    )

    removed = runner.invoke(starter.app, ["unsuppress", "cust-9", "--channel", "sms"])
    missing = runner.invoke(starter.app, ["unsuppress", "cust-9", "--channel", "sms"])

    assert removed.exit_code == 0 and "no longer suppressed" in removed.stdout
    assert missing.exit_code == 1 and "not suppressed on sms" in missing.stderr
    assert count(engine, type(entry)) == 0
    engine.dispose()


@pytest.mark.parametrize(
    ("args", "named"),
    [
        (["--channel", "csm_task"], "--channel"),
        (["--channel", "pigeon"], "--channel"),
        (["--reason", ""], "--reason"),
    ],
)
def test_the_cli_refuses_what_cannot_be_suppressed(
    cli_database: str, args: list[str], named: str
) -> None:
    result = runner.invoke(starter.app, ["suppress", "cust-9", *args])
    assert result.exit_code == 2
    assert result.stderr.startswith(f"error: {named}: ")


def test_a_suppression_for_an_unknown_customer_keeps_no_address(cli_database: str) -> None:
    result = runner.invoke(starter.app, ["suppress", "cust-new"])
    assert result.exit_code == 0, result.output
    engine = make_engine(cli_database)
    [entry] = list_suppressions(engine, "cust-new")
    assert (entry.channel, entry.address) == ("email", None)
    engine.dispose()


def test_unsubscribed_names_a_customer_channel() -> None:
    assert parse_event({"type": "unsubscribed"}).data == {}
    assert (
        parse_event({"type": "unsubscribed", "data": {"channel": "sms"}}).data["channel"] == "sms"
    )
    with pytest.raises(InvalidInput, match="data.channel must be one of email, sms, phone, in_app"):
        parse_event({"type": "unsubscribed", "data": {"channel": "csm_task"}})


def test_show_prints_how_each_step_went_out_and_why_it_waited() -> None:
    from rich.console import Console

    from retention.journey_state import JourneyState, StepState

    def state_step(action: str, **fields: object) -> StepState:
        return StepState(step=make_step(action), generation=1, due_at=T0, **fields)

    state = JourneyState(
        customer_id="cust-001",
        journey_key="retention-cust-001/run",
        started_at=T0,
        steps=[
            state_step(
                "retention_offer",
                status="done",
                delivery_mode="live",
                provider="sendgrid",
                provider_message_id="sg-123",
            ),
            state_step(
                "newsletter",
                deferred_until=T0 + timedelta(hours=20),
                deferred_why="waited for the quiet hours 21:00-08:00 Asia/Tokyo",
            ),
        ],
    )
    console = Console(width=250, record=True)

    console.print(plan_table(state))

    text = console.export_text()
    assert "live: sendgrid sg-123" in text
    assert "waited for the quiet hours 21:00-08:00 Asia/Tokyo (until 2026-03-03 08:00:00)" in text
