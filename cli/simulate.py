"""`simulate`: a generated portfolio through the real journeys on a time-skipping server, with
a known response to treatment: the lift the report measures beside the truth."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from cli.app import app, console, current_rulebook, friendly, validated
from retention.errors import InvalidInput

if TYPE_CHECKING:
    from sqlalchemy import Engine

    from retention.analytics.simulation import SimulationRequest, SimulationResult
    from retention.rulebook.loader import Rulebook
    from retention.scoring.assessment import ChurnScorer

TASK_QUEUE = "simulation"


@app.command()
@friendly
def simulate(
    customers: Annotated[int, typer.Option(help="Generated customers (1 to 20,000).")],
    days: Annotated[int, typer.Option(help="How long the journeys run (1 to 180).")] = 90,
    seed: Annotated[int, typer.Option(help="The same seed gives the same portfolio.")] = 1,
    database_file: Annotated[
        Path,
        typer.Option("--database", help="A new SQLite file to write the simulated portfolio to."),
    ] = Path("var/simulation.db"),
    html: Annotated[Path | None, typer.Option(help="Write its HTML report here.")] = None,
    json: Annotated[Path | None, typer.Option(help="Write its JSON report here.")] = None,
) -> None:
    """Generate a portfolio, run every at-risk customer through the real RetentionJourney on a
    time-skipping server (captured delivery, messages under <database>-outbox/), let a known
    response to treatment decide who churns, and print the lift the report measures beside
    the truth."""
    from retention.analytics.report import write_report
    from retention.analytics.simulation import SimulationRequest
    from retention.model.scorer import load_scorer
    from retention.runtime.settings import get_settings
    from retention.store.db import make_engine

    request = validated(SimulationRequest, customers=customers, days=days, seed=seed)
    if database_file.exists():
        raise InvalidInput(f"--database: {database_file} exists; remove it or name a new file")
    rulebook = current_rulebook()
    settings = get_settings()
    scorer = load_scorer(settings.model_dir)  # the churn model the worker scores with
    outbox = database_file.with_name(f"{database_file.stem}-outbox")
    engine = make_engine(f"sqlite:///{database_file.resolve()}")
    columns = (TextColumn("simulated days"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    try:
        with Progress(*columns, console=console, transient=True) as progress:
            task = progress.add_task("days", total=days)
            result = asyncio.run(
                run_simulation(
                    engine, settings.rules_dir, outbox, rulebook, request, scorer,
                    progress=lambda day: progress.update(task, completed=day),
                )
            )  # fmt: skip
    finally:
        engine.dispose()
    write_report(result.report, html, json)
    console.print(_lift_table(result))
    console.print(
        f"{result.at_risk} at-risk customers ({result.held_out} held out), {result.churned} "
        f"churned, {result.journeys} journeys, {result.delivered} actions reached treated "
        f"customers; in {database_file}"
    )
    if result.misread:
        console.print(f"[red]{result.misread} customers' journeys disagree with the truth")


async def run_simulation(
    engine: Engine,
    rules_dir: Path,
    outbox_dir: Path,
    rulebook: Rulebook,
    request: SimulationRequest,
    scorer: ChurnScorer | None,
    progress: Callable[[int], None] | None = None,
) -> SimulationResult:
    """The simulation on a time-skipping server of its own, with a worker in this process
    running every workflow and the real activities on `engine` (capture-only delivery)."""
    from retention.analytics.simulation import simulate as run
    from retention.runtime.devserver import start_time_skipping
    from worker import build_activities, build_scan_activities, running_worker

    env = await start_time_skipping()
    try:
        activities = build_activities(engine, rules_dir, outbox_dir, scorer=scorer)
        activities += build_scan_activities(engine, rules_dir, env.client, TASK_QUEUE, scorer)
        async with running_worker(env.client, activities, TASK_QUEUE, threads=8) as task_queue:
            return await run(env, task_queue, engine, rulebook, request, progress)
    finally:
        await env.shutdown()


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
