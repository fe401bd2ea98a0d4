"""`starter.py tasks` against journeys on the time-skipping server: a completed CSM task is a
`task_completed` event in the customer's running journey; a task of an ended journey is still
completed, and the CLI says the event did not reach a journey."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import JourneyWorld
from factories import make_request, make_step
from journey_stories import critical_customer, end_journey, start, state_of, until
from sqlalchemy import Engine
from typer.testing import CliRunner, Result

import starter
from cli.app import console
from retention.delivery.send import deliver
from retention.delivery.templates import TemplateSet
from retention.journey_state import JourneyState
from retention.runtime.settings import ROOT, get_settings
from retention.store.csm_tasks import list_tasks
from retention.store.db import make_engine

runner = CliRunner()


@pytest.fixture
def engine(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Engine]:
    """One SQLite database shared by the worker and the CLI (the CLI reads it from settings)."""
    url = f"sqlite:///{tmp_path / 'retention.db'}"
    monkeypatch.setenv("RETENTION_DATABASE_URL", url)
    monkeypatch.setattr(console, "_width", 200)  # tables on one line each
    get_settings.cache_clear()
    engine = make_engine(url)
    yield engine
    engine.dispose()
    get_settings.cache_clear()


async def cli(world: JourneyWorld, *args: str) -> Result:
    """starter.py in a thread (it runs its own event loop), at the time-skipping server."""
    address = world.client.service_client.config.target_host
    return await asyncio.to_thread(runner.invoke, starter.app, ["--address", address, *args])


def executive_call_done(state: JourneyState) -> bool:
    return any(s.step.action == "executive_call" and s.status == "done" for s in state.steps)


async def open_task(world: JourneyWorld, customer_id: str) -> dict[str, Any]:
    listed = await cli(world, "tasks", "list", "--customer", customer_id, "--json")
    assert listed.exit_code == 0, listed.output
    [task] = [t for t in json.loads(listed.stdout) if t["action"] == "executive_call"]
    return task


async def test_completing_a_task_tells_the_running_journey(world: JourneyWorld) -> None:
    customer = critical_customer()
    handle = await start(world, customer)
    await until(world, handle, executive_call_done)
    task = await open_task(world, customer.customer_id)
    table = await cli(world, "tasks", "list", "--csm", "csm-jordan")
    assert "executive_call" in table.stdout and customer.customer_id in table.stdout

    done = await cli(world, "tasks", "complete", str(task["id"]), "--by", "csm-jordan",
                     "--note", "CFO joined")  # fmt: skip

    assert done.exit_code == 0, done.output
    assert f"task {task['id']} (executive_call for {customer.customer_id}) done" in done.stdout
    assert "task_completed event sent" in done.stdout
    state = await until(
        world, handle, lambda s: any(e.type == "task_completed" for e in s.events.recent)
    )
    [event] = [e for e in state.events.recent if e.type == "task_completed"]
    assert event.accepted
    assert event.data == {
        "task_id": task["id"],
        "action": "executive_call",
        "completed_by": "csm-jordan",
        "note": "CFO joined",
    }
    assert state.outcome is None  # an event, not an exit: the plan goes on

    again = await cli(world, "tasks", "complete", str(task["id"]), "--by", "someone-else")
    assert again.exit_code == 1
    assert again.stderr.strip() == (
        f"error: task {task['id']} was already done: by csm-jordan at "
        f"{_when(world, task['id'])}: CFO joined"
    )
    events = [e for e in (await state_of(handle)).events.recent if e.type == "task_completed"]
    assert len(events) == 1
    await end_journey(handle)


async def test_a_task_of_an_ended_journey_is_still_completed(world: JourneyWorld) -> None:
    customer = critical_customer()
    handle = await start(world, customer)
    await until(world, handle, executive_call_done)
    await end_journey(handle)
    task = await open_task(world, customer.customer_id)

    done = await cli(world, "tasks", "complete", str(task["id"]), "--by", "csm-jordan")

    assert done.exit_code == 0, done.output
    # the dev server says the journey has ended; the time-skipping server only that none runs
    assert "task_completed event not delivered: " in done.stdout
    assert customer.customer_id in done.stdout.splitlines()[-1]
    [row] = list_tasks(world.engine, customer_id=customer.customer_id, status="done")
    assert (row.action, row.completed_by, row.event_sent_at) == (
        "executive_call",
        "csm-jordan",
        None,
    )
    assert all(e.type != "task_completed" for e in (await state_of(handle)).events.recent)


async def test_a_bad_status_or_task_is_one_error_line(world: JourneyWorld) -> None:
    bad = await cli(world, "tasks", "list", "--status", "closed")
    assert (bad.exit_code, bad.stderr.strip()) == (
        2,
        "error: --status: 'closed' is not one of open, snoozed, done, all",
    )
    missing = await cli(world, "tasks", "complete", "999")
    assert missing.exit_code == 1 and missing.stderr.strip().startswith("error: no CSM task 999")


def _when(world: JourneyWorld, task_id: int) -> str:
    [row] = [t for t in list_tasks(world.engine, status="done") if t.id == task_id]
    assert row.completed_at is not None
    return f"{row.completed_at:%Y-%m-%d %H:%M:%S}"


def test_in_app_lists_a_customers_in_app_messages(engine: Engine, tmp_path: Path) -> None:
    templates = TemplateSet.read(ROOT / "rules" / "templates")
    tips = make_step("usage_tips", channel="in_app", fallback_channel="email")
    receipt = deliver(engine, tmp_path, templates, make_request(tips))

    shown = runner.invoke(starter.app, ["in-app", "cust-001"])
    nothing = runner.invoke(starter.app, ["in-app", "cust-002"])

    assert shown.exit_code == 0, shown.output
    assert "in-app messages for cust-001 (1)" in shown.stdout
    assert tips.step_id in shown.stdout and receipt.subject in shown.stdout
    assert nothing.stdout.strip() == "no in-app messages for cust-002"
