"""CSV populations (retention/population.py): the format, the round trip, every refusal."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from factories import make_customer, read_csv_rows, write_csv_rows
from pydantic import BaseModel

from retention import population
from retention.customer import CustomerSnapshot
from retention.errors import InvalidInput
from retention.nesting import MAX_NESTING
from retention.population import COLUMNS, read_customers, read_customers_csv, write_customers_csv

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def customers(n: int = 3) -> list[CustomerSnapshot]:
    return [make_customer(profile={"customer_id": f"cust-{i}"}) for i in range(1, n + 1)]


def rows_of(tmp_path: Path, snapshots: list[CustomerSnapshot]) -> list[dict[str, str]]:
    """The CSV rows the writer makes, as dicts to edit the way a spreadsheet user would."""
    written = tmp_path / "written.csv"
    write_customers_csv(snapshots, written)
    return read_csv_rows(written)


def refusal(path: Path) -> str:
    with pytest.raises(InvalidInput) as error:
        read_customers_csv(path)
    return str(error.value)


# ---- the format --------------------------------------------------------------------------------


def test_every_snapshot_field_has_a_column_named_by_its_path() -> None:
    def leaves(document: dict[str, object], prefix: str = "") -> set[str]:
        found: set[str] = set()
        for key, value in document.items():
            name = f"{prefix}{key}"
            found |= leaves(value, f"{name}.") if isinstance(value, dict) else {name}
        return found

    assert [c.name for c in COLUMNS][:2] == ["profile.customer_id", "profile.name"]
    assert {c.name for c in COLUMNS} == leaves(make_customer().model_dump())
    assert {c.name for c in COLUMNS if c.required} >= {"profile.email", "usage.total_features"}
    assert "relationship.nps" not in {c.name for c in COLUMNS if c.required}


def test_a_field_without_a_cell_form_is_refused_when_columns_are_derived() -> None:
    class WithNotes(BaseModel):
        notes: dict[str, str]

    with pytest.raises(TypeError, match="notes: .* has no CSV cell form"):
        list(population._columns(WithNotes))


def test_round_trip_is_exact(tmp_path: Path) -> None:
    tricky = make_customer(
        profile={
            "customer_id": "quoted",
            "name": 'Zoë "Z" Ng, Jr.\nsecond line',
            "phone": "+14155550123",
            "signup_date": "2023-02-28",
        },
        support={"satisfaction": None, "avg_ticket_sentiment": -0.123456789},
        relationship={"nps": None, "executive_engaged": False, "champion_status": "left"},
        health_history=[72.5, 70.0, 64.25, 1e-05],
    )
    snapshots = [*customers(2), tricky]
    path = tmp_path / "pop.csv"

    write_customers_csv(snapshots, path)

    assert read_customers_csv(path) == snapshots
    assert "72.5;70.0;64.25;1e-05" in path.read_text(encoding="utf-8")


def test_the_sample_csv_holds_the_sample_customers() -> None:
    """examples/population.csv is `make population`'s output: it must not drift from the JSON."""
    assert read_customers(EXAMPLES / "population.csv") == read_customers(EXAMPLES / "customers")


def test_blank_cells_and_missing_optional_columns_take_the_defaults(tmp_path: Path) -> None:
    rows = rows_of(tmp_path, customers(1))
    optional = {c.name for c in COLUMNS if not c.required}
    rows = [{k: ("" if k == "profile.plan" else v) for k, v in rows[0].items()}]
    rows = [{k: v for k, v in rows[0].items() if k not in optional - {"profile.plan"}}]

    (customer,) = read_customers_csv(write_csv_rows(tmp_path / "pop.csv", rows))

    assert customer.profile.plan == "standard" and customer.relationship.nps is None
    assert customer.relationship.champion_status == "active" and customer.health_history == []


def test_columns_in_any_order_with_a_bom_and_blank_lines(tmp_path: Path) -> None:
    rows = [dict(reversed(row.items())) for row in rows_of(tmp_path, customers(2))]
    path = write_csv_rows(tmp_path / "pop.csv", rows)
    path.write_bytes(b"\xef\xbb\xbf" + path.read_bytes() + b"\r\n,,\r\n")

    assert read_customers_csv(path) == customers(2)


def test_read_customers_picks_the_reader_by_path(tmp_path: Path) -> None:
    sample = EXAMPLES / "customers" / "acme.json"
    assert [c.customer_id for c in read_customers(sample)] == ["acme"]
    assert len(read_customers(EXAMPLES / "customers")) == 11


# ---- refusals: file, line, column -------------------------------------------------------------


@pytest.mark.parametrize(
    ("column", "value", "message"),
    [
        ("usage.total_features", "0", "usage.total_features: Input should be greater than"),
        ("relationship.executive_engaged", "maybe", "relationship.executive_engaged: Input should"),
        ("health_history", "70;high", "health_history.1: Input should be a valid number"),
        ("profile.email", "", "profile.email: Field required"),
        ("usage.features_used", "11", "usage: Value error, features_used cannot exceed"),
    ],
)
def test_a_bad_cell_names_file_line_and_column(
    tmp_path: Path, column: str, value: str, message: str
) -> None:
    rows = rows_of(tmp_path, customers(3))
    rows[1][column] = value

    assert refusal(write_csv_rows(tmp_path / "pop.csv", rows)).startswith(f"{tmp_path}/pop.csv:3: ")
    assert message in refusal(tmp_path / "pop.csv")


def test_header_problems_are_line_1(tmp_path: Path) -> None:
    rows = rows_of(tmp_path, customers(1))
    unknown = write_csv_rows(tmp_path / "unknown.csv", [{**rows[0], "usage.foo": "1"}])
    assert refusal(unknown) == f"{unknown}:1: unknown column 'usage.foo'"

    missing = write_csv_rows(
        tmp_path / "missing.csv",
        [{k: v for k, v in rows[0].items() if k not in {"profile.email", "usage.features_used"}}],
    )
    assert refusal(missing) == (
        f"{missing}:1: missing columns 'profile.email', 'usage.features_used'"
    )

    twice = tmp_path / "twice.csv"
    twice.write_text("profile.name,profile.name\nx,y\n", encoding="utf-8")
    assert refusal(twice) == f"{twice}:1: column 'profile.name' appears twice"


def test_a_repeated_customer_is_refused_naming_both_lines(tmp_path: Path) -> None:
    rows = rows_of(tmp_path, customers(3))
    rows[2]["profile.customer_id"] = "cust-1"

    path = write_csv_rows(tmp_path / "pop.csv", rows)

    assert refusal(path) == f"{path}:4: profile.customer_id: 'cust-1' is already on line 2"


def test_a_row_of_the_wrong_width_is_refused(tmp_path: Path) -> None:
    path = write_csv_rows(tmp_path / "pop.csv", rows_of(tmp_path, customers(2)))
    path.write_text(path.read_text(encoding="utf-8") + "cust-9,Nobody\n", encoding="utf-8")

    assert refusal(path) == f"{path}:4: 2 cells, the header has {len(COLUMNS)}"


def test_unreadable_files_are_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    empty = tmp_path / "empty.csv"
    empty.write_text("", encoding="utf-8")
    assert refusal(empty) == f"{empty}:1: no header line naming the columns"

    assert refusal(tmp_path / "nowhere.csv") == f"{tmp_path}/nowhere.csv: file not found"

    latin = tmp_path / "latin.csv"
    latin.write_bytes("profile.name\nZo\xeb\n".encode("latin-1"))
    assert refusal(latin).startswith(f"{latin}: cannot read it (")

    monkeypatch.setattr(population, "MAX_CSV_BYTES", 2**20)
    big = tmp_path / "big.csv"
    big.write_bytes(b"x" * (3 * 2**20))
    assert refusal(big) == f"{big}: 3 MB is over the 1 MB limit for a CSV population"


# ---- the writer refuses what would not read back -----------------------------------------------


def test_the_writer_refuses_what_csv_cannot_hold(tmp_path: Path) -> None:
    path = tmp_path / "pop.csv"
    empty_plan = make_customer(profile={"plan": ""})  # a blank cell reads as "standard"
    with pytest.raises(InvalidInput, match="'cust-001': profile.plan: would not read back"):
        write_customers_csv([empty_plan], path)

    with pytest.raises(InvalidInput, match="'cust-1' twice"):
        write_customers_csv([*customers(2), *customers(1)], path)
    assert not path.exists()


def test_interactions_travel_as_one_json_cell(tmp_path: Path) -> None:
    customer = make_customer(
        support={
            "interactions": [
                {"at": "2026-11-02T10:00:00Z", "channel": "ticket", "text": 'Still "broken", again'}
            ]
        },
        usage={"active_users_history": [10, 12, 15]},
    )
    path = tmp_path / "pop.csv"

    write_customers_csv([customer], path)

    assert read_customers_csv(path) == [customer]


def test_an_accounts_contacts_travel_as_one_json_cell(tmp_path: Path) -> None:
    northwind = read_customers(EXAMPLES / "customers" / "northwind.json")
    path = tmp_path / "pop.csv"

    write_customers_csv([*customers(1), *northwind], path)

    [plain, row] = read_csv_rows(path)
    assert plain["contacts"] == ""  # no contacts: the profile's person is the one known
    assert json.loads(row["contacts"])[1]["roles"] == ["champion", "admin"]
    assert read_customers_csv(path) == [*customers(1), *northwind]


def test_a_bad_contact_in_a_csv_names_line_field_and_contact(tmp_path: Path) -> None:
    rows = rows_of(tmp_path, customers(2))
    ana = {"contact_id": "ana", "name": "Ana", "email": "ana@x.example", "roles": ["admin"]}
    bo = {"contact_id": "bo", "name": "Bo", "email": "bo@x.example", "phone": "12"}
    rows[1]["contacts"] = json.dumps([ana, bo])

    message = refusal(write_csv_rows(tmp_path / "pop.csv", rows))

    assert "pop.csv:3: contacts.1 ('bo').phone: String should match pattern" in message


def test_an_interactions_cell_that_is_not_json_names_line_and_column(tmp_path: Path) -> None:
    path = tmp_path / "pop.csv"
    write_customers_csv([make_customer()], path)
    header, row = path.read_text().splitlines()
    cells = row.split(",")
    cells[[c.name for c in COLUMNS].index("support.interactions")] = "[{oops"
    path.write_text(f"{header}\n{','.join(cells)}\n")

    with pytest.raises(InvalidInput, match=r"pop\.csv:2: support\.interactions: not JSON"):
        read_customers_csv(path)


def test_an_interactions_cell_nested_too_deep_names_line_column_and_the_limit(
    tmp_path: Path,
) -> None:
    path = tmp_path / "pop.csv"
    write_customers_csv([make_customer()], path)
    rows = read_csv_rows(path)
    rows[0]["support.interactions"] = "[" * 10_000 + "]" * 10_000
    write_csv_rows(path, rows)

    with pytest.raises(
        InvalidInput,
        match=rf"pop\.csv:2: support\.interactions: nested deeper than the limit of {MAX_NESTING}",
    ):
        read_customers_csv(path)
