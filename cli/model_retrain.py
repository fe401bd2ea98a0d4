"""`model import-history|retrain|history`: retraining from the database without surprises."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich import box
from rich.table import Table

from cli.app import console, database, friendly, when, with_client
from cli.model import model_app
from retention.errors import RetentionError
from retention.runtime.settings import get_settings

if TYPE_CHECKING:
    from temporalio.client import Client

    from retention.retraining import RetrainDecision
    from retention.store.tables import ModelVersionRow


@model_app.command("import-history")
@friendly
def model_import_history(
    data: Annotated[Path, typer.Argument(help="A training file: .csv or .parquet.")],
) -> None:
    """Store labelled customer snapshots (a training file: docs/model.md, Training data) in the
    database, with their snapshot and churn dates, for `model train --from-database` and the
    model-retrain schedule. Read whole or not at all."""
    from retention.model.history import labelled_history, save_history
    from retention.model.training_data import read_training_file

    training_set = read_training_file(data)
    with database() as engine:
        saved = save_history(engine, training_set)
        history = labelled_history(engine)
    console.print(f"stored {saved} customers from {data}; database: {history.describe()}")


@model_app.command("retrain")
@friendly
def model_retrain(
    now: Annotated[
        bool, typer.Option("--now", help="Run a retrain now and print its decision.")
    ] = False,
    seed: Annotated[int, typer.Option("--seed", help="Splits and trees follow it.")] = 1,
) -> None:
    """Without --now: the model-retrain schedule. With --now: train a challenger from the
    database, judge it beside the champion and print the decision (the worker does the work)."""
    if now:
        _print_decision(with_client(lambda client: _retrain_now(client, seed)))
    else:
        console.print(with_client(_describe_schedule), soft_wrap=True)


async def _retrain_now(client: Client, seed: int) -> RetrainDecision:
    from temporalio.client import WorkflowFailureError

    from retention.retraining import (
        RETRAIN_WORKFLOW_TYPE,
        RetrainDecision,
        RetrainRequest,
        manual_retrain_id,
    )

    settings = get_settings()
    queue = settings.task_queue
    with console.status(f"retraining: a worker on {queue} trains, cross-validates and judges"):
        try:
            return await client.execute_workflow(
                RETRAIN_WORKFLOW_TYPE,
                RetrainRequest(seed=seed, heavy_task_queue=settings.heavy_task_queue),
                id=manual_retrain_id(datetime.now(UTC)),
                task_queue=queue,
                result_type=RetrainDecision,
            )
        except WorkflowFailureError as exc:
            cause: BaseException = exc
            while cause.__cause__ is not None:  # the activity's own message, e.g. too few rows
                cause = cause.__cause__
            raise RetentionError(f"retrain failed: {cause}") from exc


async def _describe_schedule(client: Client) -> str:
    from temporalio.service import RPCError, RPCStatusCode

    from retention.retraining import SCHEDULE_ID

    try:
        described = await client.get_schedule_handle(SCHEDULE_ID).describe()
    except RPCError as exc:
        if exc.status == RPCStatusCode.NOT_FOUND:
            return (
                f"no {SCHEDULE_ID} schedule (RETENTION_MODEL_RETRAIN_EVERY off, or no worker yet)"
            )
        raise
    every = ", ".join(str(i.every) for i in described.schedule.spec.intervals) or "-"
    upcoming = described.info.next_action_times[:1]
    return f"{SCHEDULE_ID}: every {every}; next run {when(upcoming[0] if upcoming else None)}"


def _print_decision(decision: RetrainDecision) -> None:
    colour = "green" if decision.decision == "promoted" else "yellow"
    console.print(
        f"[{colour}]{decision.decision}[/]: challenger {decision.version} vs champion "
        f"{decision.champion_version} on {decision.holdout_rows} held-out customers: "
        f"{decision.reason}",
        soft_wrap=True,
    )


@model_app.command("history")
@friendly
def model_history(
    as_json: Annotated[bool, typer.Option("--json", help="Every decision as JSON.")] = False,
) -> None:
    """Every retrain: challenger and champion, their held-out figures, the decision and why."""
    from retention.store.model_versions import model_decisions

    with database() as engine:
        rows = model_decisions(engine)
    if as_json:
        typer.echo(json.dumps([_as_json(row) for row in rows], indent=2))
        return
    console.print(_history_table(rows))
    for row in rows:
        console.print(f"{row.version}: {row.reason}", soft_wrap=True)
    console.print(f"workers score with {_champion()}", soft_wrap=True)


def _champion() -> str:
    from retention.model.retrain import current_champion

    with database() as engine:
        champion = current_champion(engine, get_settings().model_dir)
    return f"{champion.version} ({champion.path or 'built in'})"


def _as_json(row: ModelVersionRow) -> dict[str, Any]:
    return row.model_dump(mode="json", exclude={"id"})


def _history_table(rows: list[ModelVersionRow]) -> Table:
    """One line per retrain; the reasons follow the table (they are sentences)."""
    table = Table(
        title=f"model versions · {len(rows)} retrains",
        caption="AUC, ECE: the challenger's, then the champion's, on the same held-out customers",
        box=box.SIMPLE,
        pad_edge=False,
    )
    for name in ("at", "challenger", "champion", "held", "AUC", "ECE", "decision"):
        table.add_column(name, no_wrap=True, min_width=8 if name in ("AUC", "ECE") else None,
                         justify="right" if name == "held" else "left")  # fmt: skip
    for row in rows:
        ours, theirs = row.figures, row.champion_figures
        table.add_row(
            f"{row.at:%Y-%m-%d}\n{row.at:%H:%M:%S}",
            row.version,
            row.champion_version,
            str(row.holdout_rows),
            f"{ours['roc_auc']:.3f}\nvs {theirs['roc_auc']:.3f}",
            f"{ours['calibration_error']:.3f}\nvs {theirs['calibration_error']:.3f}",
            f"[{'green' if row.decision == 'promoted' else 'yellow'}]{row.decision}[/]",
        )
    return table
