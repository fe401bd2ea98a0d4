"""`tasks list|complete|snooze|alert-overdue|crm-retry` (the CSM's work from journeys) and
`in-app` (a customer's in-app messages). Completing a task tells the customer's running
journey: a `task_completed` event."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table
from rich.text import Text

from cli.app import app, console, database, fail, friendly, operator_name, when, with_client
from retention.errors import InvalidInput
from retention.runtime.operations import JourneyOperationError, send_event

if TYPE_CHECKING:
    from sqlalchemy import Engine

    from retention.store.csm_tasks import TaskStatus
    from retention.store.tables import CsmTaskRow

tasks_app = typer.Typer(
    help="CSM tasks from journeys: list, snooze and complete them; alert overdue ones.",
    no_args_is_help=True,
)
app.add_typer(tasks_app, name="tasks")


@tasks_app.command("list")
@friendly
def tasks_list(
    customer: Annotated[
        str | None, typer.Option("--customer", help="Only this customer's.")
    ] = None,
    csm: Annotated[
        str | None, typer.Option(help="Only this CSM's (`unassigned`: customers without one).")
    ] = None,
    status: Annotated[str, typer.Option(help="open (not snoozed), snoozed, done or all.")] = "open",
    overdue: Annotated[
        bool, typer.Option("--overdue", help="Only open tasks past their due time (any --status).")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the tasks as JSON.")] = False,
) -> None:
    """List CSM tasks (executive calls, check-ins, trainings, reviews), earliest due first."""
    from retention.store.csm_tasks import list_tasks

    with database() as engine:
        rows = list_tasks(
            engine, customer_id=customer, csm=csm, status=_status(status), overdue=overdue
        )
    if as_json:
        typer.echo(json.dumps([row.model_dump(mode="json") for row in rows], indent=2))
    elif not rows:
        shown = "overdue" if overdue else "" if status == "all" else status
        console.print(f"no {shown + ' ' if shown else ''}CSM tasks")
    else:
        console.print(_tasks_table(rows))


@tasks_app.command("snooze")
@friendly
def tasks_snooze(
    task_id: Annotated[int, typer.Argument(help="The task's number (see `tasks list`).")],
    until: Annotated[
        str, typer.Option(help="Until when, UTC: 2026-12-20 (its start) or 2026-12-20T09:00.")
    ],
    reason: Annotated[str, typer.Option(help="Why it waits, e.g. 'customer on holiday'.")],
) -> None:
    """Hold a task until a moment: it leaves the open list, a journey asking for it again
    updates it without waking it, and it is open again afterwards."""
    from retention.store.csm_tasks import TaskNotFound, snooze_task

    with database() as engine:
        try:
            task = snooze_task(engine, task_id, _moment("--until", until), reason)
        except TaskNotFound as exc:  # a wrong number is bad input here: exit 2
            raise InvalidInput(str(exc)) from exc
    console.print(
        f"task {task_id} ({task.action} for {task.customer_id}) snoozed until "
        f"{when(task.snoozed_until)} UTC: {task.snooze_reason}"
    )


@tasks_app.command("alert-overdue")
@friendly
def tasks_alert_overdue() -> None:
    """Alert each open task past its due time, once (an internal message in the outbox, and in
    Slack when alerts are on), and post Slack alerts left unsent; run it as often as you like,
    e.g. from cron."""
    from retention.delivery.alerting import alert_poster_from
    from retention.delivery.overdue import alert_overdue
    from retention.runtime.settings import get_settings

    settings = get_settings()
    with database() as engine:
        alerts = alert_poster_from(settings, engine)
        alerted = alert_overdue(engine, settings.outbox_dir, alerts=alerts)
    for task in alerted:
        console.print(f"task {task.id} ({task.action} for {task.customer_id}) overdue: alerted")
    console.print(f"{len(alerted)} overdue task(s) alerted")


@tasks_app.command("crm-retry")
@friendly
def tasks_crm_retry(
    task_id: Annotated[
        int | None, typer.Argument(help="The task's number; none: every failed one.")
    ] = None,
) -> None:
    """Push tasks the CRM refused again (after fixing a token or the customer's CRM id): they
    are due at the next `crm-sync` run."""
    from retention.store.crm_tasks import retry_failed

    with database() as engine:
        again = retry_failed(engine, task_id)
    if task_id is not None and not again:
        raise InvalidInput(f"task {task_id}: no failed CRM push to retry")
    console.print(f"{again} task(s) due a CRM push again")


@tasks_app.command("complete")
@friendly
def tasks_complete(
    task_id: Annotated[int, typer.Argument(help="The task's number (see `tasks list`).")],
    by: Annotated[str | None, typer.Option(help="Who did it (default: your user name).")] = None,
    note: Annotated[str | None, typer.Option(help="What came of it.")] = None,
) -> None:
    """Mark a task done and tell the customer's running journey (a task_completed event)."""
    from retention.store.csm_tasks import complete_task

    who = operator_name(by, "completed the task")
    with database() as engine:
        done = complete_task(engine, task_id, who, note)
        task = done.task
        if not done.completed_now and task.event_sent_at is not None:
            fail(f"task {task_id} was already done: {_completed(task)}")
        if done.completed_now:
            console.print(f"task {task_id} ({task.action} for {task.customer_id}) done by {who}")
            _close_in_crm(engine, task)
        else:  # done before, but its journey never heard: tell it now
            console.print(f"task {task_id} was already done: {_completed(task)}")
        _tell_journey(engine, task)


@app.command("in-app")
@friendly
def in_app(customer_id: Annotated[str, typer.Argument(help="The customer.")]) -> None:
    """A customer's in-app messages from their journeys, newest first."""
    from retention.store.in_app import in_app_messages

    with database() as engine:
        rows = in_app_messages(engine, customer_id)
    if not rows:
        console.print(f"no in-app messages for {customer_id}")
        return
    table = Table(title=f"in-app messages for {customer_id} ({len(rows)})", title_justify="left")
    for column in ("at (UTC)", "step", "subject", "status", "journey"):
        table.add_column(column)
    for row in rows:
        table.add_row(when(row.created_at), row.step_id, row.subject, row.status, row.journey_id)
    console.print(table)


def _close_in_crm(engine: Engine, task: CsmTaskRow) -> None:
    """Close the task in the CRM now; when that fails the `crm-sync` schedule tries again."""
    from retention.crm.sync import sync_from
    from retention.runtime.settings import get_settings
    from retention.store.tables import utcnow

    sync = sync_from(engine, get_settings())
    if sync is None or task.crm_status is None or task.id is None:
        return
    pushed = sync.push(task.id, utcnow())
    if pushed is None or pushed.status == "pending":
        console.print(f"{sync.crm.name} task not closed yet: the crm-sync schedule will retry")
    elif pushed.status == "failed":
        console.print(f"{sync.crm.name} refused to close the task: {pushed.error}", soft_wrap=True)
    else:
        console.print(f"{sync.crm.name} task {pushed.crm_id} closed")


def _tell_journey(engine: Engine, task: CsmTaskRow) -> None:
    """Send task_completed to the customer's running journey; the task stays done either way."""
    from retention.store.csm_tasks import completed_event, note_event_sent

    assert task.id is not None
    event = completed_event(task)
    try:
        with_client(lambda client: send_event(client, task.customer_id, event))
    except JourneyOperationError as exc:
        console.print(f"task_completed event not delivered: {exc}", soft_wrap=True)
        return
    note_event_sent(engine, task.id)
    console.print(f"task_completed event sent to the journey of {task.customer_id}")


def _tasks_table(rows: list[CsmTaskRow]) -> Table:
    from retention.store.csm_tasks import is_snoozed

    table = Table(title=f"CSM tasks ({len(rows)})", title_justify="left")
    columns = (
        "id",
        "customer",
        "action",
        "CSM",
        "due (UTC)",
        "status",
        "done / snoozed",
        "summary",
        "CRM",
    )
    for column in columns:
        table.add_column(column, justify="right" if column == "id" else "left")
    for row in rows:
        snoozed = is_snoozed(row)
        table.add_row(
            str(row.id),
            row.customer_id,
            row.action,
            row.assigned_csm or "unassigned",
            when(row.due_at),
            Text(
                "snoozed" if snoozed else row.status,
                style="green" if row.status == "done" else "",
            ),
            _completed(row) if row.status == "done" else _snooze(row) if snoozed else "-",
            row.summary,
            _crm_state(row),
        )
    return table


def _crm_state(task: CsmTaskRow) -> Text:
    """Where the task stands in the CRM (docs/crm.md): a refusal is shown with its reason."""
    if task.crm_status is None:
        return Text("-")
    if task.crm_status == "failed":
        return Text(f"failed: {task.crm_error}", style="red")
    if task.crm_status == "pending":
        wait = f", retry at {when(task.crm_retry_at)}" if task.crm_retry_at else ""
        error = f": {task.crm_error}" if task.crm_error else ""
        return Text(f"pending (attempt {task.crm_attempts}{wait}){error}", style="yellow")
    return Text(f"{task.crm_provider} {task.crm_url or task.crm_id}")


def _completed(task: CsmTaskRow) -> str:
    note = f": {task.note}" if task.note else ""
    return f"by {task.completed_by} at {when(task.completed_at)}{note}"


def _snooze(task: CsmTaskRow) -> str:
    return f"until {when(task.snoozed_until)}: {task.snooze_reason}"


def _status(value: str) -> TaskStatus:
    from retention.store.csm_tasks import TASK_STATUSES

    if value not in TASK_STATUSES:
        raise InvalidInput(f"--status: {value!r} is not one of {', '.join(TASK_STATUSES)}")
    return value  # type: ignore[return-value]


def _moment(option: str, value: str) -> datetime:
    """An ISO date or date and time; without an offset, UTC."""
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise InvalidInput(
            f"{option}: {value!r} is not a date (2026-12-20) or date and time (2026-12-20T09:00)"
        ) from None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment
