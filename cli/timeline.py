"""`timeline`: one customer's account history from the database, newest first."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from cli.app import app, console, database, friendly, when
from retention.errors import CustomerNotFound, InvalidInput

if TYPE_CHECKING:
    from retention.analytics.timeline import EntryKind, Timeline

_LIMIT_MAX = 10_000


@app.command()
@friendly
def timeline(
    customer_id: Annotated[str, typer.Argument(help="The customer.")],
    limit: Annotated[
        int, typer.Option(help=f"Show the newest this many entries (1 to {_LIMIT_MAX:,}).")
    ] = 200,
    as_json: Annotated[bool, typer.Option("--json", help="Print the timeline as JSON.")] = False,
) -> None:
    """Scores, journeys, messages, CSM tasks, webhooks and audit entries, newest first."""
    from retention.analytics.reader import read_timeline
    from retention.analytics.timeline import build_timeline

    if not 1 <= limit <= _LIMIT_MAX:
        raise InvalidInput(f"--limit: {limit} is not between 1 and {_LIMIT_MAX:,}")
    with database() as engine:
        records = read_timeline(engine, customer_id, limit)
    try:
        built = build_timeline(records, limit)
    except CustomerNotFound as exc:
        raise InvalidInput(str(exc)) from exc  # a customer id mistyped: bad input (exit 2)
    if as_json:
        typer.echo(built.model_dump_json(indent=2))
        return
    console.print(_table(built))
    if built.left_out:
        console.print(f"left out (past --limit {limit}): {_counts(built.left_out)}", soft_wrap=True)


def _table(built: Timeline) -> Table:
    name = f"{built.company} ({built.customer_id})" if built.company else built.customer_id
    table = Table(title=f"timeline of {name}: {len(built.entries)} entries", title_justify="left")
    for column in ("at (UTC)", "what", "journey", "detail"):
        table.add_column(column, overflow="fold")
    for entry in built.entries:
        table.add_row(when(entry.at), entry.kind, entry.journey_id or "-", entry.summary())
    return table


def _counts(counts: dict[EntryKind, int]) -> str:
    return ", ".join(f"{n:,} {kind}" for kind, n in counts.items())
