"""Guard rails in running journeys on the time-skipping server: unsubscribes and the
suppression list, frequency caps and quiet hours (by the customer's clock)."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from datetime import datetime, time, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from conftest import RULES_DIR, JourneyWorld
from factories import make_customer, outbox_row, person
from journey_stories import AT_RISK, critical_customer, end_journey, start, until, until_planned
from sqlalchemy import Engine
from sqlmodel import select
from temporalio.client import WorkflowHandle

from retention.customer import CustomerSnapshot
from retention.journey_state import JourneyState, PauseRequest, StepState
from retention.store.db import session
from retention.store.suppressions import add_suppression, list_suppressions
from retention.store.tables import InterventionRow, OutboxRow
from retention.suppression import SuppressRequest
from worker import build_activities
from workflows.retention_journey import RetentionJourney

pytestmark = pytest.mark.database

QUIET = 'quiet_hours: {from: "21:00", to: "08:00", channels: [email, sms, phone, in_app]}'


@pytest.fixture
def journey_activities(
    engine: Engine, tmp_path: Path, request: pytest.FixtureRequest
) -> list[Callable[..., Any]]:
    """The real activities; parametrized indirectly, with these lines added to journey.yaml."""
    rules = RULES_DIR
    if extra := getattr(request, "param", ""):
        rules = Path(shutil.copytree(RULES_DIR, tmp_path / "rules"))
        with (rules / "journey.yaml").open("a") as file:
            file.write(f"\n{extra}\n")
    return build_activities(engine, rules, tmp_path / "outbox")


def step(state: JourneyState, action: str) -> StepState:
    return next(s for s in state.steps if s.step.action == action)


def asked(action: str) -> Callable[[JourneyState], bool]:
    """A condition for `until`: the deliver activity has answered for a step of `action`."""
    return lambda state: any(s.step.action == action and s.recipients for s in state.steps)


def done(*actions: str) -> Callable[[JourneyState], bool]:
    """A condition for `until`: a step for each action has been delivered."""
    return lambda state: all(
        any(s.step.action == a and s.status == "done" for s in state.steps) for a in actions
    )


def outbox_rows(engine: Engine, journey_key: str, step_id: str) -> list[OutboxRow]:
    with session(engine) as db:
        query = select(OutboxRow).where(
            OutboxRow.journey_key == journey_key, OutboxRow.step_id == step_id
        )
        return list(db.exec(query).all())


def intervention(engine: Engine, journey_key: str, step_id: str) -> InterventionRow:
    with session(engine) as db:
        query = select(InterventionRow).where(
            InterventionRow.journey_key == journey_key, InterventionRow.step_id == step_id
        )
        return db.exec(query).one()


async def unsubscribe(handle: WorkflowHandle, **data: str) -> None:
    await handle.signal(RetentionJourney.customer_event, {"type": "unsubscribed", "data": data})


def assert_fallback_for_suppressed_email(
    world: JourneyWorld, state: JourneyState, action: str
) -> None:
    """The step went in-app, and its state, outbox and intervention rows say why."""
    sent = step(state, action)
    assert (sent.status, sent.channel_used) == ("done", "in_app")
    assert sent.note.startswith("fallback: email to ") and " suppressed since " in sent.note
    rows = {r.channel: r for r in outbox_rows(world.engine, state.journey_key, sent.step.step_id)}
    assert rows["email"].status == "suppressed" and rows["email"].body == ""
    assert rows["in_app"].status == "captured"
    assert intervention(world.engine, state.journey_key, sent.step.step_id).note == sent.note


# ---- unsubscribe and the suppression list -----------------------------------------------------


async def test_unsubscribe_stops_email_but_not_csm_tasks_in_every_journey(
    world: JourneyWorld,
) -> None:
    customer = critical_customer()
    handle = await start(world, customer)
    first = await until(world, handle, done("retention_offer", "re_engagement_away"))
    assert step(first, "retention_offer").channel_used == "email"

    await unsubscribe(handle, reason="too many emails")
    heard = await until(
        world,
        handle,
        lambda s: (
            any(e.type == "unsubscribed" for e in s.events.recent) and not s.pending_suppressions
        ),
    )
    [entry] = list_suppressions(world.engine, customer.customer_id)
    assert (entry.channel, entry.address, entry.reason) == (
        "email",
        customer.profile.email,
        "too many emails",
    )
    assert entry.source == f"unsubscribed event via {handle.id}"
    assert heard.outcome is None  # an unsubscribe stops a channel, not the journey

    await world.env.sleep(timedelta(hours=73))
    later = await until(world, handle, done("re_engagement_new_feature", "success_plan_review"))
    assert_fallback_for_suppressed_email(world, later, "re_engagement_new_feature")
    for csm_work in ("feature_training", "success_plan_review"):
        assert (step(later, csm_work).channel_used, step(later, csm_work).note) == ("csm_task", "")
    await end_journey(handle)

    # the customer's next journey (a new run) keeps the suppression
    second = await start(world, customer)
    again = await until(world, second, done("retention_offer", "executive_call"))
    assert again.journey_key != later.journey_key
    assert_fallback_for_suppressed_email(world, again, "retention_offer")
    assert step(again, "executive_call").channel_used == "csm_task"
    await end_journey(second)


async def test_a_suppression_list_entry_sends_the_step_to_its_fallback(
    world: JourneyWorld,
) -> None:
    customer = critical_customer()
    add_suppression(
        world.engine,
        SuppressRequest(customer_id=customer.customer_id, channel="email", source="cli"),
    )
    handle = await start(world, customer)

    state = await until(world, handle, done("retention_offer", "executive_call"))

    assert_fallback_for_suppressed_email(world, state, "retention_offer")
    assert "(unsubscribed; cli)" in step(state, "retention_offer").note
    offer = step(state, "retention_offer")
    assert (offer.delivery_mode, offer.provider, offer.provider_message_id) == (
        "capture",
        None,
        None,
    )
    await end_journey(handle)


async def test_an_unsubscribe_during_a_pause_is_recorded_at_once(world: JourneyWorld) -> None:
    customer = critical_customer()
    handle = await start(world, customer)
    await until_planned(world, handle)
    await handle.execute_update(RetentionJourney.pause, PauseRequest(reason="hold"))

    await unsubscribe(handle, channel="in_app")
    state = await until(
        world, handle, lambda s: bool(s.events.received) and not s.pending_suppressions
    )

    assert state.paused
    assert [e.channel for e in list_suppressions(world.engine, customer.customer_id)] == ["in_app"]
    await end_journey(handle)


# ---- frequency caps ---------------------------------------------------------------------------


async def test_the_email_cap_holds_a_step_until_the_window_has_room(world: JourneyWorld) -> None:
    handle = await start(world, critical_customer())  # offer + four re-engagement emails

    final: JourneyState = await handle.result()

    # the shipped cap: at most 3 emails to a person in any 7 days
    emails = sorted(s.done_at for s in final.steps if s.channel_used == "email" and s.done_at)
    assert len(emails) == 5
    for i, sent in enumerate(emails[3:], start=3):  # never a fourth within 7 days
        assert sent - emails[i - 3] >= timedelta(days=7)
    held = [s for s in final.steps if s.deferred_until is not None]
    assert held and all(s.deferred_why == "waited for the email cap of 3 per 7d" for s in held)
    for s in held:
        assert s.done_at is not None and s.deferred_until <= s.done_at
        assert s.done_at - s.deferred_until < timedelta(minutes=5)
        assert s.deferred_until > s.due_at
    # the receipts said when the window had room: no deliver was asked only to be held
    assert not any(s.held_once for s in final.steps)
    assert not any(r.status in ("held", "capped") for s in final.steps for r in s.recipients)


def sponsor_gone_champion_busy() -> CustomerSnapshot:
    """The executive sponsor, whom the offer is for, left; the rule set's fallback order
    (champion, admin, primary) reaches Cleo, the champion. Dana is the profile's person."""
    base = critical_customer()
    contacts = [
        person("dana", "admin", email=base.profile.email),
        person("vic", "executive_sponsor", active=False),
        person("cleo", "champion"),
    ]
    profile = base.profile.model_dump(mode="json")
    return make_customer(profile=profile, contacts=contacts, **AT_RISK)


def at_her_cap(engine: Engine, address: str, sent: list[datetime]) -> None:
    """Emails another journey sent to `address` at `sent` (journey time): with the shipped cap
    of 3 per 7 days, three of them fill her week."""
    with session(engine) as db:
        for n, at in enumerate(sent):
            step_id = f"g1-0{n}-newsletter"
            db.add(outbox_row(step_id, "retention-other/run-1", recipient=address, journey_at=at))


async def test_a_fallback_person_at_their_cap_waits_for_room(world: JourneyWorld) -> None:
    now = await world.env.get_current_time()
    oldest = now - timedelta(days=1)
    at_her_cap(world.engine, "cleo@acme.example", [oldest, now - timedelta(hours=5), now])
    # the upstream probability keeps the journey on critical_save at every re-score
    handle = await start(world, sponsor_gone_champion_busy(), upstream_churn_probability=0.95)

    waiting = await until(world, handle, asked("retention_offer"))
    held = step(waiting, "retention_offer")

    assert held.status == "pending"
    assert [(r.contact_id, r.role, r.status) for r in held.recipients] == [
        ("cleo", "champion", "held")
    ]
    assert held.deferred_why == "cleo waited for the email cap of 3 per 7d"
    room = oldest + timedelta(days=7)  # when her week has room (to the whole second)
    assert held.deferred_until is not None
    assert room <= held.deferred_until < room + timedelta(seconds=1)
    assert outbox_rows(world.engine, waiting.journey_key, held.step.step_id) == []

    await world.env.sleep(held.deferred_until - await world.env.get_current_time())
    state = await until(world, handle, done("retention_offer"))

    sent = step(state, "retention_offer")
    assert [(r.contact_id, r.role, r.status) for r in sent.recipients] == [
        ("cleo", "champion", "captured")
    ]
    assert sent.channel_used == "email" and sent.deferred_until == held.deferred_until
    (row,) = outbox_rows(world.engine, state.journey_key, sent.step.step_id)  # sent once
    assert row.recipient == "cleo@acme.example" and row.idempotency_key.endswith(":cleo")
    assert row.journey_at is not None and row.journey_at >= held.deferred_until
    await end_journey(handle)


# ---- quiet hours ------------------------------------------------------------------------------


async def customer_at_night(world: JourneyWorld) -> tuple[CustomerSnapshot, ZoneInfo]:
    """A critical customer in a zone where the server's clock reads 22:xx now."""
    now = await world.env.get_current_time()
    offset = (22 - now.hour) % 24
    offset = offset - 24 if offset > 14 else offset
    name = "Etc/UTC" if offset == 0 else f"Etc/GMT{-offset:+d}"  # POSIX: the sign is flipped
    customer = critical_customer()
    profile = customer.profile.model_dump() | {"timezone": name}
    return make_customer(profile=profile, **AT_RISK), ZoneInfo(name)


@pytest.mark.parametrize("journey_activities", [QUIET], indirect=True)
async def test_a_step_due_at_night_goes_out_when_quiet_hours_end(world: JourneyWorld) -> None:
    customer, zone = await customer_at_night(world)
    handle = await start(world, customer)
    planned = await until(
        world,
        handle,
        lambda s: any(x.step.action == "retention_offer" and x.deferred_until for x in s.steps),
    )
    offer = step(planned, "retention_offer")
    assert offer.status == "pending" and offer.deferred_until is not None
    assert offer.deferred_why == f"waited for the quiet hours 21:00-08:00 {zone.key}"

    await world.env.sleep(timedelta(hours=10))
    state = await until(world, handle, done("retention_offer"))

    offer = step(state, "retention_offer")
    started = state.started_at.astimezone(zone)
    morning = datetime.combine(started.date() + timedelta(days=1), time(8), tzinfo=zone)
    assert offer.due_at - state.started_at < timedelta(minutes=1)  # planned for right away
    assert offer.deferred_until == morning  # held until 08:00 the next day, their time
    assert offer.done_at is not None and morning <= offer.done_at < morning + timedelta(minutes=5)
    # CSM work is not held: it went at once, at night
    assert planned.stage != "closed" and step(planned, "executive_call").status == "done"
    call = step(state, "executive_call")
    assert call.done_at is not None and call.done_at - state.started_at < timedelta(minutes=5)
    await end_journey(handle)
