"""`model generate|train|evaluate`: the churn model on generated data or your own history."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from cli.app import (
    app,
    console,
    current_rulebook,
    database,
    friendly,
)
from retention.errors import InvalidInput

if TYPE_CHECKING:
    import pandas as pd

    from retention.model.quality import ModelFigures

model_app = typer.Typer(
    help="The churn model: generate data, train, evaluate.", no_args_is_help=True
)
app.add_typer(model_app, name="model")


@model_app.command("generate")
@friendly
def model_generate(
    customers: Annotated[int, typer.Option("--customers", min=1, help="How many customers.")],
    out: Annotated[
        Path, typer.Option("--out", help="The training file to write: .csv or .parquet.")
    ],
    seed: Annotated[int, typer.Option("--seed", help="The same seed, the same customers.")] = 1,
) -> None:
    """Generate customers with their churn outcome (retention/model/generator.py) as a training
    file in the documented schema (docs/model.md, Training data)."""
    from rich.progress import Progress

    from retention.model.generator import HORIZON_DAYS, generate_population
    from retention.model.training_data import write_training_file

    if out.suffix.lower() not in (".csv", ".parquet"):
        raise InvalidInput(f"--out: {out}: name a .csv or .parquet file")
    with Progress(console=console, transient=True) as progress:
        task = progress.add_task("generating", total=customers)
        population = generate_population(
            customers, seed, progress=lambda done: progress.update(task, completed=done)
        )
        progress.add_task(f"writing {out}", total=None)
        out.parent.mkdir(parents=True, exist_ok=True)
        write_training_file(population, out)
    console.print(
        f"wrote {len(population)} rows to {out} · seed {seed} · "
        f"churn rate {population.churn_rate:.1%} within {HORIZON_DAYS} days",
        soft_wrap=True,
    )


@model_app.command("train")
@friendly
def model_train(
    out: Annotated[Path, typer.Option("--out", help="Folder for the model and its card.")],
    data: Annotated[
        Path | None, typer.Option("--data", help="Training file: .csv or .parquet.")
    ] = None,
    from_database: Annotated[
        bool,
        typer.Option("--from-database", help="The labelled customers in the database instead."),
    ] = False,
    spec: Annotated[
        Path | None,
        typer.Option("--spec", help="Feature spec YAML for your own columns (default: seed)."),
    ] = None,
    seed: Annotated[int, typer.Option("--seed", help="Splits and trees follow it.")] = 1,
) -> None:
    """Train the churn model and its time-to-churn model; write them with a model card whose
    figures are cross-validated beside a logistic baseline on the same folds."""
    from retention.model.card import build_card
    from retention.model.labelled_file import file_sha256, labelled_table
    from retention.model.persist import save_model
    from retention.model.quality import false_positive_target
    from retention.model.spec import SEED_SPEC, load_feature_spec
    from retention.model.train import train_churn_model

    if (data is None) != from_database:
        raise InvalidInput("name the training data: --data FILE or --from-database")
    if from_database and spec:
        raise InvalidInput("--spec: the database's customers give the seed features only")
    with console.status(f"reading {data or 'the database'}") as status:
        rulebook = current_rulebook()
        if data is None:
            table, features = _database_table(), SEED_SPEC
        else:
            table, features = labelled_table(
                data, load_feature_spec(spec) if spec else None, rulebook
            )
        status.update(f"training on {len(table)} rows")
        target = false_positive_target(rulebook)
        model = train_churn_model(
            table, features, seed=seed, source=str(data or "database"), false_positives=target
        )
        card = build_card(
            model,
            table,
            seed=seed,
            data_hash=file_sha256(data) if data else None,
            progress=lambda step: status.update(f"cross-validating: {step}"),
            false_positives=target,
        )
        save_model(model, card, out)
    columns = [
        ("model (cross-validated)", card.figures),
        (f"{card.baseline} (same folds)", card.baseline_figures),
    ]
    console.print(_card_table(card.model_version, card.rows, columns))
    console.print(f"threshold: {card.threshold_rule}", soft_wrap=True)
    console.print(f"drivers: {card.contributions}, for {card.drivers_for}", soft_wrap=True)
    console.print(f"model {card.model_version} written to {out}", soft_wrap=True)


@model_app.command("evaluate")
@friendly
def model_evaluate(
    data: Annotated[Path, typer.Option("--data", help="Labelled file: .csv or .parquet.")],
    model_dir: Annotated[Path, typer.Option("--model", help="A folder `model train` wrote.")],
    baseline: Annotated[
        str | None,
        typer.Option("--baseline", help="`logistic`: also cross-validate both on these rows."),
    ] = None,
    seed: Annotated[int, typer.Option("--seed", help="Folds for --baseline follow it.")] = 1,
    as_json: Annotated[bool, typer.Option("--json", help="Print the figures as JSON.")] = False,
) -> None:
    """The model's figures on any labelled data, e.g. your own history."""
    from retention.model.evaluate import (
        compare_with_logistic,
        cross_validate,
        evaluate,
        make_folds,
    )
    from retention.model.labelled_file import labelled_table
    from retention.model.persist import load_model
    from retention.model.quality import false_positive_target, mean_figures

    if baseline not in (None, "logistic"):
        raise InvalidInput(f"--baseline: {baseline!r}; the baseline on offer is logistic")
    model, card = load_model(model_dir)
    rulebook = current_rulebook()
    table, features = labelled_table(data, model.spec, rulebook)
    columns = [(f"model {card.model_version}", evaluate(model, table, features, str(data)))]
    if baseline:
        target = false_positive_target(rulebook)
        folds = make_folds(table, features, seed)
        ours = cross_validate(table, features, folds, seed, false_positives=target)
        theirs = compare_with_logistic(table, features, folds, seed, target)
        columns += [
            ("XGBoost recipe, k-fold", mean_figures(ours)),
            ("logistic, same folds", mean_figures(theirs)),
        ]
    if as_json:
        typer.echo(json.dumps({name: f.model_dump() for name, f in columns}, indent=2))
        return
    console.print(_card_table(card.model_version, len(table), columns))


def _database_table() -> pd.DataFrame:
    """The labelled customers in the database (docs/model.md, Training data), counted on screen."""
    from retention.model.history import history_table, labelled_history

    with database() as engine:
        history = labelled_history(engine)
    console.print(f"database: {history.describe()}", soft_wrap=True)
    return history_table(history, current_rulebook())


def _card_table(version: str, rows: int, columns: list[tuple[str, ModelFigures]]) -> Table:
    """Figures side by side; accuracy always beside the majority class's accuracy."""
    table = Table(title=f"model {version} · {rows} rows")
    table.add_column("figure")
    for name, _ in columns:
        table.add_column(name, justify="right")
    for label, read in (
        ("base churn rate", lambda f: f"{f.base_rate:.3f}"),
        ("ROC AUC", lambda f: f"{f.roc_auc:.3f}"),
        ("PR AUC", lambda f: f"{f.pr_auc:.3f}"),
        ("accuracy", lambda f: f"{f.accuracy:.3f}"),
        ("majority-class accuracy", lambda f: f"{f.majority_accuracy:.3f}"),
        ("threshold", lambda f: f"{f.threshold:.3f}"),
        ("false-positive rate", lambda f: f"{f.false_positive_rate:.3f}"),
        ("recall (churners flagged)", lambda f: "-" if f.recall is None else f"{f.recall:.3f}"),
        ("calibration error (ECE)", lambda f: f"{f.calibration_error:.3f}"),
        ("early warning, days", lambda f: "-" if f.early_warning_days is None
         else f"{f.early_warning_days:.0f}"),
    ):  # fmt: skip
        table.add_row(label, *[read(figures) for _, figures in columns])
    return table


# ---- customers -------------------------------------------------------------------------------
