"""The upstream/operator CLI: start journeys, send events, watch, list and steer them.

    python starter.py start examples/customers/acme.json --time-scale 30000
    python starter.py event cust-001 meeting_booked
    python starter.py show cust-001
    python starter.py list --tier critical
    python starter.py cancel cust-001 --reason "customer asked for no contact"
    python starter.py suppress cust-001 --channel email --reason "asked by phone"
    python starter.py model generate --customers 100000 --seed 1 --out var/generated.parquet

The Temporal calls themselves live in `retention.operations` (shared with `make run`).
"""

from __future__ import annotations

import asyncio
import functools
import json
import os
import sys
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NoReturn, ParamSpec, TypeVar

import typer
from pydantic import BaseModel, ValidationError
from rich.console import Console
from rich.table import Table
from rich.text import Text
from temporalio.client import Client
from temporalio.exceptions import TemporalError

from retention.customer import CustomerSnapshot, describe_validation_error, parse_event
from retention.errors import CustomerNotFound, InvalidInput, RetentionError
from retention.journey import (
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
from retention.operations import (
    Command,
    CommandRequest,
    JourneyRow,
    StatusFilter,
    journey_query,
    journey_rows,
    journey_state,
    open_client,
    run_command,
    send_event,
    start_journey,
)
from retention.plan import CustomerChannel
from retention.population import read_customer_json, read_customers
from retention.settings import get_settings

if TYPE_CHECKING:
    from sqlalchemy import Engine

    from retention.model.metrics import ModelFigures
    from retention.rulebook.loader import Rulebook
    from retention.rulebook.simulate import CustomerChange, Simulation

app = typer.Typer(
    help="Start, watch and steer customer retention journeys on Temporal.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
customers_app = typer.Typer(help="Customers in the retention database.", no_args_is_help=True)
app.add_typer(customers_app, name="customers")
rules_app = typer.Typer(help="Check and test the rule set (rules/).", no_args_is_help=True)
app.add_typer(rules_app, name="rules")
model_app = typer.Typer(
    help="The churn model: generate data, train, evaluate.", no_args_is_help=True
)
app.add_typer(model_app, name="model")

console = Console(highlight=False)

P = ParamSpec("P")
M = TypeVar("M", bound=BaseModel)
T = TypeVar("T")


@dataclass
class _Options:
    address: str | None = None


_options = _Options()


@app.callback()
def _global_options(
    address: Annotated[
        str | None,
        typer.Option(
            "--address",
            envvar="RETENTION_TEMPORAL_ADDRESS",
            help="Temporal frontend host:port (default 127.0.0.1:7233).",
        ),
    ] = None,
) -> None:
    _options.address = address


# ---- errors: one line on stderr, never a traceback -------------------------------------------


def friendly(command: Callable[P, T]) -> Callable[P, T]:
    """Turn every expected failure into one line on stderr: 2 for bad input, 1 for the rest."""

    @functools.wraps(command)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> T:
        try:
            return command(*args, **kwargs)
        except (typer.TyperException, typer.Exit, typer.Abort):
            raise
        except InvalidInput as exc:
            _fail(str(exc), code=2)
        except RetentionError as exc:
            _fail(str(exc))
        except TemporalError as exc:
            _fail(f"Temporal: {exc}")
        except KeyboardInterrupt:
            _fail("interrupted", code=130)
        except Exception as exc:  # noqa: BLE001 - the CLI's promise: no tracebacks
            _fail(f"unexpected {type(exc).__name__}: {exc}")

    return wrapper


def _fail(message: str, code: int = 1) -> NoReturn:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code)


def _with_client(work: Callable[[Client], Awaitable[T]]) -> T:
    async def main() -> T:
        return await work(await open_client(_options.address))

    return asyncio.run(main())


# ---- start -----------------------------------------------------------------------------------


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
    known = snapshot or _customer_in_database(str(customer_id))

    handle = _with_client(
        lambda client: start_journey(client, snapshot, customer_id, options, known_customer=known)
    )
    profile = known.profile
    console.print(
        f"started [bold]{handle.id}[/] for {profile.company} ({known.customer_id})"
        f" · time scale {options.time_scale:g}"
    )
    console.print(
        f"  watch: starter.py show {known.customer_id} · UI: "
        f"{get_settings().ui_url}/namespaces/{get_settings().temporal_namespace}"
        f"/workflows/{handle.id}",
        soft_wrap=True,
    )


_OPTION_NAMES = {
    "time_scale": "--time-scale",
    "upstream_churn_probability": "--churn-probability",
    "customer_id": "CUSTOMER_ID",
    "channel": "--channel",
    "reason": "--reason",
    "address": "--address",
}


def _journey_options(**given: float | None) -> JourneyOptions:
    return _validated(JourneyOptions, **given)


def _validated(model: type[M], **given: object) -> M:
    """`model` from the command's values (None: the default); a bad one named as typed."""
    try:
        return model(**{k: v for k, v in given.items() if v is not None})
    except ValidationError as exc:
        problems = [
            f"{_OPTION_NAMES.get(str(e['loc'][0]), e['loc'][0])}: {e['msg']}"
            for e in exc.errors()
            if e["loc"]
        ]
        raise InvalidInput("; ".join(problems) or describe_validation_error(exc)) from exc


# ---- rules -----------------------------------------------------------------------------------


def _rules_dir(path: Path | None) -> Path:
    return path or get_settings().rules_dir


@rules_app.command("check")
@friendly
def rules_check(
    path: Annotated[Path | None, typer.Argument(help="Rule set folder (default: rules/).")] = None,
) -> None:
    """Refuse a broken rule set: every problem as file:line:column: message; exit 1 if any."""
    from retention.rulebook.check import check
    from retention.rulebook.loader import load_rulebook

    folder = _rules_dir(path)
    findings = check(folder)
    for finding in findings:
        typer.echo(finding, err=True)
    if findings:
        _fail(f"{len(findings)} problem{'s' * (len(findings) != 1)} in {folder}")
    rulebook = load_rulebook(folder)
    console.print(
        f"{folder}: OK · version {rulebook.version} · {len(rulebook.strategies)} strategies, "
        f"{len(rulebook.severity_tiers)} severity tiers, {len(rulebook.timelines)} timelines, "
        f"{len(rulebook.offers.offers)} offers, {len(rulebook.campaigns)} campaigns, holdout "
        f"{rulebook.journey.holdout.share if rulebook.journey.holdout else 0:.0%}",
        soft_wrap=True,
    )


@rules_app.command("test")
@friendly
def rules_test(
    path: Annotated[Path | None, typer.Argument(help="Rule set folder (default: rules/).")] = None,
) -> None:
    """Run the rule cases in <rules>/tests/*.yaml and report each; exit 1 if any fails."""
    from retention.rulebook.cases import run_cases
    from retention.rulebook.loader import load_rulebook

    folder = _rules_dir(path)
    results = run_cases(load_rulebook(folder), folder / "tests")
    for result in results:
        mark = "[green]PASS[/]" if result.passed else "[red]FAIL[/]"
        console.print(f"{mark} {result.name}  [dim]{result.where}[/]", soft_wrap=True)
        for failure in result.failures:
            console.print(f"     {failure}", soft_wrap=True)
    failed = sum(not r.passed for r in results)
    console.print(f"{len(results) - failed} passed, {failed} failed")
    if failed:
        raise typer.Exit(1)


@rules_app.command("simulate")
@friendly
def rules_simulate(
    against: Annotated[
        str, typer.Option("--against", help="The other rule set: a folder or a git ref (main).")
    ],
    path: Annotated[Path | None, typer.Argument(help="Rule set folder (default: rules/).")] = None,
    customers: Annotated[
        Path,
        typer.Option(help="A folder of customer JSON files, one JSON file or a .csv population."),
    ] = Path("examples/customers"),
    from_database: Annotated[
        bool, typer.Option("--from-database", help="Every customer in the database instead.")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
) -> None:
    """Decide a population under the other rule set and this one: who moves where (scored by the
    churn model in RETENTION_MODEL_DIR, as the worker scores)."""
    import tempfile

    from retention.model.scorer import load_scorer
    from retention.rulebook.loader import load_rulebook
    from retention.rulebook.simulate import simulate

    population = _population(customers, from_database)
    scorer = load_scorer(get_settings().model_dir)  # the churn model the worker scores with
    with tempfile.TemporaryDirectory() as scratch:
        after_dir = _rules_dir(path)
        before = load_rulebook(_rules_folder(against, Path(scratch), after_dir))
        result = simulate(before, load_rulebook(after_dir), population, scorer)
    if as_json:
        typer.echo(result.model_dump_json(indent=2))
        return
    console.print(_moves_table(result))
    for change in result.changed:
        console.print(
            f"  {change.customer_id}: {change.before}/{change.severity_before} → "
            f"{change.after}/{change.severity_after} (p {_probability_move(change)})",
            soft_wrap=True,
        )
    console.print(f"{len(result.changed)} of {result.customers} customers change")


def _probability_move(change: CustomerChange) -> str:
    """`0.62`, or `0.55 → 0.62` when the new scoring.yaml changed the churn probability."""
    before, after = change.churn_probability_before, change.churn_probability
    return f"{after:.2f}" if before == after else f"{before:.2f} → {after:.2f}"


def _population(customers: Path, from_database: bool) -> list[CustomerSnapshot]:
    if from_database:
        from retention.store.records import list_customers

        with _database() as engine:
            return list_customers(engine)
    return read_customers(customers)


SEED_FILES = ("scoring.yaml", "sentiment.yaml", "expansion.yaml", "kpis.yaml")


def _rules_folder(against: str, scratch: Path, current: Path) -> Path:
    """A rule set folder as given, or `rules/` as it was at a git ref, unpacked into `scratch`.

    A ref from before a seed-number file existed (scoring, sentiment, expansion, KPI targets)
    uses `current`'s.
    """
    import shutil
    import subprocess
    import tarfile
    from io import BytesIO

    if Path(against).is_dir():
        return Path(against)
    root = get_settings().rules_dir.parent
    archive = subprocess.run(
        ["git", "-C", str(root), "archive", "--format=tar", against, "rules"],
        capture_output=True,
        check=False,
    )
    if archive.returncode != 0:
        raise InvalidInput(f"--against {against!r} is neither a folder nor a git ref with rules/")
    with tarfile.open(fileobj=BytesIO(archive.stdout)) as tar:
        tar.extractall(scratch, filter="data")
    for name in SEED_FILES:
        if not (scratch / "rules" / name).exists():
            shutil.copy(current / name, scratch / "rules" / name)
            typer.echo(f"{against} has no rules/{name}: yours is used for it", err=True)
    return scratch / "rules"


def _moves_table(result: Simulation) -> Table:
    versions = f"rules {result.before_version} → {result.after_version}"
    table = Table(title=f"{result.customers} customers: {versions}")
    table.add_column("strategy before")
    afters = sorted({a for row in result.moves.values() for a in row})
    for after in afters:
        table.add_column(f"→ {after}", justify="right")
    for before, row in result.moves.items():
        table.add_row(before, *[str(row.get(a, "")) for a in afters])
    return table


# ---- model ----------------------------------------------------------------------------------


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
    file in the documented schema (README: Training data)."""
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
    data: Annotated[Path, typer.Option("--data", help="Training file: .csv or .parquet.")],
    out: Annotated[Path, typer.Option("--out", help="Folder for the model and its card.")],
    spec: Annotated[
        Path | None,
        typer.Option("--spec", help="Feature spec YAML for your own columns (default: seed)."),
    ] = None,
    seed: Annotated[int, typer.Option("--seed", help="Splits and trees follow it.")] = 1,
) -> None:
    """Train the churn model and its time-to-churn model; write them with a model card whose
    figures are cross-validated beside a logistic baseline on the same folds."""
    from retention.model.card import build_card
    from retention.model.persist import save_model
    from retention.model.spec import load_feature_spec
    from retention.model.tables import file_sha256, labelled_table
    from retention.model.train import train_churn_model

    with console.status(f"reading {data}") as status:
        table, features = labelled_table(
            data, load_feature_spec(spec) if spec else None, _rulebook()
        )
        status.update(f"training on {len(table)} rows")
        model = train_churn_model(table, features, seed=seed, source=str(data))
        card = build_card(
            model,
            table,
            seed=seed,
            data_hash=file_sha256(data),
            progress=lambda step: status.update(f"cross-validating: {step}"),
        )
        save_model(model, card, out)
    columns = [
        ("model (cross-validated)", card.figures),
        (f"{card.baseline} (same folds)", card.baseline_figures),
    ]
    console.print(_card_table(card.model_version, card.rows, columns))
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
    from retention.model.metrics import mean_figures
    from retention.model.persist import load_model
    from retention.model.tables import labelled_table

    if baseline not in (None, "logistic"):
        raise InvalidInput(f"--baseline: {baseline!r}; the baseline on offer is logistic")
    model, card = load_model(model_dir)
    table, features = labelled_table(data, model.spec, _rulebook())
    columns = [(f"model {card.model_version}", evaluate(model, table, features, str(data)))]
    if baseline:
        folds = make_folds(table, features, seed)
        ours = cross_validate(table, features, folds, seed)
        theirs = compare_with_logistic(table, features, folds, seed)
        columns += [
            ("XGBoost recipe, k-fold", mean_figures(ours)),
            ("logistic, same folds", mean_figures(theirs)),
        ]
    if as_json:
        typer.echo(json.dumps({name: f.model_dump() for name, f in columns}, indent=2))
        return
    console.print(_card_table(card.model_version, len(table), columns))


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
        ("calibration error (ECE)", lambda f: f"{f.calibration_error:.3f}"),
        ("early warning, days", lambda f: "-" if f.early_warning_days is None
         else f"{f.early_warning_days:.0f}"),
    ):  # fmt: skip
        table.add_row(label, *[read(figures) for _, figures in columns])
    return table


def _rulebook() -> Rulebook:
    from retention.rulebook.loader import load_rulebook

    return load_rulebook(_rules_dir(None))


# ---- customers -------------------------------------------------------------------------------


@customers_app.command("import")
@friendly
def import_customers(
    files: Annotated[
        list[Path], typer.Argument(help="Customer snapshot JSON files or .csv populations.")
    ],
) -> None:
    """Validate customer files and save them to the database (none if any file is bad)."""
    from retention.store.records import save_customer

    snapshots = [snapshot for path in files for snapshot in read_customers(path)]
    with _database() as engine:
        for snapshot in snapshots:
            save_customer(engine, snapshot)
    console.print(
        f"imported {_count(snapshots)} into {_safe_url(get_settings().database_url)}: "
        f"{_some_ids(snapshots)}",
        soft_wrap=True,
    )


@customers_app.command("export")
@friendly
def export_customers(
    csv_file: Annotated[
        Path, typer.Option("--csv", help="Write every customer to this CSV population.")
    ],
) -> None:
    """Write every customer in the database to a CSV file (`customers import` reads it back)."""
    from retention.population import write_customers_csv
    from retention.store.records import list_customers

    with _database() as engine:
        snapshots = list_customers(engine)
    write_customers_csv(snapshots, csv_file)
    console.print(
        f"exported {_count(snapshots)} from {_safe_url(get_settings().database_url)} to {csv_file}",
        soft_wrap=True,
    )


def _count(snapshots: list[CustomerSnapshot]) -> str:
    return f"{len(snapshots)} customer{'s' * (len(snapshots) != 1)}"


def _some_ids(snapshots: list[CustomerSnapshot], most: int = 20) -> str:
    """The first ids, not ten thousand of them on one line."""
    ids = ", ".join(s.customer_id for s in snapshots[:most])
    return ids + (f", ... ({len(snapshots) - most} more)" if len(snapshots) > most else "")


def _customer_in_database(customer_id: str) -> CustomerSnapshot:
    from retention.store.records import load_customer

    with _database() as engine:
        try:
            return load_customer(engine, customer_id)
        except CustomerNotFound as exc:
            raise CustomerNotFound(
                f"{exc}; add it first: starter.py customers import FILE"
            ) from exc


@contextmanager
def _database() -> Iterator[Engine]:
    """The database engine; a database failure becomes one line naming the (safe) URL.

    sqlalchemy and the store load here, not at start-up: most commands never need them.
    """
    from sqlalchemy.exc import SQLAlchemyError

    from retention.store.db import make_engine

    url = get_settings().database_url
    try:
        engine = make_engine(url)
        try:
            yield engine
        finally:
            engine.dispose()
    except SQLAlchemyError as exc:
        reason = str(getattr(exc, "orig", None) or exc).splitlines()[0]
        raise RetentionError(f"database {_safe_url(url)}: {reason}") from exc


def _safe_url(url: str) -> str:
    from sqlalchemy import make_url

    return make_url(url).render_as_string(hide_password=True)


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
    """Send a customer event into the customer's running journey."""
    try:
        payload = json.loads(data)
    except json.JSONDecodeError as exc:
        raise InvalidInput(f"--data: not valid JSON: {exc}") from exc
    raw: dict[str, Any] = {"type": event_type, "data": payload}
    if at is not None:
        raw["at"] = at
    customer_event = parse_event(raw)
    _with_client(lambda client: send_event(client, customer_id, customer_event))
    console.print(f"sent {customer_event.type} to {journey_id(customer_id)}")


# ---- suppression list ------------------------------------------------------------------------

_CHANNEL_HELP = "email, sms, phone or in_app (CSM work is never suppressed)."


@app.command()
@friendly
def suppress(
    customer_id: Annotated[str, typer.Argument(help="The customer who gets nothing on it.")],
    channel: Annotated[str, typer.Option(help=_CHANNEL_HELP)] = "email",
    reason: Annotated[str, typer.Option(help="Why (kept with the entry).")] = "operator",
    address: Annotated[
        str | None,
        typer.Option(help="The email or phone; default: the customer's, if in the database."),
    ] = None,
) -> None:
    """Stop a channel for a customer across all journeys; their steps use the fallback."""
    from retention.delivery.guardrails import SuppressRequest
    from retention.store.suppressions import add_suppression

    request = _validated(
        SuppressRequest, customer_id=customer_id, channel=channel, reason=reason, source="cli"
    )
    with _database() as engine:
        request.address = address or _known_address(engine, customer_id, request.channel)
        entry = add_suppression(engine, request)
    since = f"since {_when(entry.at)} ({entry.reason}; {entry.source})"
    console.print(f"{customer_id}: {entry.channel} suppressed {since}", soft_wrap=True)


@app.command()
@friendly
def unsuppress(
    customer_id: str,
    channel: Annotated[str, typer.Option(help=_CHANNEL_HELP)] = "email",
) -> None:
    """Lift a customer's suppression on a channel: later steps may use it again."""
    from retention.store.suppressions import remove_suppression

    with _database() as engine:
        removed = remove_suppression(engine, customer_id, channel)
    if not removed:
        _fail(f"{customer_id} is not suppressed on {channel}")
    console.print(f"{customer_id}: {channel} no longer suppressed")


@app.command()
@friendly
def suppressions(
    customer_id: Annotated[str | None, typer.Argument(help="Only this customer's.")] = None,
) -> None:
    """List the suppression list (everyone's, or one customer's)."""
    from retention.store.suppressions import list_suppressions

    with _database() as engine:
        rows = list_suppressions(engine, customer_id)
    if not rows:
        console.print("no suppressions")
        return
    table = Table(title=f"suppressions ({len(rows)})", title_justify="left")
    for column in ("customer", "channel", "address", "reason", "source", "since (UTC)"):
        table.add_column(column)
    for row in rows:
        table.add_row(
            row.customer_id, row.channel, row.address or "-", row.reason, row.source, _when(row.at)
        )
    console.print(table)


def _known_address(engine: Engine, customer_id: str, channel: CustomerChannel) -> str | None:
    from retention.delivery.channels import address_of
    from retention.store.records import load_customer

    try:
        return address_of(channel, load_customer(engine, customer_id))
    except CustomerNotFound:
        return None


# ---- show ------------------------------------------------------------------------------------


@app.command()
@friendly
def show(
    customer_id: Annotated[str, typer.Argument(help="The customer whose journey to show.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print the state as JSON.")] = False,
) -> None:
    """Show a journey's state: scores, strategy, plan and events (running or closed)."""
    state = _with_client(lambda client: journey_state(client, customer_id))
    if as_json:
        typer.echo(state.model_dump_json(indent=2))
        return
    console.print(_overview(state))
    console.print(_plan_table(state))
    console.print(_events_table(state) if state.events else "events: none")


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
        ("health", Text(_number(s.health_score, "{:.1f}"))),
        ("risk factors", Text(", ".join(f"{f.name} ({f.impact:.2f})" for f in s.risk_factors))),
        ("rules", Text(f"{s.rules_version or '-'} · fired {', '.join(s.fired_rules) or '-'}")),
        ("holdout", Text("yes: steps recorded, nothing sent" if s.holdout else "no")),
        ("offer", Text(_offer_text(s))),
        ("campaigns", Text(_campaigns_text(s))),
        ("outcome", _outcome_text(s)),
        ("started", Text(_when(s.started_at) + _finished(s))),
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
    return f" · finished {_when(s.finished_at)}" if s.finished_at else ""


_STEP_STYLE = {"done": "green", "skipped": "yellow", "pending": ""}


def _plan_table(s: JourneyState) -> Table:
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
            _when(step.due_at),
            Text(step.status, style=_STEP_STYLE.get(step.status, "")),
            Text(_sent_via(step)),
            Text(_step_note(step)),
        )
    return table


def _sent_via(step: StepState) -> str:
    """`capture`, or `live: sendgrid <message id>`; `-` until delivered."""
    if step.delivery_mode is None:
        return "-"
    provider = " ".join(p for p in (step.provider, step.provider_message_id) if p)
    return f"{step.delivery_mode}: {provider}" if provider else step.delivery_mode


def _step_note(step: StepState) -> str:
    if step.deferred_until is None:
        return step.note
    held = f"{step.deferred_why} (until {_when(step.deferred_until)})"
    return f"{step.note}; {held}" if step.note else held


def _channel(step: StepState) -> str:
    used, planned = step.channel_used, step.step.channel
    if used is None or used == planned:
        return planned
    return f"{used} (planned {planned})"


def _events_table(s: JourneyState) -> Table:
    table = Table(title=f"events ({len(s.events)})", title_justify="left")
    for column in ("received (UTC)", "type", "accepted", "data / reason"):
        table.add_column(column)
    for e in s.events:
        detail = e.reason if not e.accepted else json.dumps(e.data) if e.data else ""
        table.add_row(
            _when(e.received_at),
            Text(e.type),
            Text("yes", style="green") if e.accepted else Text("rejected", style="red"),
            Text(detail or ""),
        )
    return table


def _when(moment: datetime | None) -> str:
    return f"{moment:%Y-%m-%d %H:%M:%S}" if moment else "-"


def _number(value: float | None, fmt: str) -> str:
    return fmt.format(value) if value is not None else "-"


# ---- list ------------------------------------------------------------------------------------


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
    rows = _with_client(lambda client: journey_rows(client, query))
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
            _number(r.churn_probability, "{:.2f}"),
            _number(r.health_score, "{:.1f}"),
            r.status,
        )
    return table


# ---- operator commands -----------------------------------------------------------------------


def _command(customer_id: str, name: Command, request: CommandRequest) -> None:
    result: CommandResult = _with_client(
        lambda client: run_command(client, customer_id, name, request)
    )
    console.print(
        f"{journey_id(customer_id)}: {result.message} "
        f"(stage {result.stage}, strategy {result.strategy or '-'})",
        soft_wrap=True,
    )


@app.command()
@friendly
def pause(
    customer_id: str,
    reason: Annotated[str, typer.Option(help="Why (shown in the journey's state).")] = "",
) -> None:
    """Pause a journey: no step runs until it is resumed."""
    _command(customer_id, "pause", PauseRequest(reason=reason))


@app.command()
@friendly
def resume(customer_id: str) -> None:
    """Resume a paused journey; overdue steps run now."""
    _command(customer_id, "resume", ResumeRequest())


@app.command()
@friendly
def cancel(
    customer_id: str,
    reason: Annotated[str, typer.Option(help="Why the journey is cancelled (required).")],
) -> None:
    """Cancel a journey (outcome `cancelled`)."""
    _command(customer_id, "cancel", CancelRequest(reason=reason))


@app.command()
@friendly
def escalate(
    customer_id: str,
    reason: Annotated[str, typer.Option(help="Why (recorded in the strategy history).")] = "",
) -> None:
    """Re-score now and move the journey to the next more intensive strategy."""
    _command(customer_id, "escalate", EscalateRequest(reason=reason))


def main() -> None:
    """Run the CLI, then leave without interpreter teardown.

    A short-lived Temporal client process can abort in teardown ("PyGILState_Release ...
    must be current", temporalio/sdk-python#300), so flush and `os._exit` with the CLI's code.
    """
    code = 0
    try:
        app()
    except SystemExit as done:
        if isinstance(done.code, str):
            print(done.code, file=sys.stderr)
        code = done.code if isinstance(done.code, int) else (0 if done.code is None else 1)
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


if __name__ == "__main__":
    main()
