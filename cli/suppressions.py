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
from retention.errors import CustomerNotFound, InvalidInput
from retention.plan import CustomerChannel

if TYPE_CHECKING:
    from sqlalchemy import Engine

    from retention.suppression import SuppressRequest

_CHANNEL_HELP = "email, sms, phone or in_app (CSM work is never suppressed)."


_CONTACT_HELP = "Only this contact (their email, or phone for sms/phone); the rest still hear."


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
    contact: Annotated[str | None, typer.Option(help=_CONTACT_HELP)] = None,
) -> None:
    """Stop a channel for a customer, or one of its contacts, across all journeys; their steps
    use the fallback."""
    from retention.store.suppressions import add_suppression

    request = _request(customer_id, channel, reason, contact)
    if address is not None and contact is not None:
        raise InvalidInput("--address: not with --contact, whose own address is suppressed")
    with database() as engine:
        if contact is not None:
            request.person = _contact_address(engine, request, contact)
        else:
            request.address = address or _known_address(engine, customer_id, request.channel)
        entry = add_suppression(engine, request)
    whom = f"{customer_id} ({contact}, {entry.person})" if contact else customer_id
    since = f"since {when(entry.at)} ({entry.reason}; {entry.source})"
    console.print(f"{whom}: {entry.channel} suppressed {since}", soft_wrap=True)


@app.command()
@friendly
def unsuppress(
    customer_id: str,
    channel: Annotated[str, typer.Option(help=_CHANNEL_HELP)] = "email",
    contact: Annotated[str | None, typer.Option(help="Only this contact's suppression.")] = None,
) -> None:
    """Lift a customer's (or one contact's) suppression on a channel: later steps may use it
    again."""
    from retention.store.suppressions import remove_suppression
    from retention.suppression import WHOLE_ACCOUNT

    request = _request(customer_id, channel, "operator", contact)
    with database() as engine:
        person = _contact_address(engine, request, contact) if contact else WHOLE_ACCOUNT
        removed = remove_suppression(engine, customer_id, request.channel, person)
    whom = f"{customer_id} ({contact}, {person})" if contact else customer_id
    if not removed:
        fail(f"{whom} is not suppressed on {channel}")
    console.print(f"{whom}: {channel} no longer suppressed")


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
    for column in ("customer", "channel", "whom", "address", "reason", "source", "since (UTC)"):
        table.add_column(column)
    for row in rows:
        whom = "one person" if row.person else "account"
        table.add_row(
            row.customer_id,
            row.channel,
            whom,
            row.address or "-",
            row.reason,
            row.source,
            when(row.at),
        )
    console.print(table)


def _request(customer_id: str, channel: str, reason: str, contact: str | None) -> SuppressRequest:
    from retention.suppression import SuppressRequest

    return validated(
        SuppressRequest,
        customer_id=customer_id,
        channel=channel,
        reason=reason,
        contact_id=contact,
        source="cli",
    )


def _known_address(engine: Engine, customer_id: str, channel: CustomerChannel) -> str | None:
    from retention.delivery.channels import address_of
    from retention.store.records import load_customer

    try:
        return address_of(channel, load_customer(engine, customer_id))
    except CustomerNotFound:
        return None


def _contact_address(engine: Engine, request: SuppressRequest, contact_id: str) -> str:
    """The contact's address on the request's channel, from the customer as known here."""
    from retention.store.records import customer_as_known
    from retention.suppression import contact_named, person_on

    customer = customer_as_known(engine, request.customer_id)
    if customer is None:
        raise InvalidInput(
            f"CUSTOMER_ID: customer {request.customer_id!r} is not in the database, so "
            f"--contact {contact_id!r} cannot be found"
        )
    return person_on(request.channel, contact_named(customer, contact_id))
