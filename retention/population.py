"""Customer populations on disk: snapshot JSON files, a folder of them, or one CSV file.

The CSV format, for spreadsheets and database exports (`examples/population.csv`):

- the first line names the columns: one per snapshot field, by its dotted path
  (`profile.customer_id`, `usage.days_since_last_login`, `relationship.nps`, ...), derived from
  `CustomerSnapshot`, so a new field is a new column; columns may come in any order;
- one customer per line; a blank cell is the field's default (None where it has none), so only
  the required fields' columns must be there;
- a list of numbers or words (`health_history`) is one cell, its items joined by `;`
  (`72.5;70;64.25`); a list of objects (`support.interactions`) is one cell of JSON
  (`[{"at": "2026-11-02T10:00:00Z", "channel": "ticket", "text": "..."}]`);
- true/false for yes/no fields, ISO dates (2024-03-01); UTF-8, with or without a BOM.

Reading is all or nothing: the first problem is raised as `InvalidInput` naming file, line and
column (`pop.csv:14: usage.total_features: Input should be greater than or equal to 1`).

Regenerate the sample: `python -m retention.population examples/customers examples/population.csv`
(`make population`).
"""

from __future__ import annotations

import csv
import json
import sys
import types
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal, Union, get_args, get_origin

from pydantic import BaseModel, ValidationError

from retention.customer import CustomerSnapshot, describe_validation_error, parse_customer
from retention.errors import InvalidInput, RetentionError

if TYPE_CHECKING:
    from _csv import Reader

LIST_SEPARATOR = ";"
MAX_CSV_BYTES = 200 * 1024 * 1024  # far above any real book of customers; refuses a wrong file
_SCALARS = (str, int, float, bool, date, datetime, type(None))


@dataclass(frozen=True)
class Column:
    path: tuple[str, ...]
    required: bool  # no default here or in any model above it
    is_list: bool
    is_json: bool = False  # a list of objects, as one JSON cell

    @property
    def name(self) -> str:
        return ".".join(self.path)


def _is_scalar(annotation: Any) -> bool:
    origin = get_origin(annotation)
    if origin is Annotated:
        return _is_scalar(get_args(annotation)[0])
    if origin is Literal:
        return True
    if origin in (Union, types.UnionType):
        return all(_is_scalar(arg) for arg in get_args(annotation))
    return annotation in _SCALARS


def _columns(
    model: type[BaseModel], prefix: tuple[str, ...] = (), required: bool = True
) -> Iterator[Column]:
    """Every leaf field of `model`, depth first in declaration order."""
    for field_name, info in model.model_fields.items():
        path, annotation = (*prefix, field_name), info.annotation
        needed = required and info.is_required()
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            yield from _columns(annotation, path, needed)
            continue
        is_list = get_origin(annotation) is list
        item = get_args(annotation)[0] if is_list else annotation
        if is_list and isinstance(item, type) and issubclass(item, BaseModel):
            yield Column(path, needed, is_list=False, is_json=True)
            continue
        if not _is_scalar(item):
            raise TypeError(f"{'.'.join(path)}: {annotation} has no CSV cell form; give it one")
        yield Column(path, needed, is_list)


COLUMNS: tuple[Column, ...] = tuple(_columns(CustomerSnapshot))
_BY_NAME = {column.name: column for column in COLUMNS}
_SUB_MODELS = sorted({column.path[:i] for column in COLUMNS for i in range(1, len(column.path))})


# ---- any population ---------------------------------------------------------------------------


def read_customers(path: Path) -> list[CustomerSnapshot]:
    """A `.csv` population, a folder of snapshot JSON files (by file name), or one JSON file."""
    if path.is_dir():
        return [read_customer_json(file) for file in sorted(path.glob("*.json"))]
    if path.suffix.lower() == ".csv":
        return read_customers_csv(path)
    return [read_customer_json(path)]


def read_customer_json(path: Path) -> CustomerSnapshot:
    with _reading(path):
        text = path.read_text(encoding="utf-8")
    try:
        raw = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InvalidInput(f"{path}: not valid JSON: {exc}") from exc
    return parse_customer(raw, source=str(path))


@contextmanager
def _reading(path: Path) -> Iterator[None]:
    """A file that cannot be read becomes one `InvalidInput` line naming it."""
    try:
        yield
    except FileNotFoundError as exc:
        raise InvalidInput(f"{path}: file not found") from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise InvalidInput(f"{path}: cannot read it ({exc})") from exc


# ---- CSV: read ---------------------------------------------------------------------------------


def read_customers_csv(path: Path) -> list[CustomerSnapshot]:
    """Every customer in a CSV population, or `InvalidInput` for the first problem."""
    with _reading(path):
        size = path.stat().st_size
        if size > MAX_CSV_BYTES:
            raise InvalidInput(
                f"{path}: {size / 2**20:.0f} MB is over the "
                f"{MAX_CSV_BYTES // 2**20} MB limit for a CSV population"
            )
        with path.open(encoding="utf-8-sig", newline="") as handle:
            reader = csv.reader(handle)
            try:
                return _read_rows(reader, str(path))
            except csv.Error as exc:
                raise InvalidInput(f"{path}:{reader.line_num}: {exc}") from exc


def _read_rows(reader: Reader, source: str) -> list[CustomerSnapshot]:
    header = next(reader, None)
    if not header:
        raise InvalidInput(f"{source}:1: no header line naming the columns")
    columns = _header(header, source)
    customers: list[CustomerSnapshot] = []
    first_line: dict[str, int] = {}
    for cells in reader:
        if not any(cells):  # a blank line, or one of only commas
            continue
        where = f"{source}:{reader.line_num}"
        if len(cells) != len(columns):
            raise InvalidInput(f"{where}: {len(cells)} cells, the header has {len(columns)}")
        customer = _parse_row(columns, cells, where)
        first = first_line.setdefault(customer.customer_id, reader.line_num)
        if first != reader.line_num:
            raise InvalidInput(
                f"{where}: profile.customer_id: {customer.customer_id!r} is already on line {first}"
            )
        customers.append(customer)
    return customers


def _header(names: list[str], source: str) -> list[Column]:
    names = [name.strip() for name in names]
    for name in names:
        if name not in _BY_NAME:
            raise InvalidInput(f"{source}:1: unknown column {name!r}")
        if names.count(name) > 1:
            raise InvalidInput(f"{source}:1: column {name!r} appears twice")
    missing = [c.name for c in COLUMNS if c.required and c.name not in names]
    if missing:
        plural = "s" * (len(missing) > 1)
        raise InvalidInput(f"{source}:1: missing column{plural} {', '.join(map(repr, missing))}")
    return [_BY_NAME[name] for name in names]


def _parse_row(columns: Sequence[Column], cells: list[str], where: str) -> CustomerSnapshot:
    try:
        return CustomerSnapshot.model_validate(_document(columns, cells))
    except ValidationError as exc:
        raise InvalidInput(f"{where}: {describe_validation_error(exc)}") from exc
    except InvalidInput as exc:
        raise InvalidInput(f"{where}: {exc}") from exc


def _document(columns: Sequence[Column], cells: list[str]) -> dict[str, Any]:
    """The nested snapshot document; pydantic turns the text into numbers, dates and yes/no."""
    document: dict[str, Any] = {}
    for path in _SUB_MODELS:  # every sub-model, even one without a cell here: its defaults
        _node(document, path)
    for column, cell in zip(columns, cells, strict=True):
        if cell != "":
            _node(document, column.path[:-1])[column.path[-1]] = _from_cell(column, cell)
    return document


def _from_cell(column: Column, cell: str) -> Any:
    if column.is_json:
        try:
            return json.loads(cell)
        except json.JSONDecodeError as exc:
            raise InvalidInput(
                f"{column.name}: not JSON ({exc.msg} at character {exc.pos})"
            ) from exc
    return cell.split(LIST_SEPARATOR) if column.is_list else cell


def _node(document: dict[str, Any], keys: tuple[str, ...]) -> dict[str, Any]:
    for key in keys:
        document = document.setdefault(key, {})
    return document


# ---- CSV: write --------------------------------------------------------------------------------


def write_customers_csv(customers: Iterable[CustomerSnapshot], path: Path) -> None:
    """Write a CSV population that reads back exactly; refuse a customer it could not hold."""
    rows: list[list[str]] = []
    seen: set[str] = set()
    for customer in customers:
        where = f"{path}: customer {customer.customer_id!r}"
        if customer.customer_id in seen:
            raise InvalidInput(f"{where} twice; a population holds each customer once")
        seen.add(customer.customer_id)
        rows.append(_row(customer, where))
    try:
        with path.open("w", encoding="utf-8", newline="") as handle:
            writer = csv.writer(handle, lineterminator="\n")
            writer.writerow(column.name for column in COLUMNS)
            writer.writerows(rows)
    except OSError as exc:
        raise RetentionError(f"{path}: cannot write it ({exc})") from exc


def _row(customer: CustomerSnapshot, where: str) -> list[str]:
    values = _values(customer)
    row = [_cell(column, value) for column, value in zip(COLUMNS, values, strict=True)]
    back = _parse_row(COLUMNS, row, where)
    if back != customer:  # an empty text reads back as the default, `a;b` as two items
        pairs = zip(COLUMNS, values, _values(back), strict=True)
        lost = ", ".join(column.name for column, old, new in pairs if old != new)
        raise InvalidInput(f"{where}: {lost}: would not read back the same from CSV")
    return row


def _values(customer: CustomerSnapshot) -> list[Any]:
    """The customer's value for each column, JSON-typed (dates as ISO text)."""
    dumped = customer.model_dump(mode="json")
    return [_node(dumped, column.path[:-1])[column.path[-1]] for column in COLUMNS]


def _cell(column: Column, value: Any) -> str:
    if value is None or value == []:
        return ""
    if column.is_json:
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, list):
        return LIST_SEPARATOR.join(_cell(column, item) for item in value)
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def main(argv: list[str]) -> None:
    """`python -m retention.population SOURCE OUT.csv`: write a population (e.g. JSON) as CSV."""
    if len(argv) != 2:
        sys.exit("usage: python -m retention.population SOURCE OUT.csv")
    source, target = map(Path, argv)
    customers = read_customers(source)
    write_customers_csv(customers, target)
    print(f"wrote {len(customers)} customers to {target}")


if __name__ == "__main__":
    main(sys.argv[1:])
