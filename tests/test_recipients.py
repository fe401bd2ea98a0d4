"""Rules address people: a step's `to` roles, `one` or `every` recipient and the fallback order
become the contacts it reaches on a channel; the loader, `rules check`, `rules test` and the
templates all see them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from factories import (
    case_facts,
    make_customer,
    make_request,
    make_step,
    person,
    refused_at,
    replace_once,
)
from typer.testing import CliRunner

from retention.customer import CustomerSnapshot
from retention.delivery.outbox import message_context
from retention.delivery.templates import TemplateSet, render_message
from retention.errors import RulebookError
from retention.plan import Addressee, Addressing, Channel, PlanStep, RecipientChoice
from retention.population import read_customer_json
from retention.recipients import recipients_for, spoken_to, step_recipients
from retention.rulebook.check import check
from retention.rulebook.decide import decide
from retention.rulebook.loader import load_rulebook
from retention.runtime.settings import ROOT
from starter import app

NORTHWIND = read_customer_json(ROOT / "examples" / "customers" / "northwind.json")


def reached(
    customer: CustomerSnapshot,
    to: list[Addressee],
    channel: Channel = "email",
    recipients: RecipientChoice = "one",
    fallback_to: list[Addressee] | None = None,
) -> list[str]:
    addressing = Addressing(to=to, recipients=recipients, fallback_to=fallback_to or [])
    return [r.contact.contact_id for r in recipients_for(addressing, channel, customer)]


# ---- whom a step reaches ----------------------------------------------------------------------


def test_a_role_reaches_its_people_at_the_channels_address() -> None:
    (sponsor,) = recipients_for(Addressing(to=["executive_sponsor"]), "sms", NORTHWIND)

    assert (sponsor.contact.name, sponsor.role, sponsor.address) == (
        "Marcus Lindqvist",
        "executive_sponsor",
        "+46701234567",
    )
    (by_email,) = recipients_for(Addressing(to=["billing"]), "email", NORTHWIND)
    assert by_email.address == "elena.rossi@northwind.example"


def test_one_is_the_first_reachable_and_every_is_all_of_them_once() -> None:
    customer = make_customer(
        contacts=[person("ana", "champion", "admin"), person("bo", "admin"), person("cy")]
    )

    assert reached(customer, ["admin", "user"]) == ["ana"]
    # in the order of `to`, then of the contact list; ana holds two roles but is reached once
    assert reached(customer, ["user", "admin"], recipients="every") == ["cy", "ana", "bo"]


def test_who_left_or_has_no_address_for_the_channel_is_not_reachable() -> None:
    # Jonas (nw-002), champion and admin, left; of the admins only Priya has a phone
    assert reached(NORTHWIND, ["admin"], recipients="every") == ["nw-003", "nw-004"]
    assert reached(NORTHWIND, ["admin"], channel="sms", recipients="every") == ["nw-003"]
    assert reached(NORTHWIND, ["user"], channel="sms") == []


def test_the_fallback_is_tried_role_by_role_when_to_reaches_nobody() -> None:
    fallback: list[Addressee] = ["champion", "billing", "primary"]

    # no active champion at northwind: the billing contact, then (on SMS, no phone) the primary
    assert reached(NORTHWIND, ["user"], channel="sms", fallback_to=fallback) == ["nw-003"]
    assert reached(NORTHWIND, ["champion"], fallback_to=fallback) == ["nw-005"]
    # `every` applies to the fallback role too
    assert reached(NORTHWIND, ["champion"], recipients="every", fallback_to=["admin"]) == [
        "nw-003",
        "nw-004",
    ]
    assert reached(NORTHWIND, ["champion"], fallback_to=["champion"]) == []


def test_without_contacts_every_role_is_the_primary_contact() -> None:
    customer = make_customer(profile={"phone": None})

    assert reached(customer, ["executive_sponsor"]) == ["primary"]
    assert reached(customer, ["billing", "user"], recipients="every") == ["primary"]
    assert reached(customer, ["admin"], channel="sms") == []  # the profile has no phone
    assert spoken_to(Addressing(to=["admin"]), "sms", customer)[0].contact_id == "primary"


def test_primary_is_the_profiles_person_as_listed() -> None:
    assert reached(NORTHWIND, ["primary"]) == ["nw-003"]


def test_a_step_that_reaches_nobody_on_its_channel_tries_its_fallback_channel() -> None:
    channel, people = step_recipients(Addressing(to=["billing"]), "sms", "email", NORTHWIND)

    assert (channel, [p.contact.contact_id for p in people]) == ("email", ["nw-005"])


def test_a_step_recorded_before_addressing_decodes_to_the_primary_contact() -> None:
    recorded = make_step().model_dump(mode="json", exclude={"addressing"})

    step = PlanStep.model_validate(recorded)

    assert step.addressing == Addressing(to=["primary"], recipients="one", fallback_to=[])


# ---- the rule files ---------------------------------------------------------------------------


def test_steps_carry_their_addressing_and_the_rule_sets_fallback(rules_copy: Path) -> None:
    replace_once(
        rules_copy / "timelines.yaml",
        'escalation: "assigned CSM",\n       to: [admin, user]}',
        'escalation: "assigned CSM",\n       to: [admin, user], fallback_to: [billing]}',
    )
    decision = decide(
        load_rulebook(rules_copy), case_facts(churn_probability=0.7, severity_value=21_000)
    )
    steps = {step.action: step.addressing for step in decision.plan.steps}

    assert steps["training_webinar"] == Addressing(
        to=["admin", "user"], recipients="every", fallback_to=["champion", "admin", "primary"]
    )
    assert steps["usage_tips"].fallback_to == ["billing"]  # its own, not the rule set's
    assert steps["csm_checkin"].to == ["primary"]  # a step naming no role: as before roles


def test_an_unknown_role_is_refused_at_its_line(rules_copy: Path) -> None:
    path = rules_copy / "strategies.yaml"
    replace_once(path, "to: [executive_sponsor]}", "to: [exec_sponsor]}")

    with pytest.raises(RulebookError, match=refused_at(path, "exec_sponsor")) as refused:
        load_rulebook(rules_copy)

    assert "strategies.0.interventions.0.to.0: Input should be 'executive_sponsor'" in str(
        refused.value
    )


@pytest.mark.parametrize(
    ("file", "old", "new", "field"),
    [
        ("journey.yaml", "fallback_to: [champion, admin, primary]", "fallback_to: [owner]", ""),
        ("campaigns.yaml", "to: [admin, user]", "to: [admin, admin]", "listed twice"),
        ("timelines.yaml", "recipients: every}", "recipients: all}", "'one' or 'every'"),
    ],
)
def test_bad_addressing_is_refused_naming_file_and_line(
    rules_copy: Path, file: str, old: str, new: str, field: str
) -> None:
    path = rules_copy / file
    replace_once(path, old, new)

    with pytest.raises(RulebookError, match=refused_at(path, new)) as refused:
        load_rulebook(rules_copy)

    assert field in str(refused.value)


def test_rules_check_names_a_step_that_reaches_nobody(rules_copy: Path, tmp_path: Path) -> None:
    path = rules_copy / "timelines.yaml"
    replace_once(path, "to: [executive_sponsor]}", "to: [executive_sponsor], fallback_to: [user]}")
    samples = tmp_path / "customers"
    samples.mkdir()
    (samples / "northwind.json").write_text(
        (ROOT / "examples/customers/northwind.json").read_text()
    )
    no_phone = make_customer(profile={"customer_id": "acme", "phone": None})
    (samples / "acme.json").write_text(no_phone.model_dump_json())

    # acme has no phone, but the step's fallback channel, a CSM task, reaches its primary contact
    assert check(rules_copy, samples) == []
    replace_once(path, "channel: phone, fallback: csm_task,", "channel: phone,")

    (finding,) = check(rules_copy, samples)

    line = next(n for n, text in enumerate(path.read_text().splitlines(), 1) if "outreach" in text)
    assert finding.startswith(f"{path}:{line}:")
    assert finding.endswith(
        "executive_outreach reaches nobody at acme (to executive_sponsor, then user; on phone)"
    )


# ---- rule cases -------------------------------------------------------------------------------


def test_a_case_names_whom_a_step_should_have_reached(rules_copy: Path) -> None:
    (rules_copy / "tests" / "people.yaml").write_text(
        "cases:\n  - name: the offer goes to billing\n"
        "    given: {churn_probability: 0.9}\n"
        "    contacts: [{contact_id: eve, name: Eve, email: eve@x.example, roles: [billing]},\n"
        "               {contact_id: al, name: Al, email: al@x.example, roles: [admin]}]\n"
        "    expect: {recipients: {retention_offer: [eve], newsletter: [al]}}\n"
    )

    result = CliRunner().invoke(app, ["rules", "test", str(rules_copy)])

    assert result.exit_code == 1
    assert "expected retention_offer to reach ['eve'] on email, got ['al']" in result.output
    assert "expected step newsletter in the plan, to check its recipients" in result.output


def test_a_case_listing_a_person_twice_is_refused_at_its_line(rules_copy: Path) -> None:
    (rules_copy / "tests" / "people.yaml").write_text(
        "cases:\n  - name: twins\n    given: {}\n"
        "    contacts: [{contact_id: a, name: A, email: a@x.example},\n"
        "               {contact_id: a, name: B, email: b@x.example}]\n"
        "    expect: {}\n"
    )

    result = CliRunner().invoke(app, ["rules", "test", str(rules_copy)])

    assert result.exit_code == 1
    assert "people.yaml:2:" in result.output and "contact_id is also contacts.0's" in result.output


# ---- templates --------------------------------------------------------------------------------


def greeting(customer: CustomerSnapshot, to: list[Addressee]) -> tuple[str, dict[str, Any]]:
    step = make_step("executive_call", channel="csm_task", addressing=Addressing(to=to))
    context = message_context(make_request(step=step, customer=customer), "csm_task", "csm")
    templates = TemplateSet(Path("."), {"t.j2": "{% block subject %}s{% endblock %}"
                            "{% block body %}{{ contact.name }} as {{ contact.role }}"
                            "{% endblock %}"})  # fmt: skip
    return render_message(templates, "t", context).body.strip(), context["contact"]


def test_a_template_reads_the_person_it_speaks_to_and_their_role() -> None:
    body, contact = greeting(NORTHWIND, ["executive_sponsor"])

    assert body == "Marcus Lindqvist as executive_sponsor"
    assert contact["title"] == "VP Operations"


def test_without_contacts_or_anyone_reachable_the_primary_contact_fills_in() -> None:
    assert greeting(make_customer(), ["executive_sponsor"])[0] == "Dana Reyes as executive_sponsor"
    # northwind has no active champion: the profile's Priya, as the primary contact
    assert greeting(NORTHWIND, ["champion"])[0] == "Priya Natarajan as primary"
