"""A journey in live mode on the time-skipping server: its emails go to the fake SendGrid."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from conftest import RULES_DIR, JourneyWorld
from fake_providers import FakeSendGrid, FakeTwilio
from journey_stories import critical_customer, start
from sqlalchemy import Engine
from sqlmodel import select

from retention.journey_state import JourneyState
from retention.store.db import session
from retention.store.records import list_outbox
from retention.store.tables import DeliveryAttemptRow
from worker import build_activities

pytestmark = pytest.mark.database


@pytest.fixture
def journey_activities(
    engine: Engine, tmp_path: Path, fake_sendgrid: FakeSendGrid, fake_twilio: FakeTwilio
) -> list[Callable[..., Any]]:
    """The real activities, delivering live to the fakes."""
    providers = {"email": fake_sendgrid.provider(), "sms": fake_twilio.provider()}
    return build_activities(engine, RULES_DIR, tmp_path / "outbox", providers)


async def test_a_429_is_retried_after_retry_after_and_each_email_sent_once(
    world: JourneyWorld, fake_sendgrid: FakeSendGrid
) -> None:
    fake_sendgrid.fail_next(fake_sendgrid.busy(retry_after=1))

    final: JourneyState = await (await start(world, critical_customer())).result()

    emails = [s for s in final.steps if s.step.channel == "email"]
    assert emails and all(s.status == "done" and s.channel_used == "email" for s in emails)
    rows = {r.idempotency_key: r for r in list_outbox(world.engine, final.journey_key)}
    sent = [rows[k] for k in rows if rows[k].channel == "email"]
    assert len(sent) == len(emails) == fake_sendgrid.message_count
    assert all(r.status == "sent" and r.mode == "live" for r in sent)
    assert {r.provider_message_id for r in sent} == set(fake_sendgrid.messages.values())
    with session(world.engine) as db:
        attempts = db.exec(select(DeliveryAttemptRow)).all()
    assert len(attempts) == len(emails) + 1
    [busy] = [a for a in attempts if a.status_code == 429]
    assert rows[busy.idempotency_key].status == "sent"
    assert fake_sendgrid.keys_received().count(busy.idempotency_key) == 2
    others = [s for s in final.steps if s.step.channel != "email"]
    assert all(rows[k].mode == "capture" for k in rows if rows[k].channel != "email")
    assert others and all(s.status == "done" for s in others)
