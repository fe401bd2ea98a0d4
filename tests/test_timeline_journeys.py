"""Stories of the account timeline on running journeys: every decision a journey's rule set
makes is on it with its rules and rule-set version, once however often its activity is retried;
the commands an operator gives with `starter.py` appear as theirs (a refused one not at all);
an event sent with `starter.py event` appears once, with its source; commands given in Temporal
UI and events sent by other programs are read from the journeys' histories, with the identity
Temporal recorded, once each; without Temporal the database's part is shown and says so."""

from __future__ import annotations

import asyncio
import getpass
import json
import socket
import uuid
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from conftest import RULES_DIR, JourneyWorld
from factories import customer_id_in_group, make_customer
from journey_stories import (
    dying_once,
    end_journey,
    nurture_customer,
    start,
    state_of,
    until_planned,
)
from sqlalchemy import Engine
from sqlmodel import col, select
from temporalio.client import Client, WorkflowHandle
from temporalio.testing import ActivityEnvironment, WorkflowEnvironment
from typer.testing import CliRunner, Result

import cli.journey_commands
import cli.timeline
import retention.runtime.history
import starter
from activities.decide import DecideActivities, DecideInput
from retention.analytics.reader import read_timeline
from retention.analytics.timeline import build_timeline
from retention.customer import CustomerEvent
from retention.rulebook.source import RulebookSource
from retention.runtime.operations import send_event
from retention.runtime.temporal import DATA_CONVERTER
from retention.scoring.assessment import assess_customer
from retention.store.db import session
from retention.store.tables import DecisionRow, HealthScoreRow
from worker import running_worker

Cli = Callable[..., Awaitable[Result]]


@pytest.fixture
def starter_cli(world: JourneyWorld, monkeypatch: pytest.MonkeyPatch) -> Cli:
    """`starter.py` against the test's Temporal server and database, as an operator runs it
    (in a thread: the command runs its own event loop)."""

    @contextmanager
    def database() -> Iterator[Engine]:
        yield world.engine

    for command_module in (cli.journey_commands, cli.timeline):
        monkeypatch.setattr(command_module, "database", database)
    address = world.client.service_client.config.target_host

    async def run(*args: str) -> Result:
        invoke = CliRunner().invoke
        return await asyncio.to_thread(invoke, starter.app, ["--address", address, *args])

    return run


async def timeline_of(starter_cli: Cli, customer_id: str) -> list[dict[str, Any]]:
    entries: list[dict[str, Any]] = (await timeline_document(starter_cli, customer_id))["entries"]
    return entries


async def timeline_document(starter_cli: Cli, customer_id: str) -> dict[str, Any]:
    shown = await starter_cli("timeline", customer_id, "--json")
    assert shown.exit_code == 0, shown.output
    document: dict[str, Any] = json.loads(shown.stdout)
    return document


async def client_as(world: JourneyWorld, identity: str) -> Client:
    """A client of the test's server that names itself as Temporal UI or a program would."""
    return await Client.connect(
        world.client.service_client.config.target_host,
        namespace=world.client.namespace,
        identity=identity,
        data_converter=DATA_CONVERTER,
    )


async def planned_journey(world: JourneyWorld) -> tuple[WorkflowHandle[Any, Any], str]:
    customer = nurture_customer()
    handle = await start(world, customer)
    await until_planned(world, handle)
    return handle, customer.customer_id


async def test_an_escalation_by_alice_shows_as_her_command_and_a_decision_with_its_rules(
    world: JourneyWorld, starter_cli: Cli
) -> None:
    handle, customer_id = await planned_journey(world)

    escalated = await starter_cli(
        "escalate", customer_id, "--reason", "exec complained", "--by", "alice"
    )

    assert escalated.exit_code == 0, escalated.output
    assert "escalated from nurture to proactive_engagement" in escalated.stdout
    state = await state_of(handle)
    entries = await timeline_of(starter_cli, customer_id)
    decisions = {e["reason"]: e for e in entries if e["kind"] == "decision"}
    first, escalation = decisions["first_plan"], decisions["escalation"]
    assert (first["from_strategy"], first["to_strategy"]) == (None, "nurture")
    assert (escalation["from_strategy"], escalation["to_strategy"], escalation["generation"]) == (
        "nurture", "proactive_engagement", 2,
    )  # fmt: skip
    assert escalation["fired_rules"] == state.fired_rules and escalation["fired_rules"]
    assert escalation["rules_version"] == state.rules_version
    assert entries.index(escalation) < entries.index(first)  # newest first
    commands = [e for e in entries if e["kind"] == "audit" and e["actor"].startswith("operator:")]
    assert [(c["actor"], c["action"], c["detail"]["reason"]) for c in commands] == [
        ("operator:alice", "escalate", "exec complained")
    ]
    assert "escalated from nurture to proactive_engagement" in commands[0]["detail"]["answer"]
    await end_journey(handle)


async def test_a_checkpoint_re_plan_shows_the_strategy_change_with_its_rules_and_version(
    world: JourneyWorld, starter_cli: Cli
) -> None:
    customer_id = customer_id_in_group("rec", held_out=False)
    healthy = make_customer(profile={"customer_id": customer_id})
    handle = await start(world, healthy, upstream_churn_probability=0.7)  # the first plan only

    final = await handle.result()

    assert final.outcome == "recovered" and final.checkpoints_done == [72]
    entries = await timeline_of(starter_cli, customer_id)
    rescored, first = [e for e in entries if e["kind"] == "decision"]
    assert (rescored["reason"], rescored["from_strategy"], rescored["to_strategy"]) == (
        "checkpoint", "proactive_engagement", "standard",
    )  # fmt: skip
    assert (first["reason"], first["to_strategy"]) == ("first_plan", "proactive_engagement")
    assert rescored["rules_version"] == final.rules_version and rescored["fired_rules"]
    assert rescored["journey_id"] == handle.id
    shown = build_timeline(read_timeline(world.engine, customer_id, 200))
    line = next(e.summary() for e in shown.entries if e.kind == "decision")
    assert line.startswith("strategy proactive_engagement → standard (rules: ")
    assert line.endswith(f", rule set {final.rules_version[:12]}) · checkpoint re-score")


async def test_commands_appear_as_their_authors_and_a_refused_one_not_at_all(
    world: JourneyWorld, starter_cli: Cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(getpass, "getuser", lambda: "ops-on-call")
    handle, customer_id = await planned_journey(world)

    paused = await starter_cli("pause", customer_id, "--reason", "legal hold", "--by", "alice")
    refused = await starter_cli("pause", customer_id, "--reason", "again", "--by", "bob")
    resumed = await starter_cli("resume", customer_id)  # by the user at the terminal
    cancelled = await starter_cli("cancel", customer_id, "--reason", "asked", "--by", "alice")

    assert [paused.exit_code, resumed.exit_code, cancelled.exit_code] == [0, 0, 0]
    assert refused.exit_code == 1 and "pause refused: journey is already paused" in refused.stderr
    assert (await handle.result()).outcome == "cancelled"
    entries = await timeline_of(starter_cli, customer_id)
    commands = [
        (e["actor"], e["action"])
        for e in reversed(entries)
        if e["kind"] == "audit" and e["actor"].startswith("operator:")
    ]
    assert commands == [
        ("operator:alice", "pause"),
        ("operator:ops-on-call", "resume"),
        ("operator:alice", "cancel"),
    ]


async def test_a_blank_author_is_refused_before_the_journey_hears_the_command(
    world: JourneyWorld, starter_cli: Cli
) -> None:
    handle, customer_id = await planned_journey(world)

    refused = await starter_cli("pause", customer_id, "--by", "  ")

    assert refused.exit_code == 2
    assert refused.stderr.strip() == "error: --by: say who gives the pause command"
    assert not (await state_of(handle)).paused
    await end_journey(handle)


async def test_an_event_sent_with_starter_event_appears_once_with_its_source(
    world: JourneyWorld, starter_cli: Cli
) -> None:
    handle, customer_id = await planned_journey(world)

    sent = await starter_cli("event", customer_id, "login")
    await end_journey(handle)
    too_late = await starter_cli("event", customer_id, "login")

    assert sent.exit_code == 0, sent.output
    assert too_late.exit_code == 1, too_late.output  # an ended journey takes no event
    state = await state_of(handle)
    assert state.events.tallies["login"].count == 1
    events = [e for e in await timeline_of(starter_cli, customer_id) if e["kind"] == "event"]
    assert [(e["source"], e["sender"], e["event_type"], e["status"]) for e in events] == [
        ("database", "cli", "login", "forwarded")
    ]
    assert events[0]["journey_id"] == handle.id


# ---- read from the journeys' histories ----------------------------------------------------


async def test_commands_given_in_temporal_ui_and_a_programs_event_appear_once_with_who_sent_them(
    world: JourneyWorld, starter_cli: Cli
) -> None:
    handle, customer_id = await planned_journey(world)
    alice = (await client_as(world, "alice@ui.example")).get_workflow_handle(handle.id)
    billing = await client_as(world, "billing-sync@prod-3")

    # what Temporal UI's update form sends: the update's name, its JSON argument, an update id
    await alice.execute_update("pause", {"reason": "legal hold"}, id=str(uuid.uuid4()))
    await alice.execute_update("resume", {}, id=str(uuid.uuid4()))
    await send_event(billing, customer_id, CustomerEvent(type="payment_succeeded"))
    escalated = await starter_cli("escalate", customer_id, "--reason", "exec call", "--by", "bob")

    assert escalated.exit_code == 0, escalated.output
    document = await timeline_document(starter_cli, customer_id)
    entries = document["entries"]
    commands = [e for e in entries if e["kind"] == "command"]
    assert [(c["command"], c["by"], c["via"], c["source"], c["taken"]) for c in commands] == [
        ("resume", "alice@ui.example", "update", "temporal", True),
        ("pause", "alice@ui.example", "update", "temporal", True),
    ]
    assert commands[1]["arguments"] == {"reason": "legal hold"}
    assert commands[1]["answer"] == "paused: legal hold"
    assert commands[0]["at"] > commands[1]["at"]
    by_bob = [e for e in entries if e["kind"] == "audit" and e["actor"] == "operator:bob"]
    assert [(e["action"], e["source"]) for e in by_bob] == [("escalate", "database")]
    events = [e for e in entries if e["kind"] == "event"]
    assert [(e["source"], e["sender"], e["event_type"], e["status"]) for e in events] == [
        ("temporal", "billing-sync@prod-3", "payment_succeeded", "accepted")
    ]
    assert document["history_read"] and document["history_notes"] == []
    assert document["recorded"]["command"] == 2
    await end_journey(handle)


async def test_with_temporal_stopped_the_timeline_shows_the_database_and_says_what_is_missing(
    world: JourneyWorld, starter_cli: Cli
) -> None:
    handle, customer_id = await planned_journey(world)
    paused = await starter_cli("pause", customer_id, "--reason", "legal hold", "--by", "bob")
    await end_journey(handle)

    stopped = stopped_server()
    shown, as_json = [
        await asyncio.to_thread(
            CliRunner().invoke, starter.app, ["--address", stopped, "timeline", customer_id, *more]
        )
        for more in ([], ["--json"])
    ]

    assert paused.exit_code == 0, paused.output
    assert (shown.exit_code, as_json.exit_code) == (0, 0), shown.output + as_json.output
    document = json.loads(as_json.stdout)
    audited = [(e["actor"], e["action"]) for e in document["entries"] if e["kind"] == "audit"]
    assert ("operator:bob", "pause") in audited
    assert not document["history_read"]
    assert not any(e["source"] == "temporal" for e in document["entries"])
    missing = [line for line in shown.stdout.splitlines() if line.startswith("not shown:")]
    assert len(missing) == 1 and "because Temporal could not be reached: " in missing[0]
    assert document["history_notes"] == [missing[0]]
    assert "Traceback" not in shown.output


def stopped_server() -> str:
    """An address where a Temporal server was and is no longer: nothing listens on it."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        host, port = sock.getsockname()
    return f"{host}:{port}"


async def test_a_journey_is_read_newest_run_first_and_says_when_older_runs_were_not_read(
    world: JourneyWorld, starter_cli: Cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(retention.runtime.history, "MAX_RUNS_PER_JOURNEY", 2)
    customer = nurture_customer()
    handle = await start(world, customer, continue_as_new_after_events=2)
    await until_planned(world, handle)
    program = await client_as(world, "product-analytics")

    sent = 0
    while (await state_of(handle)).runs < 3 and sent < 40:  # a third run: one more than read
        event = CustomerEvent(type="login", data={"n": sent})
        await send_event(program, customer.customer_id, event)
        sent += 1
    document = await timeline_document(starter_cli, customer.customer_id)
    await end_journey(handle)

    heard = [e for e in document["entries"] if e["kind"] == "event"]
    assert heard and all(e["sender"] == "product-analytics" for e in heard)
    assert (await state_of(handle)).runs >= 3
    assert len(heard) < sent  # the first run's were not read
    [note] = document["history_notes"]
    assert note.startswith(f"{handle.id}: older history not read (read 2 runs, ")


async def test_an_older_journey_of_the_customer_is_read_from_its_own_runs(
    world: JourneyWorld, starter_cli: Cli
) -> None:
    customer = nurture_customer()
    first = await start(world, customer)
    await until_planned(world, first)
    alice = await client_as(world, "alice@ui.example")
    await alice.get_workflow_handle(first.id).execute_update(
        "cancel", {"reason": "wrong plan"}, id="ui-cancel-1"
    )
    await first.result()
    second = await start(world, customer)  # the same customer's next journey: the same id
    await until_planned(world, second)
    await alice.get_workflow_handle(second.id).execute_update(
        "pause", {"reason": "renewal talks"}, id="ui-pause-2"
    )

    entries = await timeline_of(starter_cli, customer.customer_id)
    await end_journey(second)

    commands = [(e["command"], e["arguments"]) for e in entries if e["kind"] == "command"]
    assert ("pause", {"reason": "renewal talks"}) in commands
    assert ("cancel", {"reason": "wrong plan"}) in commands
    assert commands.index(("pause", {"reason": "renewal talks"})) < commands.index(
        ("cancel", {"reason": "wrong plan"})
    )


# ---- a retried activity ------------------------------------------------------------------


async def test_every_rescore_retried_after_its_write_records_one_decision(
    time_skipping_env: WorkflowEnvironment,
    engine: Engine,
    journey_activities: list[Callable[..., Any]],
    tmp_path: Path,
) -> None:
    activities = dying_once(journey_activities, "assess_and_decide")
    customer = nurture_customer()

    async with running_worker(time_skipping_env.client, activities) as task_queue:
        client = time_skipping_env.client
        world = JourneyWorld(client, time_skipping_env, task_queue, engine, tmp_path / "outbox")
        handle = await start(world, customer)
        final = await handle.result()  # the plan runs out or a checkpoint finds them recovered

    with session(engine) as db:
        decisions = db.exec(select(DecisionRow).where(DecisionRow.journey_id == handle.id)).all()
        scored = db.exec(select(HealthScoreRow).where(HealthScoreRow.journey_id == handle.id)).all()
    assert final.outcome in {"completed", "recovered"}
    assert len(decisions) == len(scored) == 1 + len(final.checkpoints_done)
    assert [d.reason for d in decisions].count("first_plan") == 1
    assert {d.decision_key for d in decisions} == {s.assessment_key for s in scored}
    assert all(d.journey_key == final.journey_key for d in decisions)


@pytest.mark.database
def test_the_older_decide_activity_records_its_decision_once_per_attempt(engine: Engine) -> None:
    """Journeys begun before scoring and deciding were one activity still call `decide`."""
    deciding = DecideActivities(RulebookSource(RULES_DIR), engine)
    customer = make_customer(profile={"customer_id": "cust-old"})
    assessment = assess_customer(customer, RulebookSource(RULES_DIR).current(), datetime.now(UTC))
    env = ActivityEnvironment()
    env.info = replace(env.info, workflow_id="retention-cust-old", workflow_run_id="run-1")
    request = DecideInput(assessment=assessment)

    first = env.run(deciding.decide, request)
    env.run(deciding.decide, request)  # the same activity, retried

    with session(engine) as db:
        rows = db.exec(select(DecisionRow).where(col(DecisionRow.customer_id) == "cust-old")).all()
    assert [(r.journey_id, r.reason, r.to_strategy) for r in rows] == [
        ("retention-cust-old", "first_plan", first.strategy)
    ]
    assert rows[0].fired_rules == first.fired_rules and rows[0].journey_key is None
