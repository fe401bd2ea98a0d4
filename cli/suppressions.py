"""`suppress`, `unsuppress`, `suppressions`: the list of channels a customer gets nothing on."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from cli.app import (
    app,
    console,
    database,
    fail,
    friendly,
    validated,
    when,
)
from retention.errors import CustomerNotFound
from retention.plan import CustomerChannel

if TYPE_CHECKING:
    from sqlalchemy import Engine

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
    from retention.store.suppressions import add_suppression
    from retention.suppression import SuppressRequest

    request = validated(
        SuppressRequest, customer_id=customer_id, channel=channel, reason=reason, source="cli"
    )
    with database() as engine:
        request.address = address or _known_address(engine, customer_id, request.channel)
        entry = add_suppression(engine, request)
    since = f"since {when(entry.at)} ({entry.reason}; {entry.source})"
    console.print(f"{customer_id}: {entry.channel} suppressed {since}", soft_wrap=True)


@app.command()
@friendly
def unsuppress(
    customer_id: str,
    channel: Annotated[str, typer.Option(help=_CHANNEL_HELP)] = "email",
) -> None:
    """Lift a customer's suppression on a channel: later steps may use it again."""
    from retention.store.suppressions import remove_suppression

    with database() as engine:
        removed = remove_suppression(engine, customer_id, channel)
    if not removed:
        fail(f"{customer_id} is not suppressed on {channel}")
    console.print(f"{customer_id}: {channel} no longer suppressed")


@app.command()
@friendly
def suppressions(
    customer_id: Annotated[str | None, typer.Argument(help="Only this customer's.")] = None,
) -> None:
    """List the suppression list (everyone's, or one customer's)."""
    from retention.store.suppressions import list_suppressions

    with database() as engine:
        rows = list_suppressions(engine, customer_id)
    if not rows:
        console.print("no suppressions")
        return
    table = Table(title=f"suppressions ({len(rows)})", title_justify="left")
    for column in ("customer", "channel", "address", "reason", "source", "since (UTC)"):
        table.add_column(column)
    for row in rows:
        table.add_row(
            row.customer_id, row.channel, row.address or "-", row.reason, row.source, when(row.at)
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
