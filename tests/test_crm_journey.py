"""A critical journey's CSM tasks in HubSpot, and HubSpot's completion reaching the journey once:
the real activities (the deliver activity pushes right after filing) on the time-skipping
server, the forwarder sending the queued event on."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any
from uuid import uuid4

import pytest
from conftest import RULES_DIR, JourneyWorld
from crm_world import OWNERS, crm_customer, file_task, reload
from fake_crm import FakeHubSpot
from journey_stories import critical_customer, end_journey, start, state_of, until
from pydantic import SecretStr
from sqlalchemy import Engine
from test_ingest_forwarder import forwarder
from test_journey_tasks import executive_call_done

from activities.crm import CrmSyncRequest
from retention.crm.hubspot import HubSpotCrm
from retention.crm.sync import CrmSync
from retention.customer import CustomerSnapshot
from retention.journey_state import JourneyState
from retention.store.crm_tasks import complete_from_crm
from retention.store.csm_tasks import list_tasks
from worker import build_activities
from workflows.crm_sync import CrmSyncWorkflow

pytestmark = pytest.mark.database

ACCOUNT = "9001"


@pytest.fixture
def journey_activities(
    engine: Engine, tmp_path: Path, hubspot: FakeHubSpot
) -> list[Callable[..., Any]]:
    crm = CrmSync(engine, HubSpotCrm(SecretStr(hubspot.token), hubspot.url, None, 5.0), OWNERS)
    return build_activities(engine, RULES_DIR, tmp_path / "outbox", crm=crm)


def in_hubspot(customer: CustomerSnapshot) -> CustomerSnapshot:
    profile = customer.profile.model_copy(update={"crm_account_id": ACCOUNT})
    return customer.model_copy(update={"profile": profile})


def heard_of_completion(state: JourneyState) -> bool:
    return any(e.type == "task_completed" for e in state.events.recent)


async def test_a_critical_journeys_tasks_are_in_hubspot_and_a_completion_reaches_it_once(
    world: JourneyWorld, hubspot: FakeHubSpot
) -> None:
    customer = in_hubspot(critical_customer())
    handle = await start(world, customer)
    await until(world, handle, executive_call_done)

    tasks = list_tasks(world.engine, customer_id=customer.customer_id)
    assert tasks and {t.crm_status for t in tasks} == {"synced"}
    assert {t.idempotency_key for t in tasks} == set(hubspot.tasks)
    assert all(("companies", ACCOUNT) in t.associations for t in hubspot.tasks.values())
    [call] = [t for t in tasks if t.action == "executive_call"]

    for _ in range(2):  # HubSpot sends the webhook again
        complete_from_crm(world.engine, "hubspot", str(call.crm_id), None)
        await forwarder(world).drain()

    state = await until(world, handle, heard_of_completion)
    [event] = [e for e in state.events.recent if e.type == "task_completed"]
    assert event.data["task_id"] == call.id and event.data["completed_by"] == "hubspot (CRM)"
    await forwarder(world).drain()
    again = await state_of(handle)
    assert sum(e.type == "task_completed" for e in again.events.recent) == 1
    await end_journey(handle)


async def test_the_crm_sync_schedule_pushes_what_a_journey_left_pending(
    world: JourneyWorld, hubspot: FakeHubSpot
) -> None:
    task = file_task(world.engine, world.outbox_dir, crm_customer(ACCOUNT))  # nothing pushed it yet

    handle = await world.client.start_workflow(
        CrmSyncWorkflow.run, CrmSyncRequest(), id=f"crm-sync-{uuid4()}", task_queue=world.task_queue
    )
    world.workflows.append(handle)
    report = await handle.result()

    assert report.crm == "hubspot" and report.pushed == {"synced": 1}
    assert reload(world.engine, task).crm_id == hubspot.tasks[task.idempotency_key].crm_id
