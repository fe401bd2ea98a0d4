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
column (`pop.csv:14: usage.total_features: Input should be greater than or equal to 1`). The
`iter_*` readers give each customer as it is read, holding one row at a time (and each id's
line, to refuse it twice), and raise at the first problem: what was given before it is the
caller's to undo.

The same columns can come as Parquet (`read_rows_parquet`, `write_customers_parquet`), and a
caller may add columns of its own after the snapshot's (`extra`: training labels, see
retention/model/training_data.py); the readers return those cells untouched for it to check.

Regenerate the sample: `python -m retention.population examples/customers examples/population.csv`
(`make population`).
"""

from __future__ import annotations

import csv
import json
import math
import sys
import types
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Annotated, Any, Literal, Union, get_args, get_origin

from pydantic import BaseModel, ValidationError

from retention.customer import CustomerSnapshot, describe_validation_error, parse_customer
from retention.errors import InvalidInput, RetentionError
from retention.nesting import TOO_DEEP, json_too_deep

LIST_SEPARATOR = ";"
MAX_CSV_BYTES = 200 * 1024 * 1024  # far above any real book of customers; refuses a wrong file
_SCALARS = (str, int, float, bool, date, datetime, type(None))


@dataclass(frozen=True)
class Column:
    path: tuple[str, ...]
    required: bool  # no default here or in any model above it
    is_list: bool
    is_json: bool = False  # a list of objects, as one JSON cell
    extra: bool = False  # not a snapshot field: a caller's own column (e.g. a training label)

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


def extra_columns(names: Sequence[str]) -> dict[str, Column]:
    """Every column a file may have: the snapshot's, then `names`, which are required."""
    clash = [name for name in names if name in _BY_NAME]
    if clash:
        raise ValueError(f"{', '.join(clash)}: already a snapshot column")
    extra = {name: Column((name,), required=True, is_list=False, extra=True) for name in names}
    return _BY_NAME | extra


@dataclass(frozen=True)
class Row:
    """One customer read from a file, with its extra columns' cells as they were."""

    customer: CustomerSnapshot
    extra: dict[str, Any]
    where: str  # `file:line` (CSV) or `file:row n` (Parquet), to name it in a later error


# ---- any population ---------------------------------------------------------------------------


def read_customers(path: Path) -> list[CustomerSnapshot]:
    """A `.csv` population, a folder of snapshot JSON files (by file name), or one JSON file."""
    return list(iter_customers(path))


def iter_customers(path: Path) -> Iterator[CustomerSnapshot]:
    """`read_customers`, one customer at a time."""
    if path.is_dir():
        yield from (read_customer_json(file) for file in sorted(path.glob("*.json")))
    elif path.suffix.lower() == ".csv":
        yield from (row.customer for row in iter_rows_csv(path))
    else:
        yield read_customer_json(path)


def read_customer_json(path: Path) -> CustomerSnapshot:
    with _reading(path):
        text = path.read_text(encoding="utf-8")
    if (line := json_too_deep(text)) is not None:
        raise InvalidInput(f"{path}:{line}: {TOO_DEEP}")
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
    return [row.customer for row in read_rows_csv(path)]


def read_rows_csv(path: Path, extra: Sequence[str] = ()) -> list[Row]:
    """Every row of a CSV file of snapshot columns plus the `extra` ones; all or nothing."""
    return list(iter_rows_csv(path, extra))


def iter_rows_csv(path: Path, extra: Sequence[str] = ()) -> Iterator[Row]:
    """`read_rows_csv`, one row at a time: the file is read as the rows are taken."""
    _refuse_huge(path, "CSV")
    with _reading(path), path.open(encoding="utf-8-sig", newline="") as handle:
        reader = csv.reader(handle)
        try:
            header = next(reader, None)
            if not header:
                raise InvalidInput(f"{path}:1: no header line naming the columns")
            yield from _iter_rows(header, _numbered(reader, path), str(path), extra)
        except csv.Error as exc:
            raise InvalidInput(f"{path}:{reader.line_num}: {exc}") from exc


def _numbered(reader: Any, path: Path) -> Iterator[tuple[int, str, list[str]]]:
    """Each record with the line it starts on: a quoted cell may hold line breaks, and the
    reader's own line number is then the record's last line."""
    start = reader.line_num + 1
    for cells in reader:
        yield start, f"{path}:{start}", cells
        start = reader.line_num + 1


def read_rows_parquet(path: Path, extra: Sequence[str] = ()) -> list[Row]:
    """The same columns from a Parquet file: cells may be typed (numbers, yes/no) or text."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    _refuse_huge(path, "Parquet")
    with _reading(path):
        try:
            table = pq.read_table(path)
        except pa.ArrowException as exc:
            raise InvalidInput(f"{path}: not a Parquet file ({exc})") from exc
    header = table.column_names
    records = table.to_pylist()
    rows = (
        (n, f"{path}:row {n}", [record[name] for name in header])
        for n, record in enumerate(records, start=1)
    )
    return list(_iter_rows(header, rows, str(path), extra))


def _refuse_huge(path: Path, kind: str) -> None:
    with _reading(path):
        size = path.stat().st_size
    if size > MAX_CSV_BYTES:
        raise InvalidInput(
            f"{path}: {size / 2**20:.0f} MB is over the "
            f"{MAX_CSV_BYTES // 2**20} MB limit for a {kind} population"
        )


def _iter_rows(
    header: list[str],
    rows: Iterable[tuple[int, str, list[Any]]],
    source: str,
    extra: Sequence[str],
) -> Iterator[Row]:
    """`rows` are (number, where, cells); a row's number tells a repeated customer's first."""
    columns = _header(header, source, extra_columns(extra))
    first_line: dict[str, int] = {}
    for number, where, cells in rows:
        if all(_blank(cell) for cell in cells):  # a blank line, or one of only commas
            continue
        if len(cells) != len(columns):
            raise InvalidInput(f"{where}: {len(cells)} cells, the header has {len(columns)}")
        customer = _parse_row(columns, cells, where)
        first = first_line.setdefault(customer.customer_id, number)
        if first != number:
            raise InvalidInput(
                f"{where}: profile.customer_id: {customer.customer_id!r} is already on line {first}"
            )
        extras = {c.name: cell for c, cell in zip(columns, cells, strict=True) if c.extra}
        yield Row(customer, extras, where)


def _header(names: list[str], source: str, known: dict[str, Column]) -> list[Column]:
    names = [name.strip() for name in names]
    for name in names:
        if name not in known:
            raise InvalidInput(f"{source}:1: unknown column {name!r}")
        if names.count(name) > 1:
            raise InvalidInput(f"{source}:1: column {name!r} appears twice")
    missing = [c.name for c in known.values() if c.required and c.name not in names]
    if missing:
        plural = "s" * (len(missing) > 1)
        raise InvalidInput(f"{source}:1: missing column{plural} {', '.join(map(repr, missing))}")
    return [known[name] for name in names]


def _parse_row(columns: Sequence[Column], cells: Sequence[Any], where: str) -> CustomerSnapshot:
    try:
        document = _document(columns, cells)
        return CustomerSnapshot.model_validate(document)
    except ValidationError as exc:
        raise InvalidInput(f"{where}: {describe_validation_error(exc, document)}") from exc
    except InvalidInput as exc:
        raise InvalidInput(f"{where}: {exc}") from exc


def _document(columns: Sequence[Column], cells: Sequence[Any]) -> dict[str, Any]:
    """The nested snapshot document; pydantic turns the text into numbers, dates and yes/no."""
    document: dict[str, Any] = {}
    for path in _SUB_MODELS:  # every sub-model, even one without a cell here: its defaults
        _node(document, path)
    for column, cell in zip(columns, cells, strict=True):
        if not column.extra and not _blank(cell):
            _node(document, column.path[:-1])[column.path[-1]] = _from_cell(column, cell)
    return document


def _blank(cell: Any) -> bool:
    """An empty CSV cell, or a Parquet null (pandas writes a missing float as NaN)."""
    return cell is None or cell == "" or (isinstance(cell, float) and math.isnan(cell))


def _from_cell(column: Column, cell: Any) -> Any:
    if not isinstance(cell, str):  # a typed Parquet cell: pydantic checks it as it is
        return cell
    if column.is_json:
        if json_too_deep(cell) is not None:
            raise InvalidInput(f"{column.name}: {TOO_DEEP}")
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


def write_customers_csv(
    customers: Iterable[CustomerSnapshot],
    path: Path,
    extra: Mapping[str, Sequence[str]] | None = None,
) -> None:
    """Write a CSV population that reads back exactly; refuse a customer it could not hold.

    `extra` adds columns after the snapshot's: name -> one ready-made cell per customer.
    """
    extra = extra or {}
    rows = [
        [*cells, *(column[i] for column in extra.values())]
        for i, (_, cells) in enumerate(_checked_rows(customers, path))
    ]
    try:
        with path.open("w", encoding="utf-8", newline="") as handle:
            writer = csv.writer(handle, lineterminator="\n")
            writer.writerow([*(column.name for column in COLUMNS), *extra])
            writer.writerows(rows)
    except OSError as exc:
        raise RetentionError(f"{path}: cannot write it ({exc})") from exc


def write_customers_parquet(
    customers: Iterable[CustomerSnapshot],
    path: Path,
    extra: Mapping[str, Sequence[Any]] | None = None,
) -> None:
    """The same columns as the CSV in a Parquet file: numbers and yes/no typed, nulls for blank
    cells, everything else (text, dates, lists) as the CSV's text."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    checked = _checked_rows(customers, path)
    data: dict[str, list[Any]] = {
        column.name: [_typed(column, values[j], cells[j]) for values, cells in checked]
        for j, column in enumerate(COLUMNS)
    }
    data.update({name: list(cells) for name, cells in (extra or {}).items()})
    try:
        pq.write_table(pa.table(data), path)
    except (OSError, pa.ArrowException) as exc:
        raise RetentionError(f"{path}: cannot write it ({exc})") from exc


def _typed(column: Column, value: Any, cell: str) -> Any:
    if cell == "":
        return None
    typed = isinstance(value, int | float) and not column.is_list and not column.is_json
    return value if typed else cell


def _checked_rows(
    customers: Iterable[CustomerSnapshot], path: Path
) -> list[tuple[list[Any], list[str]]]:
    """Each customer's JSON values and CSV cells, once each, checked to read back the same."""
    rows: list[tuple[list[Any], list[str]]] = []
    seen: set[str] = set()
    for customer in customers:
        where = f"{path}: customer {customer.customer_id!r}"
        if customer.customer_id in seen:
            raise InvalidInput(f"{where} twice; a population holds each customer once")
        seen.add(customer.customer_id)
        rows.append(_row(customer, where))
    return rows


def _row(customer: CustomerSnapshot, where: str) -> tuple[list[Any], list[str]]:
    values = _values(customer)
    row = [_cell(column, value) for column, value in zip(COLUMNS, values, strict=True)]
    back = _parse_row(COLUMNS, row, where)
    if back != customer:  # an empty text reads back as the default, `a;b` as two items
        pairs = zip(COLUMNS, values, _values(back), strict=True)
        lost = ", ".join(column.name for column, old, new in pairs if old != new)
        raise InvalidInput(f"{where}: {lost}: would not read back the same from CSV")
    return values, row


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
