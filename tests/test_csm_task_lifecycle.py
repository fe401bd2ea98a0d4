"""CSM tasks as a CSM expects them: a journey asking again updates the open task, a snoozed
task waits (and a re-ask does not wake it), an overdue task is alerted once, and the rules say
when a task is due."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from factories import case_facts, count, make_request, make_step, replace_once
from sqlalchemy import Engine
from typer.testing import CliRunner

import starter
from cli.app import console
from retention.delivery.overdue import alert_overdue, overdue_messages
from retention.delivery.requests import DeliveryReceipt
from retention.delivery.send import deliver
from retention.delivery.templates import TemplateSet
from retention.errors import InvalidInput, RulebookError
from retention.plan import PlanStep
from retention.rulebook.decide import decide
from retention.rulebook.loader import load_rulebook
from retention.runtime.settings import ROOT
from retention.store.csm_tasks import (
    TaskNotFound,
    TaskNotOpen,
    complete_task,
    list_tasks,
    snooze_task,
)
from retention.store.db import make_engine
from retention.store.records import list_outbox
from retention.store.tables import CsmTaskRow, OutboxRow

pytestmark = pytest.mark.database

SHIPPED = TemplateSet.read(ROOT / "rules" / "templates")
runner = CliRunner()


def csm_step(generation: int = 1, source: str = "strategy:critical_save") -> PlanStep:
    return make_step(
        "executive_call",
        step_id=f"g{generation}-01-executive_call",
        channel="csm_task",
        fallback_channel="internal",
        owner="csm",
        source=source,
    )


def ask(
    engine: Engine, outbox: Path, generation: int = 1, run: int = 1, **step: str
) -> DeliveryReceipt:
    """The executive call step of plan `generation` in journey run `run`, delivered."""
    request = make_request(
        csm_step(generation, **step), journey_key=f"retention-cust-001:run-{run}"
    )
    return deliver(engine, outbox, SHIPPED, request)


def only_task(engine: Engine) -> CsmTaskRow:
    [task] = list_tasks(engine, status="all")
    assert task.id is not None
    return task


# ---- dedupe -----------------------------------------------------------------------------------


def test_a_replan_asking_again_updates_the_open_task(engine: Engine, tmp_path: Path) -> None:
    first = ask(engine, tmp_path, generation=1)
    made = only_task(engine)
    again = ask(engine, tmp_path, generation=2)
    retried = ask(engine, tmp_path, generation=2)  # the re-plan's activity, retried

    task = only_task(engine)
    assert task.id == made.id and task.requests == 2
    assert (task.journey_key, task.step_id, task.outbox_id) == (
        "retention-cust-001:run-1",
        "g2-01-executive_call",
        again.outbox_id,
    )
    assert task.idempotency_key == first.idempotency_key  # the message that made it
    assert task.due_at == made.due_at  # the customer has waited since the first ask
    assert task.reason == "strategy:critical_save"
    assert first.note is None and not again.duplicate
    assert (
        again.note
        == f"updated CSM task {task.id}: already open for this customer, action and reason"
    )
    assert retried.duplicate and retried.note == again.note
    assert count(engine, OutboxRow) == 2  # each ask keeps its own message and key


def test_a_new_journey_asking_at_once_makes_one_task(engine: Engine, tmp_path: Path) -> None:
    with ThreadPoolExecutor(max_workers=4) as pool:
        receipts = list(pool.map(lambda run: ask(engine, tmp_path, run=run), range(4)))

    task = only_task(engine)
    assert task.requests == 4
    assert sum(r.note is None for r in receipts) == 1  # the one that made it


def test_another_reason_or_a_done_task_gets_a_task_of_its_own(
    engine: Engine, tmp_path: Path
) -> None:
    ask(engine, tmp_path, generation=1)
    ask(engine, tmp_path, generation=2, source="timeline:critical")
    [by_strategy, by_timeline] = list_tasks(engine)
    assert by_strategy.id is not None
    complete_task(engine, by_strategy.id, "csm-jordan", None)
    ask(engine, tmp_path, generation=3)

    assert {t.reason for t in list_tasks(engine)} == {"strategy:critical_save", "timeline:critical"}
    assert count(engine, CsmTaskRow) == 3


# ---- snooze -----------------------------------------------------------------------------------


def test_a_snoozed_task_waits_and_a_reask_does_not_wake_it(engine: Engine, tmp_path: Path) -> None:
    ask(engine, tmp_path, generation=1)
    task = only_task(engine)
    assert task.id is not None
    until = datetime.now(UTC) + timedelta(days=7)

    snooze_task(engine, task.id, until, "customer on holiday")
    ask(engine, tmp_path, generation=2)

    [held] = list_tasks(engine, status="snoozed")
    assert (held.id, held.requests, held.step_id) == (task.id, 2, "g2-01-executive_call")
    assert (held.snoozed_until, held.snooze_reason) == (until, "customer on holiday")
    assert list_tasks(engine) == [] and count(engine, CsmTaskRow) == 1
    after = until + timedelta(seconds=1)
    assert [t.id for t in list_tasks(engine, now=after)] == [task.id]
    assert list_tasks(engine, status="snoozed", now=after) == []


def test_snoozing_names_what_is_wrong(engine: Engine, tmp_path: Path) -> None:
    ask(engine, tmp_path)
    task = only_task(engine)
    assert task.id is not None
    later = datetime.now(UTC) + timedelta(days=1)

    with pytest.raises(InvalidInput, match="--until: .* is not in the future"):
        snooze_task(engine, task.id, datetime.now(UTC) - timedelta(hours=1), "late")
    with pytest.raises(InvalidInput, match="--reason"):
        snooze_task(engine, task.id, later, " ")
    with pytest.raises(TaskNotFound, match="no CSM task 99"):
        snooze_task(engine, 99, later, "holiday")
    complete_task(engine, task.id, "csm-jordan", None)
    with pytest.raises(TaskNotOpen, match=f"task {task.id} is done"):
        snooze_task(engine, task.id, later, "holiday")


# ---- overdue ----------------------------------------------------------------------------------


def test_an_overdue_task_is_alerted_once(engine: Engine, tmp_path: Path) -> None:
    ask(engine, tmp_path)
    task = only_task(engine)
    late = task.due_at + timedelta(hours=1)
    assert list_tasks(engine, overdue=True) == []
    assert [t.id for t in list_tasks(engine, overdue=True, now=late)] == [task.id]

    with ThreadPoolExecutor(max_workers=2) as pool:
        runs = list(pool.map(lambda _: alert_overdue(engine, tmp_path, late), range(2)))
    again = alert_overdue(engine, tmp_path, late + timedelta(days=1))

    assert sorted(len(alerted) for alerted in runs) == [0, 1] and again == []
    assert only_task(engine).overdue_alerted_at == late
    [alert] = [m for m in list_outbox(engine) if m.channel == "internal"]
    assert alert.idempotency_key == f"csm-task:{task.id}:overdue"
    assert alert.subject.startswith(f"Overdue: task {task.id}, executive_call for cust-001")
    assert Path(alert.path).read_text(encoding="utf-8").startswith(f"To: {alert.recipient}")
    assert count(engine, CsmTaskRow) == 1  # the alert is no task of its own


def test_an_overdue_tasks_note_and_slack_alert_are_built_from_the_same_fields() -> None:
    due = datetime(2026, 3, 4, 5, 6, tzinfo=UTC)
    task = CsmTaskRow(
        id=7,
        journey_key="jk-1",
        journey_id="journey-cust-1",
        step_id="g1-00-executive_call",
        customer_id="cust-1",
        action="executive_call",
        reason="timeline:critical",
        summary="Call the champion",
        due_at=due,
        requests=2,
        idempotency_key="task-key",
        crm_url="https://crm.example/tasks/7",
    )

    row, alert = overdue_messages(Path("/outbox"), task, due + timedelta(days=1), "http://ui/j")
    quiet, none = overdue_messages(Path("/outbox"), task, due, None)

    assert row.subject == "Overdue: task 7, executive_call for cust-1 (due 2026-03-04 05:06 UTC)"
    assert row.body == (
        "Call the champion\n\nOwner: csm:unassigned. Asked 2 time(s) by timeline:critical.\n"
        "Done: starter.py tasks complete 7; "
        "not yet: starter.py tasks snooze 7 --until DATE --reason TEXT"
    )
    assert alert is not None and alert.key == "csm-task:7:overdue:slack"
    assert alert.headline == "Overdue: executive call for cust-1"
    assert alert.reason == "task 7 was due 2026-03-04 05:06 UTC: Call the champion"
    assert (alert.fired_rules, alert.crm_task_url) == (["timeline:critical"], task.crm_url)
    assert none is None and quiet.subject == row.subject  # Slack off: the note alone


def test_snoozed_and_done_tasks_are_not_overdue(engine: Engine, tmp_path: Path) -> None:
    ask(engine, tmp_path, generation=1)
    ask(engine, tmp_path, generation=2, source="timeline:critical")
    [snoozed, done] = list_tasks(engine)
    assert snoozed.id is not None and done.id is not None
    until = datetime.now(UTC) + timedelta(days=3)
    snooze_task(engine, snoozed.id, until, "waiting for the renewal call")
    complete_task(engine, done.id, "csm-jordan", None)

    assert alert_overdue(engine, tmp_path, snoozed.due_at + timedelta(hours=1)) == []
    woken = alert_overdue(engine, tmp_path, until + timedelta(hours=1))
    assert [t.id for t in woken] == [snoozed.id]


# ---- due times come from the rules ----------------------------------------------------------


def test_the_rules_set_when_a_task_is_due(rules_copy: Path) -> None:
    shipped = decide(load_rulebook(rules_copy), case_facts(churn_probability=0.9)).plan.steps
    replace_once(
        rules_copy / "strategies.yaml",
        "{action: executive_call, at: immediate,",
        "{action: executive_call, at: immediate, due: 4h,",
    )
    replace_once(rules_copy / "journey.yaml", "csm_task_due: 24h", "csm_task_due: 2d")
    edited = decide(load_rulebook(rules_copy), case_facts(churn_probability=0.9)).plan.steps

    def due(steps: list[PlanStep], action: str) -> float | None:
        return next(s.task_due_hours for s in steps if s.action == action)

    assert (due(shipped, "executive_call"), due(shipped, "feature_training")) == (24, 24)
    assert (due(edited, "executive_call"), due(edited, "feature_training")) == (4, 48)


def test_a_task_is_due_when_its_step_says(engine: Engine, tmp_path: Path) -> None:
    step = csm_step().model_copy(update={"task_due_hours": 4})
    deliver(engine, tmp_path, SHIPPED, make_request(step))

    task = only_task(engine)
    assert task.due_at - task.created_at == timedelta(hours=4)


def test_a_bad_due_time_names_its_line(rules_copy: Path) -> None:
    path = rules_copy / "strategies.yaml"
    line = next(n for n, t in enumerate(path.read_text().splitlines(), 1) if "executive_call" in t)
    replace_once(
        path,
        "{action: executive_call, at: immediate,",
        "{action: executive_call, at: immediate, due: soon,",
    )

    with pytest.raises(RulebookError, match=rf"strategies\.yaml:{line}:\d+: .*due.*24h, 3d"):
        load_rulebook(rules_copy)


# ---- the CLI ----------------------------------------------------------------------------------


@pytest.fixture
def cli_engine(cli_database: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Engine:
    monkeypatch.setenv("RETENTION_OUTBOX_DIR", str(tmp_path / "outbox"))
    monkeypatch.setattr(console, "_width", 200)  # tables on one line each
    return make_engine(cli_database)


def test_snooze_list_and_alert_from_the_cli(cli_engine: Engine, tmp_path: Path) -> None:
    ask(cli_engine, tmp_path / "outbox")
    task_id = str(only_task(cli_engine).id)

    snoozed = runner.invoke(
        starter.app, ["tasks", "snooze", task_id, "--until", "2099-01-01", "--reason", "holiday"]
    )
    hidden = runner.invoke(starter.app, ["tasks", "list"])
    shown = runner.invoke(starter.app, ["tasks", "list", "--status", "snoozed"])
    overdue = runner.invoke(starter.app, ["tasks", "list", "--overdue"])
    alerted = runner.invoke(starter.app, ["tasks", "alert-overdue"])

    assert snoozed.exit_code == 0, snoozed.output
    assert f"task {task_id} (executive_call for cust-001) snoozed until 2099-01-01 00:00:00" in (
        snoozed.stdout
    )
    assert "no open CSM tasks" in hidden.stdout
    assert "snoozed" in shown.stdout and "until 2099-01-01 00:00:00: holiday" in shown.stdout
    assert "no overdue CSM tasks" in overdue.stdout
    assert alerted.exit_code == 0 and "0 overdue task(s) alerted" in alerted.stdout


@pytest.mark.parametrize(
    ("args", "error"),
    [
        (
            ["1", "--until", "2020-01-01"],
            "error: --until: 2020-01-01 00:00 UTC is not in the future",
        ),
        (["1", "--until", "next week"], "error: --until: 'next week' is not a date"),
        (["99", "--until", "2099-01-01"], "error: no CSM task 99"),
        (["1", "--until", "2099-01-01"], "error: task 1 is done"),
    ],
)
def test_a_bad_snooze_is_one_error_line(
    cli_engine: Engine, tmp_path: Path, args: list[str], error: str
) -> None:
    ask(cli_engine, tmp_path / "outbox")
    if error.endswith("is done"):
        complete_task(cli_engine, 1, "csm-jordan", None)

    result = runner.invoke(starter.app, ["tasks", "snooze", *args, "--reason", "holiday"])

    assert result.exit_code == 2
    assert result.stderr.startswith(error) and len(result.stderr.strip().splitlines()) == 1
