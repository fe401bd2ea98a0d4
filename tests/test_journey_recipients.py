"""A running journey sends a step to each person it reaches, each in their own quiet hours: the
one whose evening it is waits for their morning, the other hears at once and only once, and the
journey's state lists them both and how each went."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from datetime import datetime, time, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from conftest import RULES_DIR, JourneyWorld
from factories import make_customer, person, replace_once
from journey_stories import AT_RISK, critical_customer, end_journey, start, until
from rich.console import Console
from sqlalchemy import Engine
from sqlmodel import select

from cli.journey_commands import recipients_table
from retention.customer import CustomerSnapshot
from retention.journey_state import JourneyState, StepState
from retention.store.db import session
from retention.store.tables import OutboxRow
from worker import build_activities

pytestmark = pytest.mark.database

QUIET = 'quiet_hours: {from: "21:00", to: "08:00", channels: [email, sms, phone, in_app]}'


@pytest.fixture
def journey_activities(engine: Engine, tmp_path: Path) -> list[Callable[..., Any]]:
    """The shipped rules with quiet hours on, and the offer sent to every executive sponsor."""
    rules = Path(shutil.copytree(RULES_DIR, tmp_path / "rules"))
    with (rules / "journey.yaml").open("a") as file:
        file.write(f"\n{QUIET}\n")
    offer = 'escalation: "account executive",\n         to: [executive_sponsor]}'
    every = 'escalation: "account executive",\n         to: [executive_sponsor], recipients: every}'
    replace_once(rules / "strategies.yaml", offer, every)
    return build_activities(engine, rules, tmp_path / "outbox")


def zone_where_it_is(hour: int, now: datetime) -> ZoneInfo:
    """A fixed-offset zone whose clock reads `hour`:xx at `now`."""
    offset = (hour - now.hour) % 24
    offset = offset - 24 if offset > 14 else offset
    return ZoneInfo("Etc/UTC" if offset == 0 else f"Etc/GMT{-offset:+d}")  # POSIX sign


def two_sponsors(night: ZoneInfo, day: ZoneInfo) -> CustomerSnapshot:
    """Eve, for whom it is 22:xx, and Sam, for whom it is 10:xx; Dana, the profile's person."""
    base = critical_customer()
    contacts = [
        person("dana", "admin", email=base.profile.email),
        person("eve", "executive_sponsor", timezone=night.key),
        person("sam", "executive_sponsor", timezone=day.key),
    ]
    profile = base.profile.model_dump(mode="json")
    return make_customer(profile=profile, contacts=contacts, **AT_RISK)


def offer(state: JourneyState) -> StepState:
    return next(s for s in state.steps if s.step.action == "retention_offer")


def offer_is(holds: Callable[[StepState], bool]) -> Callable[[JourneyState], bool]:
    """A condition for `until`, false until the offer is planned."""
    return lambda s: any(x.step.action == "retention_offer" and holds(x) for x in s.steps)


def offer_rows(engine: Engine, state: JourneyState) -> dict[str, OutboxRow]:
    with session(engine) as db:
        query = select(OutboxRow).where(
            OutboxRow.journey_key == state.journey_key,
            OutboxRow.step_id == offer(state).step.step_id,
        )
        return {row.idempotency_key.rsplit(":", 1)[-1]: row for row in db.exec(query).all()}


async def test_each_sponsor_hears_once_in_their_own_waking_hours(world: JourneyWorld) -> None:
    now = await world.env.get_current_time()
    night, day = zone_where_it_is(22, now), zone_where_it_is(10, now)
    handle = await start(world, two_sponsors(night, day))

    waiting = await until(world, handle, offer_is(lambda x: x.deferred_until is not None))
    held = offer(waiting)
    assert held.status == "pending"
    assert [(r.contact_id, r.status) for r in held.recipients] == [
        ("eve", "held"),
        ("sam", "captured"),
    ]
    assert held.deferred_why == f"eve waited for the quiet hours 21:00-08:00 {night.key}"
    assert list(offer_rows(world.engine, waiting)) == ["sam"]

    await world.env.sleep(timedelta(hours=10))
    state = await until(world, handle, offer_is(lambda x: x.status == "done"))

    sent = offer(state)
    eve_local = state.started_at.astimezone(night)
    morning = datetime.combine(eve_local.date() + timedelta(days=1), time(8), tzinfo=night)
    assert sent.deferred_until == morning
    assert [(r.contact_id, r.status, r.address) for r in sent.recipients] == [
        ("eve", "captured", "e***@acme.example"),
        ("sam", "captured", "s***@acme.example"),
    ]
    rows = offer_rows(world.engine, state)
    assert sorted(rows) == ["eve", "sam"]  # one row each: Sam was not sent it again
    assert rows["eve"].journey_at is not None and rows["eve"].journey_at >= morning
    assert rows["sam"].journey_at is not None and rows["sam"].journey_at < morning

    shown = Console(width=200, record=True)
    shown.print(recipients_table(state))
    text = shown.export_text()
    assert "eve" in text and "e***@acme.example" in text and "eve@acme.example" not in text
    await end_journey(handle)
