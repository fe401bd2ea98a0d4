"""Capture-mode delivery: templates, channel fallback and the exactly-once outbox."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from factories import count, make_customer, make_request, make_step
from sqlalchemy import Engine
from sqlmodel import select

from retention.delivery.channels import recipient_for, resolve_channel
from retention.delivery.outbox import message_context
from retention.delivery.requests import DeliveryReceipt
from retention.delivery.send import deliver
from retention.delivery.templates import TemplateSet, render_message
from retention.errors import InvalidInput
from retention.plan import Channel, PlanStep
from retention.rulebook.loader import load_rulebook
from retention.runtime.settings import ROOT
from retention.store.db import session
from retention.store.tables import InterventionRow, OutboxRow

pytestmark = pytest.mark.database

TEMPLATES = ROOT / "rules" / "templates"
SHIPPED = TemplateSet.read(TEMPLATES)
SHIPPED_RULES = load_rulebook(ROOT / "rules")  # read once: every template's test reads it
ACTIONS = [
    "executive_call",
    "retention_offer",
    "feature_training",
    "success_plan_review",
    "csm_checkin",
    "value_demonstration",
    "training_webinar",
    "feature_recommendation",
    "email_campaign",
    "resource_sharing",
    "peer_success_story",
    "newsletter",
    "feature_updates",
    "alert_csm",
    "executive_outreach",
    "value_review",
    "training_session",
    "success_plan",
    "escalation_review",
    "personalized_email",
    "usage_tips",
    "webinar_invite",
    "success_story",
    "feature_unlock",
]
# Templates written only for the CSM: they explain the churn risk, so never go to a customer.
CSM_ONLY = {
    "executive_call",
    "alert_csm",
    "feature_training",
    "success_plan_review",
    "value_review",
    "escalation_review",
}


def shipped_step(template: str, channel: Channel) -> PlanStep:
    """A step for `template` as the shipped rules plan it (campaign messages have a subject)."""
    for campaign in SHIPPED_RULES.campaigns:
        for message in campaign.messages:
            if message.template == template:
                return make_step(
                    template, channel=channel, campaign=campaign.name, subject=message.subject,
                    cta=message.cta,
                )  # fmt: skip
    return make_step(template, channel=channel)


def files_under(directory: Path) -> list[Path]:
    return sorted(p for p in directory.rglob("*") if p.is_file())


def test_delivering_twice_delivers_once(engine: Engine, tmp_path: Path) -> None:
    outbox = tmp_path / "outbox"
    first = deliver(engine, outbox, SHIPPED, make_request())
    second = deliver(engine, outbox, SHIPPED, make_request())

    assert not first.duplicate and second.duplicate
    assert second.model_dump(exclude={"duplicate"}) == first.model_dump(exclude={"duplicate"})
    assert first.idempotency_key == "retention-cust-001:run-1:g1-01-retention_offer"
    assert (first.channel, first.recipient, first.fallback_used) == (
        "email",
        "dana@acme.example",
        False,
    )
    assert count(engine, OutboxRow) == 1 and count(engine, InterventionRow) == 1
    [path] = files_under(outbox)
    assert path == outbox / "retention-cust-001" / "g1-01-retention_offer.txt"
    assert str(path) == first.path
    text = path.read_text()
    assert text.startswith(f"To: dana@acme.example\nChannel: email\nSubject: {first.subject}\n\n")
    assert "Dana Reyes" in text

    with session(engine) as db:
        intervention = db.exec(select(InterventionRow)).one()
    assert (intervention.outbox_id, intervention.status) == (first.outbox_id, "captured")


def test_concurrent_deliveries_write_one_row(engine: Engine, tmp_path: Path) -> None:
    outbox = tmp_path / "outbox"
    barrier = threading.Barrier(8)

    def deliver_racing(_: int) -> DeliveryReceipt:
        barrier.wait()
        return deliver(engine, outbox, SHIPPED, make_request())

    with ThreadPoolExecutor(max_workers=8) as pool:
        receipts = list(pool.map(deliver_racing, range(8)))

    assert sum(not r.duplicate for r in receipts) == 1
    assert len({r.outbox_id for r in receipts}) == 1
    assert count(engine, OutboxRow) == 1 and count(engine, InterventionRow) == 1
    assert len(files_under(outbox)) == 1


def test_missing_variable_writes_nothing(engine: Engine, tmp_path: Path) -> None:
    templates = tmp_path / "templates"
    templates.mkdir()
    (templates / "broken.j2").write_text(
        "{% block subject %}Hi{% endblock %}{% block body %}{{ customer.profile.nickname }}"
        "{% endblock %}"
    )
    request = make_request(step=make_step(template="broken"))

    with pytest.raises(InvalidInput, match=r"broken\.j2.*nickname"):
        deliver(engine, tmp_path / "outbox", TemplateSet.read(templates), request)
    assert count(engine, OutboxRow) == 0 and count(engine, InterventionRow) == 0
    assert not (tmp_path / "outbox").exists()


def test_missing_template_is_named(tmp_path: Path) -> None:
    with pytest.raises(InvalidInput, match="no_such_action"):
        render_message(TemplateSet.read(tmp_path), "no_such_action", {})


@pytest.mark.parametrize(
    "expression",
    [
        "''.__class__.__mro__",
        "cycler.__init__.__globals__",
        "joiner.__init__.__globals__['os']",
        "customer.__class__",
    ],
)
def test_sandbox_refuses_escapes(tmp_path: Path, expression: str) -> None:
    (tmp_path / "escape.j2").write_text(
        f"{{% block subject %}}x{{% endblock %}}{{% block body %}}{{{{ {expression} }}}}"
        "{% endblock %}"
    )
    with pytest.raises(InvalidInput, match=r"escape\.j2.*sandbox"):
        render_message(TemplateSet.read(tmp_path), "escape", {"customer": {}})


def test_sms_without_phone_falls_back(engine: Engine, tmp_path: Path) -> None:
    step = make_step("usage_tips", channel="sms", fallback_channel="email")
    receipt = deliver(engine, tmp_path, SHIPPED, make_request(step=step))
    assert (receipt.channel, receipt.recipient, receipt.fallback_used) == (
        "email",
        "dana@acme.example",
        True,
    )
    with session(engine) as db:
        assert db.exec(select(InterventionRow.channel)).one() == "email"


def test_sms_with_phone_uses_sms() -> None:
    customer = make_customer(profile={"phone": "+14155550100"})
    step = make_step("usage_tips", channel="sms", fallback_channel="email")
    assert resolve_channel(step, customer) == ("sms", False)
    assert recipient_for("sms", customer) == "+14155550100"


def test_unreachable_without_fallback_names_the_step() -> None:
    step = make_step("executive_outreach", channel="phone", fallback_channel="sms")
    with pytest.raises(InvalidInput, match="g1-01-executive_outreach"):
        resolve_channel(step, make_customer())


@pytest.mark.parametrize(
    ("channel", "csm", "expected"),
    [
        ("in_app", "csm-jordan", "in_app:cust-001"),
        ("csm_task", "csm-jordan", "csm-jordan"),
        ("meeting", "csm-jordan", "csm-jordan"),
        ("internal", None, "csm:unassigned"),
    ],
)
def test_recipients(channel: Channel, csm: str | None, expected: str) -> None:
    customer = make_customer(profile={"assigned_csm": csm})
    assert recipient_for(channel, customer) == expected


def test_every_action_has_a_template() -> None:
    missing = [a for a in ACTIONS if not (TEMPLATES / f"{a}.j2").is_file()]
    assert missing == []


@pytest.mark.parametrize("path", sorted(TEMPLATES.glob("*.j2")), ids=lambda p: p.stem)
@pytest.mark.parametrize("channel", ["email", "csm_task"])
@pytest.mark.parametrize("csm", ["csm-jordan", None])
def test_every_template_renders(path: Path, channel: Channel, csm: str | None) -> None:
    customer = make_customer(profile={"assigned_csm": csm, "onboarding_progress": 45})
    request = make_request(step=shipped_step(path.stem, channel), customer=customer)
    context = message_context(request, channel, recipient_for(channel, customer))

    message = render_message(SHIPPED, path.stem, context)

    assert message.subject and "\n" not in message.subject
    assert len(message.body) > 40
    assert "None" not in message.subject + message.body
    if channel == "email" and path.stem not in CSM_ONLY:
        # A customer never reads about their own churn risk.
        assert "churn" not in (message.subject + message.body).lower()
        assert "86%" not in message.body
