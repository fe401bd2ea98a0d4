"""Journeys: start, send events, show, list, pause, resume, cancel, escalate."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.table import Table
from rich.text import Text

from cli.app import (
    app,
    console,
    database,
    fail,
    friendly,
    number,
    operator_name,
    validated,
    when,
    with_client,
)
from cli.customers import customer_in_database
from retention.compact import EVERY_FIELD
from retention.customer import parse_event
from retention.delivery.alerts import journey_url
from retention.errors import InvalidInput, RetentionError
from retention.journey_state import (
    CancelRequest,
    CommandResult,
    EscalateRequest,
    JourneyOptions,
    JourneyState,
    PauseRequest,
    ResumeRequest,
    StepState,
    journey_id,
)
from retention.nesting import TOO_DEEP, json_too_deep
from retention.population import read_customer_json
from retention.runtime.connection import temporal_namespace
from retention.runtime.operations import (
    Command,
    CommandRequest,
    JourneyRow,
    StatusFilter,
    journey_query,
    journey_rows,
    journey_state,
    run_command,
    send_event,
    start_journey,
)
from retention.runtime.settings import get_settings

if TYPE_CHECKING:
    from sqlalchemy import Engine

# The inbox's source for events sent with `starter.py event` (docs/operators.md).
CLI_SOURCE = "cli"


@app.command()
@friendly
def start(
    file: Annotated[
        Path | None,
        typer.Argument(metavar="FILE", help="Customer snapshot JSON (see examples/customers)."),
    ] = None,
    customer_id: Annotated[
        str | None, typer.Option("--customer-id", help="Load the customer from the database.")
    ] = None,
    time_scale: Annotated[
        float | None, typer.Option(help="Journey hours per real hour (demos: 30000).")
    ] = None,
    churn_probability: Annotated[
        float | None, typer.Option(help="An upstream churn probability that wins over ours.")
    ] = None,
) -> None:
    """Start a customer's retention journey (one running journey per customer)."""
    if (file is None) == (customer_id is None):
        raise typer.BadParameter("give a customer FILE or --customer-id (exactly one)")
    options = _journey_options(time_scale=time_scale, upstream_churn_probability=churn_probability)
    snapshot = read_customer_json(file) if file is not None else None
    known = snapshot or customer_in_database(str(customer_id))

    handle = with_client(
        lambda client: start_journey(client, snapshot, customer_id, options, known_customer=known)
    )
    profile = known.profile
    console.print(
        f"started [bold]{handle.id}[/] for {profile.company} ({known.customer_id})"
        f" · time scale {options.time_scale:g}"
    )
    settings = get_settings()
    ui = journey_url(settings.ui_url, temporal_namespace(settings), handle.id)
    console.print(f"  watch: starter.py show {known.customer_id} · UI: {ui}", soft_wrap=True)


def _journey_options(**given: float | None) -> JourneyOptions:
    return validated(JourneyOptions, **given)


# ---- events ----------------------------------------------------------------------------------


@app.command()
@friendly
def event(
    customer_id: Annotated[str, typer.Argument(help="The customer whose journey hears it.")],
    event_type: Annotated[
        str, typer.Argument(metavar="TYPE", help="login, meeting_booked, renewed, churned, ...")
    ],
    data: Annotated[
        str, typer.Option(help='Event data as a JSON object, e.g. {"score": 9}.')
    ] = "{}",
    at: Annotated[str | None, typer.Option(help="When it happened (ISO 8601).")] = None,
) -> None:
    """Send a customer event into the customer's running journey (kept for its timeline)."""
    if json_too_deep(data) is not None:
        raise InvalidInput(f"--data: {TOO_DEEP}")
    try:
        payload = json.loads(data)
    except json.JSONDecodeError as exc:
        raise InvalidInput(f"--data: not valid JSON: {exc}") from exc
    raw: dict[str, Any] = {"type": event_type, "data": payload}
    if at is not None:
        raw["at"] = at
    customer_event = parse_event(raw)
    request_id = str(uuid.uuid4())  # the update's id, and the inbox row's source event id
    receipt = with_client(
        lambda client: send_event(client, customer_id, customer_event, request_id=request_id)
    )
    if not receipt.accepted:
        fail(
            f"{journey_id(customer_id)} heard {customer_event.type} but did not take it: "
            f"{receipt.reason}"
        )
    console.print(f"sent {customer_event.type} to {journey_id(customer_id)}")
    from retention.ingest.inbox import record_sent  # the database, only once it is needed

    _recorded(
        "the event",
        lambda engine: record_sent(engine, CLI_SOURCE, customer_id, customer_event, request_id),
    )


@app.command()
@friendly
def show(
    customer_id: Annotated[str, typer.Argument(help="The customer whose journey to show.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print the state as JSON.")] = False,
) -> None:
    """Show a journey's state: scores, strategy, plan and events (running or closed)."""
    state = with_client(lambda client: journey_state(client, customer_id))
    if as_json:
        typer.echo(state.model_dump_json(indent=2, context={EVERY_FIELD: True}))
        return
    console.print(_overview(state))
    console.print(plan_table(state))
    if any(step.recipients for step in state.steps):
        console.print(recipients_table(state))
    if state.events.received:
        console.print(_event_counts_table(state))
        console.print(_events_table(state))
    else:
        console.print("events: none")


def _overview(s: JourneyState) -> Table:
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold")
    grid.add_column()
    who = s.customer.profile.company if s.customer else "(customer not loaded yet)"
    rows: list[tuple[str, Text | str]] = [
        ("journey", Text(f"{journey_id(s.customer_id)} · {who} ({s.customer_id})")),
        ("stage", _stage_text(s)),
        ("strategy", Text(_strategy_path(s))),
        ("risk tier", Text(f"{s.risk_tier or '-'} · severity {s.severity_tier or '-'}")),
        ("churn", Text(_churn_text(s))),
        ("health", Text(number(s.health_score, "{:.1f}"))),
        ("risk factors", Text(", ".join(f"{f.name} ({f.impact:.2f})" for f in s.risk_factors))),
        ("rules", Text(f"{s.rules_version or '-'} · fired {', '.join(s.fired_rules) or '-'}")),
        ("holdout", Text("yes: steps recorded, nothing sent" if s.holdout else "no")),
        ("offer", Text(_offer_text(s))),
        ("campaigns", Text(_campaigns_text(s))),
        ("outcome", _outcome_text(s)),
        ("started", Text(when(s.started_at) + _finished(s))),
    ]
    for label, value in rows:
        grid.add_row(label, value)
    return grid


def _offer_text(s: JourneyState) -> str:
    o = s.offer
    if o is None:
        return "-"
    return (
        f"{o.type} worth {o.value:,.0f} ({o.percent_of_contract:g}% of contract) for "
        f"{o.duration_months} months, expires in {o.expires_in_days} days · {o.name}"
    )


def _campaigns_text(s: JourneyState) -> str:
    exited = s.campaigns_exited
    return (
        ", ".join(f"{c} (exited: {exited[c]})" if c in exited else c for c in s.campaigns_started)
        or "-"
    )


def _stage_text(s: JourneyState) -> Text:
    text = Text(s.stage, style="yellow" if s.paused else "")
    if s.paused:
        text.append(f" ({s.pause_reason or 'by an operator'})")
    return text


def _strategy_path(s: JourneyState) -> str:
    path = [change.to_strategy for change in s.strategy_history]
    return " → ".join(path) if len(path) > 1 else (s.strategy or "-")


def _churn_text(s: JourneyState) -> str:
    if s.churn_probability is None:
        return "-"
    return (
        f"{s.churn_probability:.2f} (source {s.probability_source or '-'}, "
        f"model {s.model_version or '-'})"
    )


def _outcome_text(s: JourneyState) -> Text:
    if s.outcome is None:
        return Text("running", style="cyan")
    style = (
        "green" if s.outcome in {"saved", "recovered"} else "red" if s.outcome == "churned" else ""
    )
    return Text(f"{s.outcome} — {s.exit_reason or '-'}", style=style)


def _finished(s: JourneyState) -> str:
    return f" · finished {when(s.finished_at)}" if s.finished_at else ""


_STEP_STYLE = {"done": "green", "skipped": "yellow", "pending": ""}


def plan_table(s: JourneyState) -> Table:
    table = Table(title="plan", title_justify="left")
    for column in ("gen", "at", "action", "channel", "owner", "due (UTC)", "status", "sent via"):
        table.add_column(column, no_wrap=True)
    table.add_column("note")
    for step in sorted(s.steps, key=lambda x: (x.generation, x.step.at_hours, x.step.step_id)):
        table.add_row(
            str(step.generation),
            f"+{step.step.at_hours:g}h",
            Text(step.step.action),
            Text(_channel(step)),
            step.step.owner,
            when(step.due_at),
            Text(step.status, style=_STEP_STYLE.get(step.status, "")),
            Text(_sent_via(step)),
            Text(_step_note(step)),
        )
    return table


# A step may reach 50 people: `show` lists this many of each, `--json` all the state holds.
SHOWN_PER_STEP = 10


def recipients_table(s: JourneyState) -> Table:
    """Whom each step reached (or is holding back, or could not reach), addresses masked."""
    table = Table(title="recipients", title_justify="left")
    for column in ("step", "contact", "role", "channel", "address", "status"):
        table.add_column(column, no_wrap=True)
    table.add_column("note")
    for step in s.steps:
        for person in step.recipients[:SHOWN_PER_STEP]:
            status = Text(person.status, style=_RECIPIENT_STYLE.get(person.status, ""))
            table.add_row(
                step.step.step_id,
                Text(person.contact_id),
                person.role,
                person.channel,
                Text(person.address),
                status,
                Text(person.note or ""),
            )
        more = len(step.recipients) - SHOWN_PER_STEP + step.recipients_left_out
        if more > 0:
            table.add_row(step.step.step_id, f"… {more} more", "", "", "", "", _more(step))
    return table


_RECIPIENT_STYLE = {"captured": "green", "sent": "green", "held": "yellow", "held_out": "cyan"}


def _more(step: StepState) -> str:
    if not step.recipients_left_out:
        return "see show --json"
    return f"{step.recipients_left_out} past the per-step cap were not reached"


def _sent_via(step: StepState) -> str:
    """`capture`, or `live: sendgrid <message id>`; `-` until delivered."""
    if step.delivery_mode is None:
        return "-"
    provider = " ".join(p for p in (step.provider, step.provider_message_id) if p)
    return f"{step.delivery_mode}: {provider}" if provider else step.delivery_mode


def _step_note(step: StepState) -> str:
    if step.deferred_until is None:
        return step.note
    held = f"{step.deferred_why} (until {when(step.deferred_until)})"
    return f"{step.note}; {held}" if step.note else held


def _channel(step: StepState) -> str:
    used, planned = step.channel_used, step.step.channel
    if used is None or used == planned:
        return planned
    return f"{used} (planned {planned})"


def _event_counts_table(s: JourneyState) -> Table:
    summary = s.events
    title = f"events: {summary.received:,} heard, {summary.rejected:,} rejected"
    table = Table(title=title, title_justify="left")
    for column in ("type", "accepted", "first (UTC)", "last (UTC)"):
        table.add_column(column)
    for kind, tally in sorted(summary.tallies.items()):
        table.add_row(Text(kind), f"{tally.count:,}", when(tally.first_at), when(tally.last_at))
    return table


def _events_table(s: JourneyState) -> Table:
    table = Table(title=f"latest {len(s.events.recent)} events", title_justify="left")
    for column in ("received (UTC)", "type", "count", "accepted", "data / reason"):
        table.add_column(column)
    for e in s.events.recent:
        detail = e.reason if not e.accepted else json.dumps(e.data) if e.data else ""
        table.add_row(
            when(e.received_at),
            Text(e.type),
            f"{e.count:,}",
            Text("yes", style="green") if e.accepted else Text("rejected", style="red"),
            Text(detail or ""),
        )
    return table


@app.command("list")
@friendly
def list_journeys(
    tier: Annotated[str | None, typer.Option(help="Risk tier, e.g. critical.")] = None,
    strategy: Annotated[str | None, typer.Option(help="e.g. critical_save.")] = None,
    stage: Annotated[str | None, typer.Option(help="e.g. waiting, paused.")] = None,
    status: Annotated[str, typer.Option(help="running, closed or all.")] = "running",
    as_json: Annotated[bool, typer.Option("--json", help="Print the rows as JSON.")] = False,
) -> None:
    """List journeys from their search attributes, highest churn probability first."""
    query = journey_query(tier=tier, strategy=strategy, stage=stage, status=_status(status))
    rows = with_client(lambda client: journey_rows(client, query))
    rows.sort(key=lambda r: -(r.churn_probability if r.churn_probability is not None else -1))
    if as_json:
        typer.echo(json.dumps([row.model_dump(mode="json") for row in rows], indent=2))
    elif not rows:
        console.print(f"no journeys match {query}", soft_wrap=True)
    else:
        console.print(_rows_table(rows))
        console.print(Text(query, style="dim"), soft_wrap=True)


def _status(value: str) -> StatusFilter:
    if value not in ("running", "closed", "all"):
        raise InvalidInput(f"--status: {value!r} is not one of running, closed, all")
    return value  # type: ignore[return-value]


def _rows_table(rows: list[JourneyRow]) -> Table:
    title = f"{len(rows)} journey{'s' * (len(rows) != 1)}"
    table = Table(title=title, title_justify="left")
    for column, justify in (
        ("customer", "left"),
        ("risk tier", "left"),
        ("strategy", "left"),
        ("stage", "left"),
        ("churn p", "right"),
        ("health", "right"),
        ("status", "left"),
    ):
        table.add_column(column, justify=justify)  # type: ignore[arg-type]
    for r in rows:
        table.add_row(
            Text(r.customer_id),
            Text(r.risk_tier or "-", style="red" if r.risk_tier == "critical" else ""),
            Text(r.strategy or "-"),
            Text(r.stage or "-"),
            number(r.churn_probability, "{:.2f}"),
            number(r.health_score, "{:.1f}"),
            r.status,
        )
    return table


# ---- operator commands -----------------------------------------------------------------------


def _command(customer_id: str, name: Command, request: CommandRequest, by: str | None) -> None:
    """Run the command; once the journey accepted it, audit it as the operator's (a refused
    one raises `CommandRejected` and writes nothing)."""
    who = operator_name(by, f"gives the {name} command")
    update_id = str(uuid.uuid4())  # in the journey's history and the audit row: shown once
    result: CommandResult = with_client(
        lambda client: run_command(client, customer_id, name, request, update_id=update_id)
    )
    console.print(
        f"{journey_id(customer_id)}: {result.message} "
        f"(stage {result.stage}, strategy {result.strategy or '-'})",
        soft_wrap=True,
    )
    from retention.store.commands import record_command  # the database, only once it is needed

    _recorded(
        f"the {name} command",
        lambda engine: record_command(
            engine, customer_id, name, who, request, result, update_id=update_id
        ),
    )


def _recorded(what: str, write: Callable[[Engine], object]) -> None:
    """Write what the journey took to the database for the account timeline; the journey has
    it already, so a failure here says so rather than suggest sending it again."""
    try:
        with database() as engine:
            write(engine)
    except RetentionError as exc:  # the database's own errors come as one (cli.app.database)
        fail(f"the journey took {what}, but the database did not record it: {exc}")


By = Annotated[
    str | None,
    typer.Option(
        "--by", help="Who gives the command, for the audit log (default: your user name)."
    ),
]


@app.command()
@friendly
def pause(
    customer_id: str,
    reason: Annotated[str, typer.Option(help="Why (shown in the journey's state).")] = "",
    by: By = None,
) -> None:
    """Pause a journey: no step runs until it is resumed."""
    _command(customer_id, "pause", PauseRequest(reason=reason), by)


@app.command()
@friendly
def resume(customer_id: str, by: By = None) -> None:
    """Resume a paused journey; overdue steps run now."""
    _command(customer_id, "resume", ResumeRequest(), by)


@app.command()
@friendly
def cancel(
    customer_id: str,
    reason: Annotated[str, typer.Option(help="Why the journey is cancelled (required).")],
    by: By = None,
) -> None:
    """Cancel a journey (outcome `cancelled`)."""
    _command(customer_id, "cancel", CancelRequest(reason=reason), by)


@app.command()
@friendly
def escalate(
    customer_id: str,
    reason: Annotated[str, typer.Option(help="Why (recorded in the strategy history).")] = "",
    by: By = None,
) -> None:
    """Re-score now and move the journey to the next more intensive strategy."""
    _command(customer_id, "escalate", EscalateRequest(reason=reason), by)
