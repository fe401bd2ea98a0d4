"""Keep personal data only as long as the settings say: rows older than their category's period
are deleted by the daily `data-purge` schedule (or `starter.py purge`).

Categories (defaults: docs/architecture.md, "Design facts"): usage 2 years (scores,
predictions, opportunities, journeys' decisions), support 1 year
(sentiment, the messages sent and their delivery attempts, CSM tasks, webhooks received),
financial 7 years (customers' snapshots, which hold contract and payment data; interventions
with their offers; journeys).
The audit log is never purged: it is the record of what was done.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field
from sqlalchemy import Engine
from sqlmodel import SQLModel, col, delete, func, select

from retention.runtime.settings import Settings
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
    SentimentRow,
    table_name,
)

Category = Literal["usage", "support", "financial"]

# table → (category, the column that dates a row)
DATED: dict[type[SQLModel], tuple[Category, str]] = {
    HealthScoreRow: ("usage", "scored_at"),
    ChurnPredictionRow: ("usage", "predicted_at"),
    ExpansionOpportunityRow: ("usage", "detected_at"),
    DecisionRow: ("usage", "decided_at"),  # made from the scores: kept as long
    SentimentRow: ("support", "detected_at"),
    OutboxRow: ("support", "created_at"),
    DeliveryAttemptRow: ("support", "at"),
    InboxRow: ("support", "received_at"),
    CsmTaskRow: ("support", "created_at"),  # made with an outbox message: kept as long
    CustomerRow: ("financial", "updated_at"),
    JourneySnapshotRow: ("financial", "saved_at"),
    InterventionRow: ("financial", "at"),
    JourneyRow: ("financial", "finished_at"),  # a running journey has none and stays
}


class RetentionPeriods(BaseModel):
    usage_days: int = Field(default=730, ge=1)
    support_days: int = Field(default=365, ge=1)
    financial_days: int = Field(default=2555, ge=1)

    def cutoff(self, category: Category, now: datetime) -> datetime:
        return now - timedelta(days=getattr(self, f"{category}_days"))


def configured_periods(settings: Settings) -> RetentionPeriods:
    return RetentionPeriods(
        usage_days=settings.keep_usage_days,
        support_days=settings.keep_support_days,
        financial_days=settings.keep_financial_days,
    )


class Purge(BaseModel):
    at: datetime
    periods: RetentionPeriods
    deleted: dict[str, int] = Field(description="table → rows deleted (or due, in a dry run)")
    outbox_files_removed: int = 0


def purge_expired(
    engine: Engine,
    outbox_dir: Path,
    periods: RetentionPeriods,
    now: datetime,
    dry_run: bool = False,
) -> Purge:
    """Delete every row older than its category's period, in one transaction, and audit it."""
    deleted: dict[str, int] = {}
    with session(engine) as db:
        files = _expired_files(db, periods.cutoff("support", now))
        for table, (category, column) in DATED.items():
            older = getattr(table, column) < periods.cutoff(category, now)
            deleted[table_name(table)] = db.exec(
                select(func.count()).select_from(table).where(older)
            ).one()
            if not dry_run:
                db.exec(delete(table).where(older))  # type: ignore[call-overload]
        if not dry_run:
            db.add(AuditRow(actor="system", action="data_purged", detail={"deleted": deleted}))
    removed = 0 if dry_run else _remove(files, outbox_dir)
    return Purge(at=now, periods=periods, deleted=deleted, outbox_files_removed=removed)


def _expired_files(db: Any, cutoff: datetime) -> list[str]:
    rows = db.exec(select(OutboxRow.path).where(col(OutboxRow.created_at) < cutoff))
    return [path for path in rows if path]


def _remove(paths: list[str], outbox_dir: Path) -> int:
    """Rendered messages whose rows went; only files inside the outbox folder."""
    root, removed = outbox_dir.resolve(), 0
    for path in map(Path, paths):
        if path.resolve().is_relative_to(root) and path.is_file():
            path.unlink()
            removed += 1
    return removed
