"""`timeline`: one customer's account history from the database and their journeys' Temporal
histories, newest first."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from cli.app import app, console, database, friendly, when, with_client
from retention.errors import (
    CustomerNotFound,
    InvalidInput,
    JourneyOperationError,
    TemporalUnreachable,
)

if TYPE_CHECKING:
    from retention.analytics.timeline import EntryKind, Timeline, TimelineRecords
    from retention.runtime.history import JourneyHistories

_LIMIT_MAX = 10_000
NOT_SHOWN = (
    "not shown: commands given outside starter.py (Temporal UI, the temporal CLI, programs) and "
    "events other programs sent"
)


@app.command()
@friendly
def timeline(
    customer_id: Annotated[str, typer.Argument(help="The customer.")],
    limit: Annotated[
        int, typer.Option(help=f"Show the newest this many entries (1 to {_LIMIT_MAX:,}).")
    ] = 200,
    as_json: Annotated[bool, typer.Option("--json", help="Print the timeline as JSON.")] = False,
) -> None:
    """Scores, journeys, messages, CSM tasks, events, commands and audit entries, newest first."""
    from retention.analytics.reader import read_timeline
    from retention.analytics.timeline import build_timeline

    if not 1 <= limit <= _LIMIT_MAX:
        raise InvalidInput(f"--limit: {limit} is not between 1 and {_LIMIT_MAX:,}")
    with database() as engine:
        records = read_timeline(engine, customer_id, limit)
    heard, notes = _histories(records)
    try:
        built = build_timeline(records, limit, heard, notes)
    except CustomerNotFound as exc:
        raise InvalidInput(str(exc)) from exc  # a customer id mistyped: bad input (exit 2)
    if as_json:
        typer.echo(built.model_dump_json(indent=2))
        return
    console.print(_table(built))
    if built.left_out:
        console.print(f"left out (past --limit {limit}): {_counts(built.left_out)}", soft_wrap=True)
    for note in built.history_notes:
        console.print(note, soft_wrap=True)


def _histories(records: TimelineRecords) -> tuple[JourneyHistories | None, list[str]]:
    """What the customer's journeys' histories hold; None and one line why when Temporal could
    not be reached (the database's part is printed all the same)."""
    from retention.runtime.history import JourneyRef, read_histories

    newest_first = sorted(records.journeys, key=lambda row: row.started_at, reverse=True)
    journeys = list(
        dict.fromkeys(JourneyRef.of(r.workflow_id, r.journey_key) for r in newest_first)
    )
    if not journeys:
        return None, []  # no journey, so no history holds anything of this customer
    try:
        return with_client(lambda client: read_histories(client, journeys)), []
    except TemporalUnreachable as exc:
        return None, [f"{NOT_SHOWN}, because Temporal could not be reached: {exc}"]
    except (JourneyOperationError, InvalidInput) as exc:  # refused, or a bad address setting
        return None, [f"{NOT_SHOWN}, because Temporal's histories could not be read: {exc}"]


def _table(built: Timeline) -> Table:
    name = f"{built.company} ({built.customer_id})" if built.company else built.customer_id
    table = Table(title=f"timeline of {name}: {len(built.entries)} entries", title_justify="left")
    for column in ("at (UTC)", "what", "journey", "detail", "from"):
        table.add_column(column, overflow="fold")
    for entry in built.entries:
        table.add_row(
            when(entry.at), entry.kind, entry.journey_id or "-", entry.summary(), entry.source
        )
    return table


def _counts(counts: dict[EntryKind, int]) -> str:
    return ", ".join(f"{n:,} {kind}" for kind, n in counts.items())
