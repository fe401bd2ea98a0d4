"""`report`: retention KPIs against their targets, lift over the holdout, HTML and JSON."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from cli.app import app, console, current_rulebook, database, friendly
from retention.errors import InvalidInput

if TYPE_CHECKING:
    from retention.analytics.report import Report

_DAY = ["%Y-%m-%d"]
_STATUS = {True: "[green]✓ met", False: "[red]✗ missed", None: "[dim]– not judged"}


@app.command()
@friendly
def report(
    from_day: Annotated[
        datetime, typer.Option("--from", formats=_DAY, help="First day (UTC), YYYY-MM-DD.")
    ],
    to_day: Annotated[
        datetime, typer.Option("--to", formats=_DAY, help="Last day (UTC), inclusive.")
    ],
    html: Annotated[Path | None, typer.Option(help="Write the HTML report here.")] = None,
    json: Annotated[Path | None, typer.Option(help="Write the same figures as JSON here.")] = None,
) -> None:
    """KPIs over a period from the database, each beside its target; lift with its interval.
    With --html, each customer the report names gets a timeline page in timelines/ beside it."""
    # matplotlib and the store load here: most commands never need them.
    from retention.analytics.period import Period
    from retention.analytics.reader import read_period, read_timeline
    from retention.analytics.report import build_report, write_report
    from retention.analytics.timeline import DEFAULT_LIMIT, build_timeline

    if to_day < from_day:
        raise InvalidInput(f"--to: {to_day:%Y-%m-%d} is before --from {from_day:%Y-%m-%d}")
    period = Period.from_days(from_day.date(), to_day.date())
    rulebook = current_rulebook()
    with database() as engine:
        records = read_period(engine, period, rulebook.strategy_order)
        built = build_report(records, rulebook.kpis, rulebook.version, datetime.now(UTC))
        named = built.churned_customers if html is not None else []
        timelines = [
            build_timeline(read_timeline(engine, c.customer_id, DEFAULT_LIMIT)) for c in named
        ]
    write_report(built, html, json, timelines)
    console.print(summary_table(built))
    for lift in built.lift:
        console.print(f"lift, {lift.scope}: {lift.verdict}", soft_wrap=True)
    for path in (html, json):
        if path is not None:
            console.print(f"wrote {path}")
    if timelines and html is not None:
        console.print(f"wrote {len(timelines)} timeline pages in {html.parent / 'timelines'}")


def summary_table(built: Report) -> Table:
    from retention.analytics.report import format_target, format_value

    period = built.period
    table = Table(title=f"Retention KPIs {period.start:%Y-%m-%d} to {period.last_day:%Y-%m-%d}")
    for column in ("KPI", "value", "target", "status", "note"):
        table.add_column(column, justify="right" if column in ("value", "target") else "left")
    for k in built.kpis:
        status = _STATUS[k.met] if k.target is not None else ""
        table.add_row(
            k.title, format_value(k.value, k.unit), format_target(k.target, k.unit), status,
            k.reason or "",
        )  # fmt: skip
    return table
