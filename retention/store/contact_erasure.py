"""Forget one person at an account: their personal data leaves the stored snapshots, the
messages sent to them, their suppressions and the webhooks that named them; the account and
everyone else at it stay (docs/data-protection.md, "Forgetting one contact").

What goes follows the account's erasure (retention/store/erasure.py) for the rows that are
theirs alone: deleted, like the account's (outbox rows to their address with their files and
delivery attempts, suppressions of their address, inbox rows naming them); the account's
stored snapshots lose only their entry in `contacts`. The audit log is left as it is: the
database lets an update only pseudonymise a whole customer (retention/store/append_only.py).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field
from sqlalchemy import Engine
from sqlmodel import Session, col, select

from retention.customer import Contact
from retention.errors import InvalidInput
from retention.store.db import session
from retention.store.tables import (
    AuditRow,
    CustomerRow,
    DeliveryAttemptRow,
    InboxRow,
    JourneySnapshotRow,
    OutboxRow,
    SuppressionRow,
    customer_columns,
    table_name,
    whole_snapshot,
)


class ContactErasure(BaseModel):
    customer_id: str
    contact_id: str
    rows: dict[str, int] = Field(description="table → rows deleted, or changed to drop them")
    outbox_files_removed: int = 0


def forget_contact(
    engine: Engine,
    outbox_dir: Path,
    customer_id: str,
    contact_id: str,
    actor: str,
    dry_run: bool = False,
) -> ContactErasure:
    """Erase one contact of a customer in one transaction, then the message files sent to them;
    audited on the account (`contact_forgotten`, counts only). `dry_run` changes nothing."""
    with session(engine) as db:
        snapshots = _snapshots(db, customer_id)
        contact = _contact(snapshots, customer_id, contact_id)
        addresses = [a for a in (contact.email, contact.phone) if a is not None]
        outbox = _outbox_to(db, customer_id, addresses)
        found = _Found(
            snapshots=snapshots,
            outbox=outbox,
            attempts=_attempts(db, [row.idempotency_key for row in outbox]),
            suppressions=_suppressions(db, customer_id, addresses),
            inbox=_naming(db, customer_id, contact),
        )
        erasure = ContactErasure(
            customer_id=customer_id, contact_id=contact_id, rows=found.counts()
        )
        if dry_run:
            return erasure
        found.erase(db, contact_id)
        db.add(
            AuditRow(
                actor=actor,
                action="contact_forgotten",
                customer_id=customer_id,
                detail={"erased": erasure.rows},  # no id: the entry must not name them
            )
        )
    erasure.outbox_files_removed = _remove_files(outbox_dir, outbox)
    return erasure


@dataclass
class _Found:
    """The rows that hold the contact, by what happens to them."""

    snapshots: list[CustomerRow | JourneySnapshotRow]  # lose their entry
    outbox: list[OutboxRow]  # deleted, with their attempts
    attempts: list[DeliveryAttemptRow]
    suppressions: list[SuppressionRow]
    inbox: list[InboxRow]

    def counts(self) -> dict[str, int]:
        return {
            table_name(CustomerRow): sum(isinstance(r, CustomerRow) for r in self.snapshots),
            table_name(JourneySnapshotRow): sum(
                isinstance(r, JourneySnapshotRow) for r in self.snapshots
            ),
            table_name(OutboxRow): len(self.outbox),
            table_name(DeliveryAttemptRow): len(self.attempts),
            table_name(SuppressionRow): len(self.suppressions),
            table_name(InboxRow): len(self.inbox),
        }

    def erase(self, db: Session, contact_id: str) -> None:
        """Their entry out of each snapshot; every row that is theirs deleted."""
        for row in self.snapshots:
            document = _document(row)
            contacts = document.get("contacts", [])
            kept = [c for c in contacts if c.get("contact_id") != contact_id]
            document = {**document, "contacts": kept}  # new dicts: the JSON is rewritten
            if isinstance(row, CustomerRow):
                columns = customer_columns(document)
                row.snapshot, row.contacts = columns["snapshot"], columns["contacts"]
            else:
                row.snapshot = document
            db.add(row)
        for gone in [*self.attempts, *self.outbox, *self.suppressions, *self.inbox]:
            db.delete(gone)


def _snapshots(db: Session, customer_id: str) -> list[CustomerRow | JourneySnapshotRow]:
    """The customer's row and the snapshots its journeys kept."""
    customer = db.exec(select(CustomerRow).where(col(CustomerRow.customer_id) == customer_id))
    kept = db.exec(
        select(JourneySnapshotRow).where(col(JourneySnapshotRow.customer_id) == customer_id)
    )
    return [*customer, *kept]


def _contact(
    snapshots: list[CustomerRow | JourneySnapshotRow], customer_id: str, contact_id: str
) -> Contact:
    """The contact as the stored snapshots list them; InvalidInput naming what is missing. The
    primary contact is refused: the profile is the account's, forget the customer for them."""
    if not snapshots:
        raise InvalidInput(f"CUSTOMER_ID: customer {customer_id!r} is not in the database")
    for row in snapshots:
        document = _document(row)
        for listed in document.get("contacts", []):
            if listed.get("contact_id") != contact_id:
                continue
            contact = Contact.model_validate(listed)
            if contact.email.casefold() == str(document["profile"]["email"]).casefold():
                raise InvalidInput(
                    f"--contact {contact_id!r} is the primary contact (profile.email) of "
                    f"{customer_id!r}: forget the customer, or change its profile first"
                )
            return contact
    raise InvalidInput(f"--contact {contact_id!r}: not a contact of customer {customer_id!r}")


def _document(row: CustomerRow | JourneySnapshotRow) -> dict[str, Any]:
    """The whole snapshot a row keeps: a customer's contacts are a column of their own."""
    if isinstance(row, CustomerRow):
        return whole_snapshot(row.snapshot, row.contacts)
    return row.snapshot


def _outbox_to(db: Session, customer_id: str, addresses: list[str]) -> list[OutboxRow]:
    query = select(OutboxRow).where(
        col(OutboxRow.customer_id) == customer_id, col(OutboxRow.recipient).in_(addresses)
    )
    return list(db.exec(query))


def _attempts(db: Session, keys: list[str]) -> list[DeliveryAttemptRow]:
    query = select(DeliveryAttemptRow).where(col(DeliveryAttemptRow.idempotency_key).in_(keys))
    return list(db.exec(query))


def _suppressions(db: Session, customer_id: str, addresses: list[str]) -> list[SuppressionRow]:
    """Their address's entries: erased with them, as the account's go with the account."""
    query = select(SuppressionRow).where(
        col(SuppressionRow.customer_id) == customer_id, col(SuppressionRow.address).in_(addresses)
    )
    return list(db.exec(query))


def _naming(db: Session, customer_id: str, contact: Contact) -> list[InboxRow]:
    """The customer's webhooks whose event names the contact: their email, phone, or id as a
    contact id (a customer's webhooks: few, read whole rather than by each database's JSON
    operators). Not their name: a name is no proof it is them."""
    marks = [contact.email, f'"contact_id": "{contact.contact_id}"']
    folded = [mark.casefold() for mark in marks + ([contact.phone] if contact.phone else [])]
    query = select(InboxRow).where(col(InboxRow.customer_id) == customer_id)
    return [
        row
        for row in db.exec(query)
        if any(mark in json.dumps(row.event or {}).casefold() for mark in folded)
    ]


def _remove_files(outbox_dir: Path, rows: list[OutboxRow]) -> int:
    """The captured messages to them, when under the outbox folder."""
    removed = 0
    for row in rows:
        path = Path(row.path) if row.path else None
        if path and path.resolve().is_relative_to(outbox_dir.resolve()) and path.is_file():
            path.unlink()
            removed += 1
    return removed
