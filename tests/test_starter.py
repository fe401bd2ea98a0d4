"""starter.py without a Temporal server: input checks, error lines, exit codes, the database."""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from factories import customer_data
from sqlalchemy import Engine
from typer.testing import CliRunner, Result

import cli.customers
import cli.rules
import cli.suppressions
import starter
from retention.customer import CustomerSnapshot
from retention.errors import CustomerNotFound, InvalidInput
from retention.nesting import MAX_NESTING
from retention.population import read_customers_csv
from retention.runtime.devserver import free_port
from retention.runtime.operations import journey_query
from retention.runtime.settings import get_settings
from retention.store import records
from retention.store.db import make_engine
from retention.store.records import list_customers, load_customer

runner = CliRunner()
POPULATION = Path(__file__).resolve().parent.parent / "examples" / "population.csv"


@pytest.fixture(autouse=True)
def database_url(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A fresh SQLite database per test, and no cached settings from elsewhere."""
    url = f"sqlite:///{tmp_path / 'retention.db'}"
    monkeypatch.setenv("RETENTION_DATABASE_URL", url)
    monkeypatch.delenv("RETENTION_TEMPORAL_ADDRESS", raising=False)
    get_settings.cache_clear()
    yield url
    get_settings.cache_clear()


@pytest.fixture
def closed_address() -> str:
    return f"127.0.0.1:{free_port()}"


def invoke(*args: str) -> Result:
    return runner.invoke(starter.app, list(args))


def write_json(path: Path, document: Any) -> Path:
    path.write_text(json.dumps(document), encoding="utf-8")
    return path


def one_error_line(result: Result) -> str:
    """The single `error: ...` line a failing command prints; no traceback, nothing else."""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ")
    assert "Traceback" not in result.output
    return lines[0]


# ---- bad input: exit 2, the field named ------------------------------------------------------


def test_a_bad_customer_file_names_the_field(tmp_path: Path) -> None:
    bad = customer_data(usage={"total_features": 0})
    path = write_json(tmp_path / "bad.json", bad)

    result = invoke("start", str(path))

    assert result.exit_code == 2
    line = one_error_line(result)
    assert str(path) in line and "usage.total_features" in line


def test_a_customer_file_that_is_not_json_or_missing(tmp_path: Path) -> None:
    broken = tmp_path / "broken.json"
    broken.write_text("{ not json", encoding="utf-8")

    assert "not valid JSON" in one_error_line(invoke("start", str(broken)))
    missing = invoke("start", str(tmp_path / "missing.json"))
    assert missing.exit_code == 2
    assert "file not found" in one_error_line(missing)


def test_bad_event_data_json_is_refused_before_any_call(closed_address: str) -> None:
    result = invoke("--address", closed_address, "event", "cust-001", "login", "--data", "{oops")

    assert result.exit_code == 2
    assert "--data: not valid JSON" in one_error_line(result)


def lists(levels: int) -> str:
    return "[" * levels + "]" * levels


def test_a_customer_file_nested_too_deep_is_refused_naming_the_line_and_the_limit(
    tmp_path: Path,
) -> None:
    text = json.dumps(customer_data(profile={"company": "X"}), indent=2)
    path = tmp_path / "deep.json"
    path.write_text(text.replace('"X"', lists(10_000)), encoding="utf-8")
    line = next(n for n, row in enumerate(text.splitlines(), 1) if '"X"' in row)

    result = invoke("start", str(path))

    assert result.exit_code == 2
    assert one_error_line(result) == (
        f"error: {path}:{line}: nested deeper than the limit of {MAX_NESTING} levels"
    )


def test_event_data_nested_too_deep_is_refused_before_any_call(closed_address: str) -> None:
    deep = f'{{"x": {lists(10_000)}}}'
    result = invoke("--address", closed_address, "event", "cust-001", "login", "--data", deep)

    assert result.exit_code == 2
    assert one_error_line(result) == (
        f"error: --data: nested deeper than the limit of {MAX_NESTING} levels"
    )


def test_event_data_nested_to_the_limit_goes_on_to_the_server(closed_address: str) -> None:
    at_limit = f'{{"x": {lists(MAX_NESTING - 1)}}}'
    result = invoke("--address", closed_address, "event", "cust-001", "login", "--data", at_limit)

    assert result.exit_code == 1
    assert closed_address in one_error_line(result)


@pytest.mark.parametrize(
    ("args", "field"),
    [
        (["teleported"], "type"),
        (["nps_response", "--data", "{}"], "data.score"),
        (["nps_response", "--data", '{"score": 11}'], "data.score"),
        (["login", "--at", "yesterday"], "at"),
        (["login", "--data", "[1, 2]"], "data"),
    ],
)
def test_an_invalid_event_names_the_field(closed_address: str, args: list[str], field: str) -> None:
    result = invoke("--address", closed_address, "event", "cust-001", *args)

    assert result.exit_code == 2
    assert field in one_error_line(result)


def test_options_out_of_range_name_the_option(tmp_path: Path) -> None:
    path = write_json(tmp_path / "c.json", customer_data())

    assert "--time-scale" in one_error_line(invoke("start", str(path), "--time-scale", "0"))
    result = invoke("start", str(path), "--churn-probability", "1.5")
    assert result.exit_code == 2
    assert "--churn-probability" in one_error_line(result)


def test_cancel_without_a_reason_is_a_usage_error() -> None:
    result = invoke("cancel", "cust-001")

    assert result.exit_code == 2
    assert "--reason" in result.output
    assert "Traceback" not in result.output


def test_start_needs_exactly_one_customer_source(tmp_path: Path) -> None:
    path = write_json(tmp_path / "c.json", customer_data())

    assert invoke("start").exit_code == 2
    assert invoke("start", str(path), "--customer-id", "cust-001").exit_code == 2


@pytest.mark.parametrize(
    "args",
    [["--stage", "sleeping"], ["--tier", 'x" OR WorkflowId!="'], ["--status", "sometimes"]],
)
def test_list_filters_are_checked(args: list[str]) -> None:
    result = invoke("list", *args)

    assert result.exit_code == 2
    assert args[0] in one_error_line(result)


# ---- Temporal unreachable: one line, exit 1 --------------------------------------------------


@pytest.mark.parametrize(
    "args",
    [
        ["show", "cust-001"],
        ["list"],
        ["event", "cust-001", "login"],
        ["pause", "cust-001"],
        ["cancel", "cust-001", "--reason", "test"],
    ],
)
def test_an_unreachable_server_is_one_line_naming_the_address(
    closed_address: str, args: list[str]
) -> None:
    result = invoke("--address", closed_address, *args)

    assert result.exit_code == 1
    line = one_error_line(result)
    assert closed_address in line and "make run" in line


def test_the_address_can_come_from_the_environment(closed_address: str) -> None:
    result = runner.invoke(
        starter.app, ["show", "cust-001"], env={"RETENTION_TEMPORAL_ADDRESS": closed_address}
    )

    assert result.exit_code == 1
    assert closed_address in one_error_line(result)


def test_start_from_a_file_reaches_for_the_server_only_after_validation(
    tmp_path: Path, closed_address: str
) -> None:
    path = write_json(tmp_path / "c.json", customer_data())

    result = invoke("--address", closed_address, "start", str(path), "--time-scale", "500")

    assert result.exit_code == 1
    assert closed_address in one_error_line(result)


# ---- the database ----------------------------------------------------------------------------


def test_customers_import_saves_every_file(tmp_path: Path, database_url: str) -> None:
    first = write_json(tmp_path / "a.json", customer_data(profile={"customer_id": "cust-a"}))
    second = write_json(tmp_path / "b.json", customer_data(profile={"customer_id": "cust-b"}))

    result = invoke("customers", "import", str(first), str(second))

    assert result.exit_code == 0, result.output
    assert "imported 2 customers" in result.stdout
    engine = make_engine(database_url)
    assert load_customer(engine, "cust-b").profile.company == "Acme Analytics"
    engine.dispose()


def test_customers_import_writes_nothing_when_one_file_is_bad(
    tmp_path: Path, database_url: str
) -> None:
    good = write_json(tmp_path / "good.json", customer_data(profile={"customer_id": "cust-g"}))
    bad = write_json(tmp_path / "bad.json", customer_data(profile={"email": "not-an-email"}))

    result = invoke("customers", "import", str(good), str(bad))

    assert result.exit_code == 2
    assert "profile.email" in one_error_line(result)
    engine = make_engine(database_url)
    with pytest.raises(CustomerNotFound):
        load_customer(engine, "cust-g")
    engine.dispose()


@pytest.fixture
def cli_engine(engine: Engine, monkeypatch: pytest.MonkeyPatch) -> Engine:
    """The CLI's database is the `engine` fixture (SQLite, and PostgreSQL when configured)."""

    @contextmanager
    def database() -> Iterator[Engine]:
        yield engine

    for command_module in (cli.customers, cli.rules, cli.suppressions):
        monkeypatch.setattr(command_module, "database", database)
    return engine


@pytest.mark.database
def test_customers_import_a_csv_then_export_it_again(tmp_path: Path, cli_engine: Engine) -> None:
    result = invoke("customers", "import", str(POPULATION))

    assert result.exit_code == 0, result.output
    assert "imported 11 customers" in result.stdout
    assert list_customers(cli_engine) == read_customers_csv(POPULATION)

    exported = tmp_path / "exported.csv"
    result = invoke("customers", "export", "--csv", str(exported))

    assert result.exit_code == 0, result.output
    assert "exported 11 customers" in result.stdout and str(exported) in result.stdout
    assert exported.read_bytes() == POPULATION.read_bytes()  # both ordered by customer id


@pytest.mark.database
def test_customers_import_takes_json_and_csv_together_or_nothing(
    tmp_path: Path, cli_engine: Engine
) -> None:
    single = write_json(tmp_path / "a.json", customer_data(profile={"customer_id": "cust-a"}))
    bad = tmp_path / "bad.csv"
    bad.write_text(
        POPULATION.read_text(encoding="utf-8").replace(",8,true,active,", ",11,true,active,", 1),
        encoding="utf-8",
    )

    result = invoke("customers", "import", str(single), str(bad))

    assert result.exit_code == 2
    assert f"{bad}:2: relationship.nps: Input should be less than or equal to 10" in (
        one_error_line(result)
    )
    assert list_customers(cli_engine) == []
    result = invoke("customers", "import", str(single), str(POPULATION))
    assert result.exit_code == 0 and "imported 12 customers" in result.stdout


def _population_with_a_bad_last_row(path: Path) -> tuple[Path, int]:
    """The sample population with its last customer's NPS out of range; the line it is on."""
    with POPULATION.open(encoding="utf-8", newline="") as handle:
        header, *rows = list(csv.reader(handle))
    rows[-1][header.index("relationship.nps")] = "11"
    with path.open("w", encoding="utf-8", newline="") as handle:
        csv.writer(handle, lineterminator="\n").writerows([header, *rows])
    return path, len(rows) + 1


@pytest.mark.database
def test_customers_import_saves_a_page_at_a_time(
    cli_engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    pages: list[list[str]] = []
    save = records.save_customers

    def saved_page(engine: Engine, snapshots: Sequence[CustomerSnapshot]) -> None:
        pages.append([snapshot.customer_id for snapshot in snapshots])
        save(engine, snapshots)

    monkeypatch.setattr(records, "save_customers", saved_page)
    monkeypatch.setattr(cli.customers, "IMPORT_PAGE", 4)

    result = invoke("customers", "import", str(POPULATION))

    assert result.exit_code == 0, result.output
    assert [len(page) for page in pages] == [4, 4, 3]
    assert list_customers(cli_engine) == read_customers_csv(POPULATION)


@pytest.mark.database
def test_customers_import_refuses_a_bad_row_on_a_late_page_and_saves_nothing(
    tmp_path: Path, cli_engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(cli.customers, "IMPORT_PAGE", 2)
    single = write_json(tmp_path / "a.json", customer_data(profile={"customer_id": "cust-a"}))
    bad, line = _population_with_a_bad_last_row(tmp_path / "late.csv")

    result = invoke("customers", "import", str(single), str(POPULATION), str(bad))

    assert result.exit_code == 2
    assert f"{bad}:{line}: relationship.nps: Input should be less than or equal to 10" in (
        one_error_line(result)
    )
    assert list_customers(cli_engine) == []


def test_customers_export_of_an_empty_database_and_to_a_bad_place(tmp_path: Path) -> None:
    empty = tmp_path / "empty.csv"
    assert invoke("customers", "export", "--csv", str(empty)).exit_code == 0
    assert empty.read_text(encoding="utf-8").startswith("profile.customer_id,")

    result = invoke("customers", "export", "--csv", str(tmp_path / "no" / "such" / "x.csv"))

    assert result.exit_code == 1
    assert "cannot write it" in one_error_line(result)


def test_start_by_id_of_an_unknown_customer_says_how_to_add_it() -> None:
    result = invoke("start", "--customer-id", "nobody")

    assert result.exit_code == 1
    line = one_error_line(result)
    assert "nobody" in line and "customers import" in line


# ---- the visibility query --------------------------------------------------------------------


def test_journey_query_running_by_default_with_filters() -> None:
    assert journey_query() == 'WorkflowType="RetentionJourney" AND ExecutionStatus="Running"'
    assert journey_query(tier="critical", strategy="critical_save", stage="paused") == (
        'WorkflowType="RetentionJourney" AND RiskTier="critical" AND Strategy="critical_save"'
        ' AND JourneyStage="paused" AND ExecutionStatus="Running"'
    )
    assert journey_query(status="all") == 'WorkflowType="RetentionJourney"'
    assert journey_query(status="closed").endswith('ExecutionStatus!="Running"')


def test_journey_query_refuses_what_would_break_the_query() -> None:
    with pytest.raises(InvalidInput, match="--tier"):
        journey_query(tier='critical" OR RiskTier!="x')
    with pytest.raises(InvalidInput, match="--stage"):
        journey_query(stage="dreaming")
