"""`customers import|export`: the customers in the retention database."""

from __future__ import annotations

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
from retention.population import read_customers
from retention.runtime.settings import get_settings

if TYPE_CHECKING:
    pass

customers_app = typer.Typer(help="Customers in the retention database.", no_args_is_help=True)
app.add_typer(customers_app, name="customers")


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
    with database() as engine:
        for snapshot in snapshots:
            save_customer(engine, snapshot)
    console.print(
        f"imported {_count(snapshots)} into {safe_url(get_settings().database_url)}: "
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

    with database() as engine:
        snapshots = list_customers(engine)
    write_customers_csv(snapshots, csv_file)
    console.print(
        f"exported {_count(snapshots)} from {safe_url(get_settings().database_url)} to {csv_file}",
        soft_wrap=True,
    )


def _count(snapshots: list[CustomerSnapshot]) -> str:
    return f"{len(snapshots)} customer{'s' * (len(snapshots) != 1)}"


def _some_ids(snapshots: list[CustomerSnapshot], most: int = 20) -> str:
    """The first ids, not ten thousand of them on one line."""
    ids = ", ".join(s.customer_id for s in snapshots[:most])
    return ids + (f", ... ({len(snapshots) - most} more)" if len(snapshots) > most else "")


def customer_in_database(customer_id: str) -> CustomerSnapshot:
    from retention.store.records import load_customer

    with database() as engine:
        try:
            return load_customer(engine, customer_id)
        except CustomerNotFound as exc:
            raise CustomerNotFound(
                f"{exc}; add it first: starter.py customers import FILE"
            ) from exc
