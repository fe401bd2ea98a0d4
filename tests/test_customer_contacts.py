"""An account's people on the snapshot: who holds which role, what is refused, and how the
contacts decide the champion status that health, risk and the rules read."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest
from factories import customer_data, make_customer, person
from sqlalchemy import Engine

from retention.customer import (
    CONTACT_ROLES,
    MAX_CONTACT_TEXT,
    MAX_CONTACTS,
    MAX_EMAIL_CHARS,
    PRIMARY_CONTACT_ID,
    CustomerSnapshot,
    parse_customer,
)
from retention.errors import InvalidInput
from retention.population import read_customer_json
from retention.rulebook.loader import load_rulebook
from retention.runtime.settings import ROOT
from retention.runtime.temporal import DATA_CONVERTER
from retention.scoring.assessment import assess_customer
from retention.store.db import session
from retention.store.records import list_customers, load_customer, save_customer
from retention.store.scans import customer_page
from retention.store.tables import CustomerRow

NORTHWIND = ROOT / "examples" / "customers" / "northwind.json"
RULEBOOK = load_rulebook(ROOT / "rules")
NOW = datetime(2026, 12, 2, 9, tzinfo=UTC)
TEMPORAL_PAYLOAD_LIMIT = 2 * 1024 * 1024


def with_contacts(*contacts: dict[str, Any], **overrides: Any) -> CustomerSnapshot:
    return make_customer(contacts=list(contacts), **overrides)


def refusal(*contacts: dict[str, Any]) -> str:
    with pytest.raises(InvalidInput) as error:
        parse_customer(customer_data(contacts=list(contacts)), source="acme.json")
    return str(error.value)


# ---- who is on the account ------------------------------------------------------------------


def test_northwind_lists_its_people_by_role() -> None:
    northwind = read_customer_json(NORTHWIND)

    def names(role: Any) -> list[str]:
        return [person.name for person in northwind.contacts_with_role(role)]

    assert names("executive_sponsor") == ["Marcus Lindqvist"]
    assert names("admin") == ["Priya Natarajan", "Tomasz Kowalczyk"]  # not the one who left
    assert names("billing") == ["Elena Rossi"]
    assert len(names("user")) == 3
    assert names("champion") == []
    assert northwind.primary_contact.contact_id == "nw-003"  # the profile's Priya, as listed


def test_a_person_may_hold_several_roles() -> None:
    customer = with_contacts(person("ana", "champion", "admin"), person("bo", "admin"))

    assert [c.contact_id for c in customer.contacts_with_role("champion")] == ["ana"]
    assert [c.contact_id for c in customer.contacts_with_role("admin")] == ["ana", "bo"]


def test_without_contacts_the_profiles_person_stands_in_for_every_role() -> None:
    customer = make_customer(profile={"phone": "+14155550123", "timezone": "Europe/Berlin"})

    primary = customer.primary_contact
    assert (primary.contact_id, primary.name, primary.email, primary.phone) == (
        PRIMARY_CONTACT_ID,
        "Dana Reyes",
        "dana@acme.example",
        "+14155550123",
    )
    assert primary.timezone is None  # the account's, from the profile
    for role in CONTACT_ROLES:
        assert customer.contacts_with_role(role) == [primary]


def test_a_profile_person_not_among_the_contacts_is_still_the_primary() -> None:
    customer = with_contacts(person("ana", "champion"))

    assert customer.primary_contact.contact_id == PRIMARY_CONTACT_ID
    assert customer.contacts_with_role("billing") == []  # the contacts are the account's people


def test_a_snapshot_written_before_contacts_loads_and_keeps_its_champion_flag() -> None:
    document = customer_data(relationship={"champion_status": "at_risk"})
    assert "contacts" not in document

    customer = parse_customer(document)

    assert customer.contacts == []
    assert customer.relationship.champion_status == "at_risk"


# ---- what is refused ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("contacts", "named"),
    [
        (
            [person("ana"), person("ana", email="other@acme.example")],
            "contacts: Value error, contacts.1 ('ana'): contact_id is also contacts.0's",
        ),
        (
            [person("ana"), person("bo", email="ANA@Acme.example")],
            "contacts.1 ('bo'): email 'ANA@Acme.example' is also contacts.0's ('ana')",
        ),
        ([person("ana", "boss")], "contacts.0 ('ana').roles.0: Input should be 'executive_sp"),
        ([person("ana", "admin", "admin")], "contacts.0 ('ana').roles: Value error, admin listed"),
        ([person("ana", phone="0170 1234567")], "contacts.0 ('ana').phone: String should match"),
        ([person("ana", email="ana.acme.example")], "contacts.0 ('ana').email: String should"),
        (
            [person("ana"), person("bo", timezone="Europe/Atlantis")],
            "contacts.1 ('bo').timezone: Value error, 'Europe/Atlantis' is not an IANA time zone",
        ),
        ([person("primary")], "contact_id 'primary' is the profile's"),
        ([person("ana", name="x" * (MAX_CONTACT_TEXT + 1))], "contacts.0 ('ana').name: String"),
    ],
    ids=[
        "id twice",
        "email twice",
        "unknown role",
        "role twice",
        "phone",
        "email",
        "timezone",
        "reserved id",
        "long name",
    ],
)
def test_bad_contacts_are_refused_naming_the_field_and_the_contact(
    contacts: list[dict[str, Any]], named: str
) -> None:
    message = refusal(*contacts)

    assert message.startswith("acme.json: ")
    assert named in message


def test_more_contacts_than_the_cap_are_refused() -> None:
    people = [person(f"p{i}") for i in range(MAX_CONTACTS + 1)]

    assert f"contacts: List should have at most {MAX_CONTACTS} items" in refusal(*people)


def test_the_largest_contacts_list_fits_a_workflow_payload_with_room_to_spare() -> None:
    wide = "\U0001f600"  # a 4-byte character the converter escapes to 12 bytes

    def longest(i: int) -> dict[str, Any]:
        domain = "@x.example"
        local = f"{i:03d}" + "é" * (MAX_EMAIL_CHARS - len(domain) - 3)
        return person(
            f"{i:03d}" + "x" * 61,
            *CONTACT_ROLES,
            name=wide * MAX_CONTACT_TEXT,
            title=wide * MAX_CONTACT_TEXT,
            email=local + domain,
            phone="+123456789012345",
            timezone="America/Argentina/ComodRivadavia",
        )

    customer = make_customer(contacts=[longest(i) for i in range(MAX_CONTACTS)])
    [payload] = DATA_CONVERTER.payload_converter.to_payloads([customer])

    assert len(payload.data) < TEMPORAL_PAYLOAD_LIMIT / 2


# ---- the champion the contacts show ---------------------------------------------------------


@pytest.mark.parametrize(
    ("people", "given", "status"),
    [
        ([person("ana", "champion")], "active", "active"),
        ([person("ana", "champion")], "at_risk", "at_risk"),  # the flag refines an active one
        ([person("ana", "champion")], "left", "active"),  # a champion is listed: a new one
        ([person("ana", "champion")], "none", "active"),
        ([person("ana", "champion", active=False)], "active", "left"),
        ([person("ana", "champion", active=False)], "none", "left"),  # there was one
        ([person("bo", "admin")], "active", "left"),  # gone from the list
        ([person("bo", "admin")], "at_risk", "left"),
        ([person("bo", "admin")], "none", "none"),  # never had one, and says so
        ([], "at_risk", "at_risk"),  # no contacts: the upstream flag stands
    ],
)
def test_the_contacts_decide_the_champion_status(
    people: list[dict[str, Any]], given: str, status: str
) -> None:
    customer = with_contacts(*people, relationship={"champion_status": given})

    assert customer.relationship.champion_status == status
    assert parse_customer(customer.model_dump(mode="json")) == customer  # and reads back so


def test_an_account_whose_champion_left_is_scored_champion_left() -> None:
    champion = person("ana", "champion", "admin")
    staying = with_contacts(champion, person("bo", "admin"))
    departed = with_contacts({**champion, "active": False}, person("bo", "admin"))

    before = assess_customer(staying, RULEBOOK, NOW)
    after = assess_customer(departed, RULEBOOK, NOW)

    assert "champion_left" not in before.health.alerts
    assert "champion_left" in after.health.alerts
    assert after.health.overall < before.health.overall
    assert "champion_risk" in [factor.name for factor in after.prediction.risk_factors]
    assert "champion_risk" in [driver.feature for driver in after.prediction.drivers]


# ---- where snapshots are kept ---------------------------------------------------------------


@pytest.mark.database
def test_contacts_are_kept_with_the_customer_and_older_rows_still_load(engine: Engine) -> None:
    northwind = read_customer_json(NORTHWIND)
    save_customer(engine, northwind)
    before_contacts = json.loads(NORTHWIND.read_text())
    del before_contacts["contacts"]
    before_contacts["profile"]["customer_id"] = "northwind-2025"
    with session(engine) as db:  # a row saved before snapshots had contacts
        db.add(CustomerRow(customer_id="northwind-2025", snapshot=before_contacts))

    assert load_customer(engine, "northwind") == northwind
    older = load_customer(engine, "northwind-2025")
    assert older.contacts == [] and older.relationship.champion_status == "left"


@pytest.mark.database
def test_the_contacts_are_a_column_the_scan_does_not_read(engine: Engine) -> None:
    northwind = read_customer_json(NORTHWIND)
    whole = northwind.model_dump(mode="json")  # a fresh document, the contacts in it
    whole["profile"]["customer_id"] = "northwind-whole"
    save_customer(engine, northwind)
    with session(engine) as db:  # written whole, as before migration 0020 or by a bulk insert
        db.add(CustomerRow(customer_id="northwind-whole", snapshot=whole))

    with session(engine) as db:
        row = db.get(CustomerRow, "northwind")
    assert row is not None and "contacts" not in row.snapshot
    assert row.contacts == northwind.model_dump(mode="json")["contacts"]
    (read,) = customer_page(engine, None, 1)
    assert read == ("northwind", row.snapshot)
    assert load_customer(engine, "northwind") == northwind
    assert list_customers(engine) == [northwind, load_customer(engine, "northwind-whole")]
    assert load_customer(engine, "northwind-whole").contacts == northwind.contacts
