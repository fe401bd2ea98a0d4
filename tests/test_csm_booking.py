"""The assigned CSM's booking link: built from RETENTION_CSM_BOOKING_URL by the deliver
activity, used by the re-engagement campaign's personal check-in ("Book 15 minutes")."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import RULES_DIR
from factories import make_customer, make_request, make_step
from pydantic import ValidationError
from sqlalchemy import Engine
from sqlmodel import select

from activities.deliver import DeliverActivities
from retention.delivery.booking import booking_link
from retention.rulebook.loader import load_rulebook
from retention.rulebook.source import RulebookSource
from retention.runtime.settings import Settings
from retention.store.db import session
from retention.store.tables import OutboxRow

PATTERN = "https://calendar.example.com/{csm}"


def checkin_step() -> object:
    """The re-engagement campaign's fourth email, as the shipped rules plan it."""
    [campaign] = [c for c in load_rulebook(RULES_DIR).campaigns if c.name == "re_engagement"]
    message = campaign.messages[3]
    assert message.template == "re_engagement_checkin" and message.cta == "Book 15 minutes"
    return make_step(
        message.template,
        step_id="g1-re_engagement-4",
        campaign=campaign.name,
        subject=message.subject,
        cta=message.cta,
    )


def sent_body(engine: Engine, tmp_path: Path, csm: str | None, pattern: str | None) -> str:
    activities = DeliverActivities(
        engine, tmp_path, RulebookSource(RULES_DIR), csm_booking_url=pattern
    )
    customer = make_customer(profile={"assigned_csm": csm})
    receipt = activities.deliver(make_request(checkin_step(), customer))
    with session(engine) as db:
        row = db.exec(select(OutboxRow).where(OutboxRow.id == receipt.outbox_id)).one()
    assert row.subject == "Can we help? 15 minutes with your CSM"
    return row.body


@pytest.mark.database
def test_the_checkin_email_carries_the_csms_booking_link(engine: Engine, tmp_path: Path) -> None:
    body = sent_body(engine, tmp_path, "csm-jordan", PATTERN)

    assert (
        "Book 15 minutes with me and pick any time that suits you: "
        "https://calendar.example.com/csm-jordan"
    ) in body
    assert "reply to this email" not in body


@pytest.mark.database
@pytest.mark.parametrize(("csm", "pattern"), [(None, PATTERN), ("csm-jordan", None)])
def test_without_a_link_the_checkin_asks_for_a_reply(
    engine: Engine, tmp_path: Path, csm: str | None, pattern: str | None
) -> None:
    body = sent_body(engine, tmp_path, csm, pattern)

    assert "Book 15 minutes: reply to this email with a time that suits you" in body
    assert "calendar.example.com" not in body and "None" not in body


def test_the_csm_id_is_quoted_into_the_pattern() -> None:
    assert booking_link(PATTERN, "Jordan Lee/EMEA") == (
        "https://calendar.example.com/Jordan%20Lee%2FEMEA"
    )
    assert booking_link("https://cal.example/{csm}?d=15", "a&b") == "https://cal.example/a%26b?d=15"
    assert booking_link(PATTERN, None) == booking_link(None, "csm-jordan") == ""


@pytest.mark.parametrize(
    ("pattern", "problem"),
    [
        ("https://calendar.example.com/jordan", "must hold {csm}"),
        ("calendar.example.com/{csm}", "must start with https://"),
    ],
)
def test_an_unusable_booking_url_is_refused_at_start(
    pattern: str, problem: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RETENTION_CSM_BOOKING_URL", pattern)
    with pytest.raises(ValidationError, match="csm_booking_url") as refused:
        Settings()
    assert problem in str(refused.value)


def test_an_empty_booking_url_means_none(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RETENTION_CSM_BOOKING_URL", "")
    assert Settings().csm_booking_url is None
