"""A journey's customer snapshot travels once: its first assessment keeps it by journey key, and
later assessments and deliveries name it instead of carrying it in every activity input."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from conftest import RULES_DIR
from factories import customer_id_in_group, make_customer, make_request
from journey_stories import DORMANT, start, state_of
from sqlalchemy import Engine
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from activities.assess import AssessActivities, AssessInput
from activities.deliver import DeliverActivities
from retention.delivery.requests import DeliverInput
from retention.journey_state import JourneyState
from retention.rulebook.source import RulebookSource
from retention.store.erasure import forget_customer
from retention.store.records import journey_snapshot

pytestmark = pytest.mark.database

KEY = "retention-snap-001/run-1"


def assess(engine: Engine, **fields: Any) -> Any:
    activities = AssessActivities(engine, RulebookSource(RULES_DIR))
    request = AssessInput(journey_id="retention-snap-001", customer_id="snap-001", **fields)
    return ActivityEnvironment().run(activities.assess, request)


def deliver_input(**fields: Any) -> DeliverInput:
    request = make_request(journey_id="retention-snap-001", journey_key=KEY)
    return DeliverInput.model_validate({**request.model_dump(), "customer": None, **fields})


def test_the_first_assessment_keeps_the_snapshot_and_later_ones_score_from_it(
    engine: Engine,
) -> None:
    customer = make_customer(profile={"customer_id": "snap-001"}, usage={"features_used": 3})

    first = assess(engine, customer=customer, journey_key=KEY)
    later = assess(engine, journey_key=KEY)  # no snapshot given, none in `customers`

    assert journey_snapshot(engine, KEY) == customer
    assert later.health.overall == first.health.overall
    assert later.loaded is None  # the journey holds it already


def test_a_delivery_naming_the_kept_snapshot_is_rendered_for_that_customer(
    engine: Engine, tmp_path: Path
) -> None:
    customer = make_customer(profile={"customer_id": "snap-001", "email": "ana@snap.example"})
    assess(engine, customer=customer, journey_key=KEY)
    activities = DeliverActivities(engine, tmp_path, RulebookSource(RULES_DIR))

    receipt = ActivityEnvironment().run(activities.deliver, deliver_input())

    assert receipt.recipient == "ana@snap.example"


def test_a_step_due_after_the_customer_was_forgotten_fails_naming_why(
    engine: Engine, tmp_path: Path
) -> None:
    assess(engine, customer=make_customer(profile={"customer_id": "snap-001"}), journey_key=KEY)
    forget_customer(engine, tmp_path, "snap-001", actor="cli:privacy-officer")
    activities = DeliverActivities(engine, tmp_path, RulebookSource(RULES_DIR))

    with pytest.raises(ApplicationError) as refused:
        ActivityEnvironment().run(activities.deliver, deliver_input())

    assert refused.value.non_retryable and refused.value.type == "InvalidInput"
    assert "customer snapshot is gone" in str(refused.value)


async def test_a_journey_carries_the_customer_snapshot_in_one_activity_input(world: Any) -> None:
    customer_id = customer_id_in_group("nur", held_out=False)
    handle = await start(world, make_customer(profile={"customer_id": customer_id}, **DORMANT))

    final: JourneyState = await handle.result()

    history = await handle.fetch_history()
    scheduled = [
        e.activity_task_scheduled_event_attributes
        for e in history.events
        if e.HasField("activity_task_scheduled_event_attributes")
    ]
    carrying = [
        a.activity_type.name
        for a in scheduled
        if any(b'"profile"' in p.data for p in a.input.payloads)
    ]
    assert len(scheduled) > 10 and carrying == ["assess_and_decide"]
    assert final.outcome == "completed" and final.customer is None and final.policy is None
    queried = await state_of(handle)  # the state keeps both
    assert queried.customer is not None and queried.policy is not None
