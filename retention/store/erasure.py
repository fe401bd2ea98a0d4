"""Forget a customer: their personal data leaves every table and the outbox folder; the numbers
the KPIs count stay, under a random pseudonym that nothing links back to them.

What each table holds decides what happens to it (docs/data-protection.md):
- erased: who they are and what they were sent or said (customers, the snapshots journeys
  kept, outbox, delivery attempts, suppressions, webhooks received in the inbox, CSM tasks with
  their notes);
- pseudonymised: scores, predictions, interventions, opportunities, sentiment scores, journeys,
  their decisions and audit entries, whose customer and journey ids are replaced (an audit
  entry's free-text detail is cleared; who did what, and when, stays);
- portfolio scans, which name customers inside JSON lists: the failures of every scan run and,
  while a scan runs, of its pages' records are pseudonymised (their reason cleared: it may quote
  the stored snapshot); a page's at-risk list drops the customer, and a page cursor that names
  them moves to the customer id before theirs, which pages on from the same place.
"""

from __future__ import annotations

import secrets
import shutil
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field
from sqlalchemy import Engine
from sqlmodel import SQLModel, col, delete, func, select

from retention.journey_state import journey_id
from retention.store.append_only import ERASED_PREFIX
from retention.store.db import session
from retention.store.tables import (
    AuditRow,
    ChurnPredictionRow,
    CsmTaskRow,
    CustomerRow,
    DecisionRow,
    DeliveryAttemptRow,
    ExpansionOpportunityRow,
    HealthScoreRow,
    InboxRow,
    InterventionRow,
    JourneyRow,
    JourneySnapshotRow,
    OutboxRow,
    ScanPageRow,
    ScanRunRow,
    SentimentRow,
    SuppressionRow,
    table_name,
)

ERASED: tuple[type[SQLModel], ...] = (
    CustomerRow,
    JourneySnapshotRow,
    OutboxRow,
    SuppressionRow,
    InboxRow,
    CsmTaskRow,
)
PSEUDONYMISED: tuple[type[SQLModel], ...] = (
    HealthScoreRow,
    ChurnPredictionRow,
    InterventionRow,
    ExpansionOpportunityRow,
    SentimentRow,
    JourneyRow,
    DecisionRow,
    AuditRow,
)
# Columns that may carry the customer id, alone or inside a journey id (`retention-{id}/run`).
IDENTITY_COLUMNS = (
    "customer_id",
    "journey_id",
    "workflow_id",
    "journey_key",
    "entry_key",
    "assessment_key",
    "decision_key",
)
SCANS: tuple[type[ScanRunRow | ScanPageRow], ...] = (ScanRunRow, ScanPageRow)
ERASED_REASON = "erased"


class Erasure(BaseModel):
    customer_id: str
    pseudonym: str
    erased: dict[str, int] = Field(description="table → rows deleted")
    pseudonymised: dict[str, int] = Field(description="table → rows kept under the pseudonym")
    outbox_folders_removed: int = 0

    @property
    def found(self) -> bool:
        return any(self.erased.values()) or any(self.pseudonymised.values())


def forget_customer(
    engine: Engine, outbox_dir: Path, customer_id: str, actor: str, dry_run: bool = False
) -> Erasure:
    """Erase one customer in one transaction, then their outbox folder; the erasure itself is
    audited under the pseudonym. `dry_run` counts what would go and changes nothing."""
    with session(engine) as db:
        keys = list(db.exec(select(OutboxRow.idempotency_key).where(_of(OutboxRow, customer_id))))
        attempts = col(DeliveryAttemptRow.idempotency_key).in_(keys)
        scans = {table: _scans_naming(db, table, customer_id) for table in SCANS}
        erasure = Erasure(
            customer_id=customer_id,
            pseudonym=f"{ERASED_PREFIX}{secrets.token_hex(8)}",
            erased={table_name(t): _count(db, t, _of(t, customer_id)) for t in ERASED}
            | {table_name(DeliveryAttemptRow): _count(db, DeliveryAttemptRow, attempts)},
            pseudonymised={table_name(t): _count(db, t, _of(t, customer_id)) for t in PSEUDONYMISED}
            | {table_name(table): len(rows) for table, rows in scans.items()},
        )
        if dry_run or not erasure.found:
            return erasure
        for table, which in [(DeliveryAttemptRow, attempts)] + [
            (t, _of(t, customer_id)) for t in ERASED
        ]:
            db.exec(delete(table).where(which))  # type: ignore[call-overload]
        for table in PSEUDONYMISED:
            for row in db.exec(select(table).where(_of(table, customer_id))):
                _pseudonymise(row, customer_id, erasure.pseudonym)
                db.add(row)
        for scan in (row for rows in scans.values() for row in rows):
            _pseudonymise_scan(db, scan, customer_id, erasure.pseudonym)
            db.add(scan)
        detail = {"erased": erasure.erased, "pseudonymised": erasure.pseudonymised}
        db.add(
            AuditRow(
                actor=actor,
                action="customer_forgotten",
                customer_id=erasure.pseudonym,
                detail=detail,
            )
        )
    erasure.outbox_folders_removed = _remove_outbox(outbox_dir, customer_id)
    return erasure


def _of(table: type[SQLModel], customer_id: str) -> Any:
    return table.customer_id == customer_id  # type: ignore[attr-defined]  # each listed one has it


def _count(db: Any, table: type[SQLModel], which: Any) -> int:
    return int(db.exec(select(func.count()).select_from(table).where(which)).one())


def _pseudonymise(row: SQLModel, customer_id: str, pseudonym: str) -> None:
    journey, replacement = journey_id(customer_id), journey_id(pseudonym)
    for column in IDENTITY_COLUMNS:
        value = getattr(row, column, None)
        if value == customer_id:
            setattr(row, column, pseudonym)
        elif isinstance(value, str) and value.startswith(journey) and _ends_id(value, journey):
            setattr(row, column, replacement + value[len(journey) :])
    if isinstance(row, AuditRow):
        row.detail = {}  # free text (an operator's reason) may name people


def _scans_naming(
    db: Any, table: type[ScanRunRow | ScanPageRow], customer_id: str
) -> list[ScanRunRow | ScanPageRow]:
    """The table's rows that name the customer (a few scans a day, pages only while one runs:
    read whole rather than searched by each database's own JSON operators)."""
    return [row for row in db.exec(select(table)) if _scan_names(row, customer_id)]


def _scan_names(row: ScanRunRow | ScanPageRow, customer_id: str) -> bool:
    if any(failure["customer_id"] == customer_id for failure in row.failures):
        return True
    return isinstance(row, ScanPageRow) and customer_id in (*row.at_risk_ids, row.last_customer_id)


def _pseudonymise_scan(
    db: Any, row: ScanRunRow | ScanPageRow, customer_id: str, pseudonym: str
) -> None:
    row.failures = [
        {"customer_id": pseudonym, "reason": ERASED_REASON}
        if failure["customer_id"] == customer_id
        else failure
        for failure in row.failures
    ]
    if isinstance(row, ScanPageRow):
        row.at_risk_ids = [at_risk for at_risk in row.at_risk_ids if at_risk != customer_id]
        if row.last_customer_id == customer_id:
            # no customer is left between this one and theirs: the next page reads the same
            before = col(CustomerRow.customer_id) < customer_id
            row.last_customer_id = db.exec(
                select(func.max(CustomerRow.customer_id)).where(before)
            ).one()


def _ends_id(value: str, journey: str) -> bool:
    """`retention-c1`, `retention-c1/run`, `retention-c1:step`; not `retention-c10`."""
    return value[len(journey) : len(journey) + 1] in ("", "/", ":")


def _remove_outbox(outbox_dir: Path, customer_id: str) -> int:
    """The journey's folder of rendered messages (`<outbox>/retention-<id>/`)."""
    folder = outbox_dir / journey_id(customer_id)
    if folder.parent.resolve() != outbox_dir.resolve() or not folder.is_dir():
        return 0
    shutil.rmtree(folder)
    return 1
