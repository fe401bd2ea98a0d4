"""The `contact_changed` event: what its data may say, how the journey folds it into the
snapshot at the next re-score (upsert by contact id, removal) and so the champion status, and the
ingest mappings `rules check` refuses for it."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from factories import make_customer, person, replace_once

from retention.customer import CustomerEvent, CustomerSnapshot, parse_event
from retention.errors import InvalidInput
from retention.events import MAX_CONTACT_CHANGES, apply_effects, fold_events
from retention.ingest.sources import sources_findings


def acme() -> CustomerSnapshot:
    return make_customer(
        contacts=[person("ana", "champion", "admin"), person("bo", "billing")],
        relationship={"champion_status": "active"},
    )


def changed(*data: dict[str, Any]) -> CustomerSnapshot:
    events = [parse_event({"type": "contact_changed", "data": d}) for d in data]
    return apply_effects(acme(), fold_events(events), elapsed_hours=0)


# ---- what the event may say ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "named"),
    [
        (person("ana", email="nope"), r"data\.email: String should match pattern"),
        (person("ana", roles=["boss"]), r"data\.roles\.0: Input should be"),
        ({"contact_id": "ana"}, r"data\.name: Field required; data\.email: Field required"),
        (person("ana", shoe_size=44), r"data\.shoe_size: Extra inputs are not permitted"),
        (person("primary"), r"data\.contact_id 'primary' is the profile's person"),
        ({"contact_id": "ana", "removed": False}, r"data\.removed must be true"),
        ({"contact_id": "ana", "removed": True, "name": "Ana"}, r"data\.removed must be true"),
        ({"contact_id": "a b", "removed": True}, r"data\.contact_id must be a contact's id"),
    ],
)
def test_a_bad_contact_change_is_refused_naming_the_field(data: dict[str, Any], named: str) -> None:
    with pytest.raises(InvalidInput, match=named):
        parse_event({"type": "contact_changed", "data": data})


# ---- what the re-score sees ------------------------------------------------------------------


def test_a_champion_marked_inactive_turns_the_status_to_left() -> None:
    now = changed(person("ana", "champion", "admin", active=False))

    assert [(c.contact_id, c.active) for c in now.contacts] == [("ana", False), ("bo", True)]
    assert now.relationship.champion_status == "left"
    assert acme().relationship.champion_status == "active"  # the journey's own is untouched


def test_a_champion_removed_turns_the_status_to_left() -> None:
    now = changed({"contact_id": "ana", "removed": True})

    assert [c.contact_id for c in now.contacts] == ["bo"]
    assert now.relationship.champion_status == "left"


def test_the_only_contact_removed_as_champion_turns_the_status_to_left() -> None:
    alone = make_customer(contacts=[person("ana", "champion")])
    event = parse_event({"type": "contact_changed", "data": {"contact_id": "ana", "removed": True}})

    now = apply_effects(alone, fold_events([event]), elapsed_hours=0)

    assert (now.contacts, now.relationship.champion_status) == ([], "left")


def test_a_new_champion_is_added_at_the_end_and_keeps_the_status_active() -> None:
    now = changed(
        {"contact_id": "ana", "removed": True},
        person("cy", "champion", title="Head of Ops"),
    )

    assert [c.contact_id for c in now.contacts] == ["bo", "cy"]
    assert now.contacts[1].title == "Head of Ops"
    assert now.relationship.champion_status == "active"


def test_the_newest_change_of_a_person_counts() -> None:
    now = changed(
        person("bo", "billing", active=False),
        {"contact_id": "bo", "removed": True},
        person("bo", "billing", "admin", phone="+14155550100"),
    )

    assert [c.contact_id for c in now.contacts] == ["ana", "bo"]  # back in its place
    assert (now.contacts[1].roles, now.contacts[1].phone) == (["billing", "admin"], "+14155550100")


def test_a_change_that_would_list_a_person_twice_is_left_out() -> None:
    now = changed(
        person("cy", email="ana@acme.example"),  # ana's email: the snapshot would be refused
        person("bo", "billing", title="CFO"),
    )

    assert [(c.contact_id, c.title) for c in now.contacts] == [("ana", None), ("bo", "CFO")]
    CustomerSnapshot.model_validate(now.model_dump())  # still a valid snapshot


def test_removing_someone_not_listed_changes_nothing() -> None:
    assert changed({"contact_id": "zed", "removed": True}).contacts == acme().contacts


def test_the_folded_changes_stay_bounded() -> None:
    events = [
        CustomerEvent(type="contact_changed", data={"contact_id": f"p{i}", "removed": True})
        for i in range(MAX_CONTACT_CHANGES + 5)
    ]
    events.append(CustomerEvent(type="contact_changed", data=person("p0", title="kept")))

    effects = fold_events(events)

    assert len(effects.contacts) == MAX_CONTACT_CHANGES
    assert list(effects.contacts)[-1] == "p0"  # a person already there still changes


# ---- what the ingest mappings may do with it ------------------------------------------------


@pytest.mark.parametrize(
    ("entry", "reader"),
    [
        ("contact_changed: record", r"the re-score effect \(EFFECTS\) reads it"),
        ("contact_changed: {coalesce: 60s}", r"would merge the person each change names"),
    ],
)
def test_rules_check_refuses_to_drop_or_merge_contact_changes(
    rules_copy: Path, entry: str, reader: str
) -> None:
    replace_once(rules_copy / "sources.yaml", "delivery:\n", f"delivery:\n  {entry}\n")

    (finding,) = sources_findings(rules_copy)

    assert re.search(f"delivery contact_changed: .*{reader}", finding), finding
