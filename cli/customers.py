"""`customers import|export`: the customers in the retention database."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from cli.app import (
    app,
    console,
    database,
    friendly,
    safe_url,
)
from retention.customer import CustomerSnapshot
from retention.errors import CustomerNotFound
from retention.population import iter_customers
from retention.runtime.settings import get_settings

if TYPE_CHECKING:
    pass

customers_app = typer.Typer(help="Customers in the retention database.", no_args_is_help=True)
app.add_typer(customers_app, name="customers")

# Customers saved in one transaction. The import holds one page, not the files: 100,000
# accounts with 25 contacts each took 4.7 GB read whole (bench/RESULTS.md, contacts_scale).
IMPORT_PAGE = 500
SHOWN_IDS = 20


@dataclass
class _Checked:
    """What the checking pass keeps: a count and the first ids, not the customers."""

    count: int = 0
    first_ids: list[str] = field(default_factory=list)


@customers_app.command("import")
@friendly
def import_customers(
    files: Annotated[
        list[Path], typer.Argument(help="Customer snapshot JSON files or .csv populations.")
    ],
) -> None:
    """Validate customer files and save them to the database (none if any file is bad)."""
    from retention.store.records import save_customers

    checked = _check(files)  # a bad row anywhere is refused here, before anything is saved
    with database() as engine:
        for page in _pages(files, IMPORT_PAGE):
            save_customers(engine, page)
    console.print(
        f"imported {_count(checked.count)} into {safe_url(get_settings().database_url)}: "
        f"{_some_ids(checked)}",
        soft_wrap=True,
    )


def _check(files: Sequence[Path]) -> _Checked:
    """Every customer of every file read and validated, one at a time; `InvalidInput` naming
    file and line for the first bad one."""
    checked = _Checked()
    for path in files:
        for customer in iter_customers(path):
            checked.count += 1
            if len(checked.first_ids) < SHOWN_IDS:
                checked.first_ids.append(customer.customer_id)
    return checked


def _pages(files: Sequence[Path], size: int) -> Iterator[list[CustomerSnapshot]]:
    """The files read again, `size` customers at a time. A file changed since `_check` is read
    as it is now: a bad row then stops the import with the pages before it saved."""
    customers = (customer for path in files for customer in iter_customers(path))
    while page := list(islice(customers, size)):
        yield page


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

    with database() as engine:
        snapshots = list_customers(engine)
    write_customers_csv(snapshots, csv_file)
    console.print(
        f"exported {_count(len(snapshots))} from {safe_url(get_settings().database_url)} "
        f"to {csv_file}",
        soft_wrap=True,
    )


def _count(n: int) -> str:
    return f"{n} customer{'s' * (n != 1)}"


def _some_ids(checked: _Checked) -> str:
    """The first ids, not ten thousand of them on one line."""
    more = checked.count - len(checked.first_ids)
    return ", ".join(checked.first_ids) + (f", ... ({more} more)" if more > 0 else "")


def customer_in_database(customer_id: str) -> CustomerSnapshot:
    from retention.store.records import load_customer

    with database() as engine:
        try:
            return load_customer(engine, customer_id)
        except CustomerNotFound as exc:
            raise CustomerNotFound(
                f"{exc}; add it first: starter.py customers import FILE"
            ) from exc
