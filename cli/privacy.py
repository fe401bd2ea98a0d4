"""`forget` and `purge`: personal data kept only as long as it may be (docs/data-protection.md)."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from cli.app import app, console, database, friendly, with_client
from retention.runtime.operations import TemporalUnreachable, erase_journeys
from retention.runtime.settings import get_settings

YES = typer.Option("--yes", help="Do it; without it, only show what would go.")


@app.command()
@friendly
def forget(
    customer_id: Annotated[str, typer.Argument(help="The customer whose data to erase.")],
    yes: Annotated[bool, YES] = False,
    by: Annotated[str, typer.Option(help="Who asked, for the audit log.")] = "operator",
    database_only: Annotated[
        bool, typer.Option(help="Temporal is unreachable: erase the database now, it later.")
    ] = False,
    contact: Annotated[
        str | None,
        typer.Option(help="Only this contact of the customer; the account and the rest stay."),
    ] = None,
) -> None:
    """Erase a customer's personal data from every table, the outbox folder and Temporal's
    journey histories; anonymised numbers stay for the KPIs; the erasure is audited. With
    --contact, one person's data in the database only."""
    from retention.store.erasure import forget_customer

    if contact is not None:
        _forget_contact(customer_id, contact, yes=yes, by=by)
        return
    settings = get_settings()
    if yes and not database_only:
        runs = _erase_journeys(customer_id)
        console.print(f"Temporal: {runs} journey run{'s' * (runs != 1)} of {customer_id} deleted")
    with database() as engine:
        erasure = forget_customer(
            engine, settings.outbox_dir, customer_id, actor=f"cli:{by}", dry_run=not yes
        )
    if not erasure.found:
        console.print(f"{customer_id}: nothing in the database")
        return
    title = f"{customer_id}: {'erased' if yes else 'would be erased'}"
    console.print(_counts_table(title, erased=erasure.erased, pseudonymised=erasure.pseudonymised))
    if yes:
        console.print(f"forgotten: the numbers stay as {erasure.pseudonym}; audited")
    else:
        console.print("nothing changed: run again with --yes to erase")


def _forget_contact(customer_id: str, contact_id: str, *, yes: bool, by: str) -> None:
    from retention.store.contact_erasure import forget_contact

    with database() as engine:
        erasure = forget_contact(
            engine,
            get_settings().outbox_dir,
            customer_id,
            contact_id,
            actor=f"cli:{by}",
            dry_run=not yes,
        )
    title = f"{customer_id}, contact {contact_id}: {'erased' if yes else 'would be erased'}"
    console.print(_counts_table(title, rows=erasure.rows))
    if not yes:
        console.print("nothing changed: run again with --yes to erase")
        return
    console.print(
        f"forgotten: {erasure.outbox_files_removed} message files removed; audited. Temporal's "
        "journey histories keep the snapshot they started from until they are deleted "
        "(docs/data-protection.md)",
        soft_wrap=True,
    )


def _erase_journeys(customer_id: str) -> int:
    try:
        return with_client(lambda client: erase_journeys(client, customer_id))
    except TemporalUnreachable as exc:
        raise TemporalUnreachable(
            f"{exc}; nothing was erased (--database-only erases the database without it)"
        ) from exc


@app.command()
@friendly
def purge(yes: Annotated[bool, YES] = False) -> None:
    """Delete personal data older than RETENTION_KEEP_*_DAYS now (the worker's `data-purge`
    schedule does it daily)."""
    from datetime import UTC, datetime

    from retention.store.purge import configured_periods, purge_expired

    settings = get_settings()
    periods = configured_periods(settings)
    with database() as engine:
        done = purge_expired(
            engine, settings.outbox_dir, periods, datetime.now(UTC), dry_run=not yes
        )
    verb = "deleted" if yes else "due (nothing deleted: run again with --yes)"
    console.print(_counts_table(f"purge: rows {verb}", rows=done.deleted))
    console.print(
        f"kept: usage {periods.usage_days} d, support {periods.support_days} d, "
        f"financial {periods.financial_days} d; {done.outbox_files_removed} outbox files removed"
    )


def _counts_table(title: str, **columns: dict[str, int]) -> Table:
    """One row per database table, one column of row counts per heading."""
    table = Table(title=title, title_justify="left")
    table.add_column("table")
    for heading in columns:
        table.add_column(heading.replace("_", " "), justify="right")
    names = sorted({name for counts in columns.values() for name in counts})
    for name in names:
        table.add_row(name, *[str(counts.get(name, "-")) for counts in columns.values()])
    return table
