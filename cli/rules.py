"""`rules check|test|simulate`: what rule authors run before a change goes live."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from cli.app import (
    app,
    console,
    database,
    fail,
    friendly,
    rules_dir,
)
from retention.customer import CustomerSnapshot
from retention.errors import InvalidInput
from retention.population import read_customers
from retention.runtime.settings import get_settings

if TYPE_CHECKING:
    from retention.rulebook.simulate import CustomerChange, Simulation

rules_app = typer.Typer(help="Check and test the rule set (rules/).", no_args_is_help=True)
app.add_typer(rules_app, name="rules")


@rules_app.command("check")
@friendly
def rules_check(
    path: Annotated[Path | None, typer.Argument(help="Rule set folder (default: rules/).")] = None,
) -> None:
    """Refuse a broken rule set: every problem as file:line:column: message; exit 1 if any."""
    from retention.ingest.sources import sources_findings
    from retention.rulebook.check import check
    from retention.rulebook.loader import load_rulebook

    folder = rules_dir(path)
    findings = check(folder) + sources_findings(folder)  # the rules, then the ingest's file
    for finding in findings:
        typer.echo(finding, err=True)
    if findings:
        fail(f"{len(findings)} problem{'s' * (len(findings) != 1)} in {folder}")
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

    folder = rules_dir(path)
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
        after_dir = rules_dir(path)
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

        with database() as engine:
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
