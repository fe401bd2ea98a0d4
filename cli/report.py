"""`report`: retention KPIs against their targets, lift over the holdout, HTML and JSON;
`simulate`: a generated portfolio with a known treatment effect, to check the lift against."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from cli.app import app, console, current_rulebook, database, friendly, validated
from retention.errors import InvalidInput

if TYPE_CHECKING:
    from retention.analytics.report import Report
    from retention.analytics.simulation import SimulationResult

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
    """KPIs over a period from the database, each beside its target; lift with its interval."""
    # matplotlib and the store load here: most commands never need them.
    from retention.analytics.period import Period
    from retention.analytics.reader import read_period
    from retention.analytics.report import build_report, write_report

    if to_day < from_day:
        raise InvalidInput(f"--to: {to_day:%Y-%m-%d} is before --from {from_day:%Y-%m-%d}")
    period = Period.from_days(from_day.date(), to_day.date())
    rulebook = current_rulebook()
    with database() as engine:
        records = read_period(engine, period, rulebook.strategy_order)
    built = build_report(records, rulebook.kpis, rulebook.version, datetime.now(UTC))
    write_report(built, html, json)
    console.print(summary_table(built))
    for lift in built.lift:
        console.print(f"lift, {lift.scope}: {lift.verdict}", soft_wrap=True)
    for path in (html, json):
        if path is not None:
            console.print(f"wrote {path}")


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


@app.command()
@friendly
def simulate(
    customers: Annotated[int, typer.Option(help="Generated customers (1 to 200,000).")],
    days: Annotated[int, typer.Option(help="How long the journeys run (1 to 180).")] = 90,
    seed: Annotated[int, typer.Option(help="The same seed gives the same portfolio.")] = 1,
    database_file: Annotated[
        Path,
        typer.Option("--database", help="A new SQLite file to write the simulated portfolio to."),
    ] = Path("var/simulation.db"),
    html: Annotated[Path | None, typer.Option(help="Write its HTML report here.")] = None,
    json: Annotated[Path | None, typer.Option(help="Write its JSON report here.")] = None,
) -> None:
    """A generated portfolio with a known response to treatment, through the rules and into a
    database; the lift the report measures beside the truth."""
    from rich.progress import Progress

    from retention.analytics.report import write_report
    from retention.analytics.simulation import SimulationRequest
    from retention.analytics.simulation import simulate as run_simulation
    from retention.model.scorer import load_scorer
    from retention.settings import get_settings
    from retention.store.db import make_engine

    request = validated(SimulationRequest, customers=customers, days=days, seed=seed)
    if database_file.exists():
        raise InvalidInput(f"--database: {database_file} exists; remove it or name a new file")
    rulebook = current_rulebook()
    scorer = load_scorer(get_settings().model_dir)  # the churn model the worker scores with
    engine = make_engine(f"sqlite:///{database_file.resolve()}")
    try:
        with Progress(console=console, transient=True) as progress:
            task = progress.add_task("simulating", total=customers)
            result = run_simulation(
                engine, rulebook, request, scorer,
                progress=lambda done: progress.update(task, completed=done),
            )  # fmt: skip
    finally:
        engine.dispose()
    write_report(result.report, html, json)
    console.print(_lift_table(result))
    console.print(f"{result.journeys} journeys, {result.held_out} held out; in {database_file}")


def _lift_table(result: SimulationResult) -> Table:
    table = Table(title="Lift over the holdout: measured against the simulation's truth")
    for column in ("scope", "true lift", "measured", "95 % interval", "truth inside"):
        table.add_column(column, justify="left" if column == "scope" else "right")
    for lift in result.lifts:
        m = lift.measured
        interval = "-" if m.low is None or m.high is None else f"{m.low:+.1%} to {m.high:+.1%}"
        measured = "-" if m.difference is None else f"{m.difference:+.1%}"
        inside = {True: "[green]yes", False: "[red]no", None: "-"}[lift.covered]
        table.add_row(lift.scope, f"{lift.true_lift:+.1%}", measured, interval, inside)
    return table
