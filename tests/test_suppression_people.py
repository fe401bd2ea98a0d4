"""Suppressing one person at an account: what an `unsubscribed` event or the CLI asks for, how
delivery honours it for that person's address only, and the refusals that name what is wrong."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from factories import make_customer, make_request, make_step
from sqlalchemy import Engine
from typer.testing import CliRunner

import starter
from activities.deliver import DeliverActivities
from cli.app import console
from retention.customer import CustomerSnapshot, parse_event
from retention.delivery.send import deliver
from retention.delivery.templates import TemplateSet
from retention.errors import InvalidInput
from retention.runtime.settings import ROOT
from retention.store.db import make_engine
from retention.store.records import keep_journey_snapshot, save_customer
from retention.store.suppressions import add_suppression, list_suppressions
from retention.suppression import (
    SuppressRequest,
    contact_named,
    person_on,
    unsubscribe_request,
    with_person_found,
)

SHIPPED = TemplateSet.read(ROOT / "rules" / "templates")
DANA = "dana@acme.example"  # the profile's person, the primary contact
BO = "bo@acme.example"
runner = CliRunner()


def acme(customer_id: str = "cust-001") -> CustomerSnapshot:
    return make_customer(
        profile={"customer_id": customer_id},
        contacts=[
            {"contact_id": "dana", "name": "Dana", "email": DANA, "roles": ["champion", "admin"]},
            {"contact_id": "bo", "name": "Bo", "email": BO, "roles": ["billing"]},
            {"contact_id": "cy", "name": "Cy", "email": "cy@acme.example", "phone": "+14155550199"},
        ],
    )


def request(**fields: Any) -> SuppressRequest:
    values = {"customer_id": "cust-001", "channel": "email", "source": "test"} | fields
    return SuppressRequest.model_validate(values)


# ---- what an unsubscribed event asks for -----------------------------------------------------


@pytest.mark.parametrize(
    ("data", "person", "contact_id"),
    [
        ({}, None, None),
        ({"contact_id": "bo"}, None, "bo"),
        ({"email": BO}, BO, None),
        ({"channel": "sms", "phone": "+14155550199"}, "+14155550199", None),
        ({"channel": "in_app", "email": BO, "contact_id": "bo"}, BO, "bo"),
    ],
)
def test_an_unsubscribe_names_the_account_or_one_person(
    data: dict[str, Any], person: str | None, contact_id: str | None
) -> None:
    asked = unsubscribe_request("cust-001", data, source="event")

    assert (asked.person, asked.contact_id) == (person, contact_id)
    assert asked.for_one_person == (person is not None or contact_id is not None)


@pytest.mark.parametrize(
    ("data", "named"),
    [
        ({"email": "not-an-address"}, "data.email must be an email address"),
        ({"phone": "0415 555"}, "data.phone must be an E.164 phone number"),
        ({"contact_id": "a b"}, "data.contact_id must be a contact's id"),
        ({"channel": "sms", "email": BO}, "data.phone must name the person"),
        ({"email": 7}, "data.email must be an email address"),
    ],
)
def test_an_unsubscribe_naming_a_person_badly_is_refused_naming_the_field(
    data: dict[str, Any], named: str
) -> None:
    with pytest.raises(InvalidInput, match=named):
        parse_event({"type": "unsubscribed", "data": data})


def test_a_contact_named_by_id_is_found_at_its_address_on_the_channel() -> None:
    customer = acme()

    assert with_person_found(request(contact_id="bo"), customer).person == BO
    sms = request(channel="sms", contact_id="cy")
    assert with_person_found(sms, customer).person == "+14155550199"


@pytest.mark.parametrize(
    ("asked", "why"),
    [
        ({"contact_id": "zed"}, "contact 'zed': not a contact of customer 'cust-001'"),
        ({"contact_id": "bo", "channel": "sms"}, "contact 'bo': no phone"),
    ],
)
def test_a_contact_that_cannot_be_found_suppresses_the_whole_account(
    asked: dict[str, Any], why: str
) -> None:
    """The opt-out is honoured: better the account than a message to who asked for none."""
    found = with_person_found(request(**asked), acme())

    assert (found.person, found.contact_id, found.for_one_person) == (None, None, False)
    assert f"whole account: {why}" in found.reason


def test_an_inactive_contact_keeps_their_address_for_a_suppression() -> None:
    gone = acme().contacts[1].model_copy(update={"active": False})

    assert person_on("email", gone) == BO
    with pytest.raises(InvalidInput, match="contact 'zed': not a contact .*contacts: dana, bo"):
        contact_named(acme(), "zed")


# ---- delivery honours it for that person only ------------------------------------------------


@pytest.mark.database
def test_the_primary_contact_suppressed_sends_the_step_to_its_fallback(
    engine: Engine, tmp_path: Path
) -> None:
    add_suppression(engine, request(person=DANA, contact_id="dana", reason="asked by mail"))

    receipt = deliver(engine, tmp_path / "outbox", SHIPPED, make_request(customer=acme()))

    assert (receipt.channel, receipt.fallback_used) == ("in_app", True)
    assert receipt.note is not None and f"email to {DANA} suppressed" in receipt.note


@pytest.mark.database
def test_another_contact_suppressed_leaves_the_account_reachable(
    engine: Engine, tmp_path: Path
) -> None:
    add_suppression(engine, request(person=BO, contact_id="bo"))
    add_suppression(engine, request(channel="in_app", person=BO, contact_id="bo"))

    receipt = deliver(engine, tmp_path / "outbox", SHIPPED, make_request(customer=acme()))

    assert (receipt.channel, receipt.recipient, receipt.fallback_used) == ("email", DANA, False)


@pytest.mark.database
def test_in_app_stops_for_the_suppressed_person_the_message_speaks_to(
    engine: Engine, tmp_path: Path
) -> None:
    add_suppression(engine, request(channel="in_app", person=DANA))
    step = make_step(channel="in_app", fallback_channel="email")

    receipt = deliver(engine, tmp_path / "outbox", SHIPPED, make_request(step, acme()))

    assert (receipt.channel, receipt.fallback_used) == ("email", True)
    assert receipt.note is not None and f"in_app to {DANA} suppressed" in receipt.note


@pytest.mark.database
def test_an_account_and_its_people_each_have_their_own_entry(engine: Engine) -> None:
    first = add_suppression(engine, request(person=BO, reason="first"))
    again = add_suppression(engine, request(person=BO, reason="second"))
    account = add_suppression(engine, request(address=DANA))

    assert again.id == first.id and again.reason == "first"
    assert [(e.person, e.address) for e in list_suppressions(engine, "cust-001")] == [
        ("", DANA),
        (BO, BO),
    ]
    assert account.person == ""


@pytest.mark.database
def test_the_suppress_activity_finds_the_contact_the_event_named(
    engine: Engine, tmp_path: Path
) -> None:
    keep_journey_snapshot(engine, "retention-cust-001:run-1", acme())
    activities = DeliverActivities(engine, tmp_path, rulebooks=None)  # type: ignore[arg-type]
    # As the journey sends it: the account's address filled in, the person's looked up here.
    asked = unsubscribe_request("cust-001", {"contact_id": "bo"}, source="event via j")
    asked.address = DANA

    entry = activities.suppress(asked)

    assert (entry.person, entry.address) == (BO, BO)
    [row] = list_suppressions(engine)
    assert (row.person, row.address, row.source) == (BO, BO, "event via j")


# ---- the CLI ----------------------------------------------------------------------------------


def test_suppress_and_unsuppress_one_contact_from_the_cli(
    cli_database: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(console, "_width", 200)  # tables on one line each
    engine = make_engine(cli_database)
    save_customer(engine, acme())

    added = runner.invoke(starter.app, ["suppress", "cust-001", "--contact", "bo"])
    listed = runner.invoke(starter.app, ["suppressions", "cust-001"])
    sms = runner.invoke(
        starter.app, ["suppress", "cust-001", "--contact", "cy", "--channel", "sms"]
    )

    assert added.exit_code == 0, added.output
    assert f"cust-001 (bo, {BO}): email suppressed since" in added.stdout
    assert "one person" in listed.stdout and BO in listed.stdout
    assert sms.exit_code == 0, sms.output
    assert {(r.channel, r.person) for r in list_suppressions(engine)} == {
        ("email", BO),
        ("sms", "+14155550199"),
    }

    removed = runner.invoke(starter.app, ["unsuppress", "cust-001", "--contact", "bo"])
    account = runner.invoke(starter.app, ["unsuppress", "cust-001"])

    assert removed.exit_code == 0 and "no longer suppressed" in removed.stdout
    assert account.exit_code == 1 and "cust-001 is not suppressed on email" in account.stderr
    assert [r.person for r in list_suppressions(engine)] == ["+14155550199"]
    engine.dispose()


@pytest.mark.parametrize(
    ("args", "named"),
    [
        (["nobody", "--contact", "bo"], "CUSTOMER_ID: customer 'nobody' is not in the database"),
        (["cust-001", "--contact", "zed"], "contact 'zed': not a contact of customer 'cust-001'"),
        (["cust-001", "--contact", "bo", "--channel", "sms"], "contact 'bo': no phone"),
        (["cust-001", "--contact", "bo", "--address", BO], "--address: not with --contact"),
        (["cust-001", "--contact", "b o"], "--contact: String should match pattern"),
    ],
)
def test_the_cli_refuses_a_contact_it_cannot_suppress(
    cli_database: str, args: list[str], named: str
) -> None:
    engine = make_engine(cli_database)
    save_customer(engine, acme())

    result = runner.invoke(starter.app, ["suppress", *args])

    assert result.exit_code == 2, result.output
    assert named in result.stderr
    assert list_suppressions(engine) == []
    engine.dispose()
