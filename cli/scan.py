"""`scan --now | --history`: the portfolio scan, run now and watched, or its past runs."""

from __future__ import annotations

import asyncio
import json
from typing import TYPE_CHECKING, Annotated

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn
from rich.table import Table
from temporalio.client import Client, WorkflowHandle
from temporalio.service import RPCError

from cli.app import app, console, database, friendly, when, with_client
from retention.errors import InvalidInput
from retention.runtime.settings import get_settings
from retention.scan.requests import ScanResult

if TYPE_CHECKING:
    from retention.store.tables import ScanRunRow

POLL_SECONDS = 1.0
FIGURES = ("scored", "at_risk", "started", "skipped", "failed")


@app.command()
@friendly
def scan(
    now: Annotated[
        bool, typer.Option("--now", help="Run the portfolio scan now and watch it.")
    ] = False,
    history: Annotated[bool, typer.Option("--history", help="List past scans.")] = False,
    limit: Annotated[int, typer.Option("--limit", min=1, help="Scans --history lists.")] = 20,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Score every customer and start journeys for the at-risk ones (the `portfolio-scan`
    schedule, triggered now), or list past scans from the database."""
    if now == history:
        raise InvalidInput("give exactly one of --now or --history")
    if history:
        _print_history(limit, as_json)
        return
    with database() as engine:
        from retention.store.scans import count_customers

        total = count_customers(engine)
    result = with_client(lambda client: _run_now(client, total, quiet=as_json))
    if as_json:
        typer.echo(result.model_dump_json(indent=2))
    else:
        _print_result(result)


async def _run_now(client: Client, total: int, quiet: bool) -> ScanResult:
    from retention.scan.schedule import scan_now

    handle = await scan_now(client, get_settings())
    if not quiet:
        console.print(f"scan {handle.id} running ({total:,} customers in the database)")
    finished = asyncio.ensure_future(handle.result())
    columns = (
        TextColumn("scanning"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[figures]}"),
    )
    with Progress(*columns, console=console, transient=True, disable=quiet) as bar:
        task = bar.add_task("scan", total=total or None, figures="")
        while not finished.done():
            if (seen := await _progress(handle)) is not None:
                figures = ", ".join(f"{name} {getattr(seen, name):,}" for name in FIGURES[1:])
                bar.update(task, completed=seen.scored + seen.failed, figures=figures)
            await asyncio.wait({finished}, timeout=POLL_SECONDS)
    return await finished


async def _progress(handle: WorkflowHandle[object, ScanResult]) -> ScanResult | None:
    """The latest run's figures; None while it cannot answer (e.g. between two runs)."""
    try:
        return await handle.query("progress", result_type=ScanResult)
    except RPCError:
        return None


def _print_result(result: ScanResult) -> None:
    figures = " · ".join(f"{name} {getattr(result, name):,}" for name in FIGURES)
    console.print(
        f"scan {result.scan_id} {result.status}: {figures} "
        f"({result.pages} pages, {result.runs} runs)"
    )
    for failure in result.failures:
        console.print(f"  failed {failure.customer_id}: {failure.reason}", soft_wrap=True)


def _print_history(limit: int, as_json: bool) -> None:
    from retention.store.scans import list_scan_runs

    with database() as engine:
        runs = list_scan_runs(engine, limit)
    if as_json:
        typer.echo(json.dumps([run.model_dump(mode="json") for run in runs], indent=2))
        return
    if not runs:
        console.print("no scans yet: `starter.py scan --now` runs one")
        return
    console.print(_history_table(runs))


def _history_table(runs: list[ScanRunRow]) -> Table:
    table = Table("started", "finished", "status", *FIGURES, "scan")
    for run in runs:
        table.add_row(
            when(run.started_at),
            when(run.finished_at),
            run.status,
            *(f"{getattr(run, name):,}" for name in FIGURES),
            run.id,
        )
    return table
