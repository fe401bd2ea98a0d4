"""Rules address people: a step's `to` roles, `one` or `every` recipient and the fallback order
become the contacts it reaches on a channel; the loader, `rules check`, `rules test` and the
templates all see them."""

from __future__ import annotations

import json
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
from temporalio.client import WorkflowHistory
from typer.testing import CliRunner

from retention.compact import EVERY_FIELD
from retention.customer import CustomerSnapshot
from retention.delivery.outbox import message_context
from retention.delivery.templates import TemplateSet, render_message
from retention.errors import RulebookError
from retention.journey_state import JourneyRequest, JourneyState
from retention.plan import (
    Addressee,
    Addressing,
    Channel,
    Decision,
    InterventionPlan,
    PlanStep,
    RecipientChoice,
)
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


def decided_with_usage_tips_to_billing(rules_copy: Path) -> Decision:
    """A proactive_engagement decision whose usage_tips step names its own fallback order."""
    replace_once(
        rules_copy / "timelines.yaml",
        'escalation: "assigned CSM",\n       to: [admin, user]}',
        'escalation: "assigned CSM",\n       to: [admin, user], fallback_to: [billing]}',
    )
    return decide(
        load_rulebook(rules_copy), case_facts(churn_probability=0.7, severity_value=21_000)
    )


def test_steps_carry_their_addressing_and_the_rule_sets_fallback(rules_copy: Path) -> None:
    decision = decided_with_usage_tips_to_billing(rules_copy)
    steps = {step.action: step.addressing for step in decision.plan.steps}

    assert steps["training_webinar"] == Addressing(
        to=["admin", "user"], recipients="every", fallback_to=["champion", "admin", "primary"]
    )
    assert steps["usage_tips"].fallback_to == ["billing"]  # its own, not the rule set's
    assert steps["csm_checkin"].to == ["primary"]  # a step naming no role: as before roles


# ---- the fallback order in payloads ----------------------------------------------------------

RULE_SETS_ORDER = ["champion", "admin", "primary"]  # rules/journey.yaml
BEFORE = ROOT / "tests" / "histories" / "2026-12-03-before-wait-for-reach"


def fallback_orders(data: Any) -> list[Any]:
    """Every `fallback_to` a payload's JSON writes, wherever it is."""
    if isinstance(data, dict):
        own = [data["fallback_to"]] if "fallback_to" in data else []
        return own + [o for value in data.values() for o in fallback_orders(value)]
    if isinstance(data, list):
        return [o for value in data for o in fallback_orders(value)]
    return []


def recorded(history: str, attributes: str, marker: bytes) -> list[bytes]:
    """The payloads of one kind of event in a recorded history that contain `marker`."""
    events = WorkflowHistory.from_json("journey", (BEFORE / history).read_text()).events
    return [
        p.data
        for e in events
        if e.HasField(attributes)
        for p in getattr(e, attributes).ListFields()[0][1].payloads  # result / input
        if marker in p.data
    ]


def test_a_decided_plan_names_the_rule_sets_fallback_once(rules_copy: Path) -> None:
    decision = decided_with_usage_tips_to_billing(rules_copy)
    plan = json.loads(decision.plan.model_dump_json())

    assert plan["steps_fallback_to"] == RULE_SETS_ORDER
    # only the step with an order of its own still names one
    assert fallback_orders(plan["steps"]) == [["billing"]]
    assert InterventionPlan.model_validate_json(decision.plan.model_dump_json()) == decision.plan
    assert Decision.model_validate_json(decision.model_dump_json()) == decision
    # Python dumps and `show --json` keep every step's own
    every = decision.plan.model_dump(mode="json", context={EVERY_FIELD: True})
    assert "steps_fallback_to" not in every and len(fallback_orders(every)) == len(plan["steps"])


def test_a_step_without_a_fallback_keeps_none_beside_steps_that_share_one() -> None:
    shared = Addressing(to=["champion"], fallback_to=["admin", "primary"])
    steps = [
        make_step("a", addressing=shared),
        make_step("b", addressing=shared),
        make_step("c", addressing=Addressing(to=["billing"])),  # no fallback of its own
        make_step("d"),  # named no roles: the primary contact, no fallback
    ]
    plan = InterventionPlan(strategy="nurture", steps=steps)

    data = json.loads(plan.model_dump_json())

    assert data["steps_fallback_to"] == ["admin", "primary"]
    assert fallback_orders(data["steps"]) == [[]]  # c's, written so it is not taken for shared
    assert "addressing" not in data["steps"][3]
    assert InterventionPlan.model_validate(data) == plan
    assert data["steps_fallback_to"] == ["admin", "primary"]  # decoding left the payload as is


def test_a_decision_recorded_with_the_fallback_in_every_step_decodes_the_same() -> None:
    history = "test_a_strategy_held_at_every_checkpoint_runs_its_whole_plan-sqlite-nurture-1.json"
    first, *_rescores = recorded(history, "activity_task_completed_event_attributes", b'"plan"')
    old = json.loads(first)["decision"]
    assert "steps_fallback_to" not in old["plan"] and len(fallback_orders(old["plan"])) > 2

    decision = Decision.model_validate(old)

    assert [s.addressing.fallback_to for s in decision.plan.steps] == [RULE_SETS_ORDER] * len(
        old["plan"]["steps"]
    )
    # written again it names the order once, and reads back as the recorded payload did
    again = json.loads(decision.model_dump_json())
    assert again["plan"]["steps_fallback_to"] == RULE_SETS_ORDER
    assert fallback_orders(again["plan"]["steps"]) == []
    assert Decision.model_validate(again) == decision


def test_a_journeys_state_names_its_steps_fallback_once_and_reads_old_states() -> None:
    history = "test_a_strategy_held_at_every_checkpoint_runs_its_whole_plan-sqlite-nurture-1.json"
    (payload,) = recorded(history, "workflow_execution_completed_event_attributes", b'"steps"')
    old = JourneyState.model_validate_json(payload)
    steps = [s.step for s in old.steps]
    assert len(steps) > 2 and all(s.addressing.fallback_to == RULE_SETS_ORDER for s in steps)

    data = json.loads(old.model_dump_json())

    assert data["steps_fallback_to"] == RULE_SETS_ORDER and fallback_orders(data["steps"]) == []
    assert JourneyState.model_validate(data) == old
    carried = JourneyRequest(carried_state=old).model_dump_json()  # continue-as-new
    assert carried.count("fallback_to") == 1
    assert JourneyRequest.model_validate_json(carried).carried_state == old


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
