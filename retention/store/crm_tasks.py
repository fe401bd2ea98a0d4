"""CSM tasks and their copy in the CRM: which are due a push, the push's attempt and answer,
completions read back from the CRM, and the poll's high-water mark.

A push takes its task with a conditional UPDATE (attempts + 1, a lease in `crm_retry_at`), so
two sweeps at once push it once; its answer is recorded only while that attempt is the task's
latest and nothing asked for another push meanwhile (a completion or a re-ask sets
`crm_retry_at` to None): the CRM then gets the newer state on the next pass.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import ColumnElement, Engine, and_, or_, update
from sqlmodel import col, select

from retention.store.csm_tasks import complete_in, completed_event
from retention.store.db import session
from retention.store.tables import CrmMarkRow, CsmTaskRow, InboxRow

PENDING, SYNCED, FAILED = "pending", "synced", "failed"
# The inbox source of task_completed events from a CRM: the ingest forwarder sends them on.
CRM_SOURCE = "crm"


@dataclass(frozen=True)
class PushResult:
    """What the CRM said, as the task row keeps it."""

    status: str
    crm_id: str | None = None
    url: str | None = None
    error: str | None = None
    retry_at: datetime | None = None


def _due(now: datetime) -> ColumnElement[bool]:
    """Never pushed and open, or pending and its wait (or a dead pusher's lease) is over."""
    status, retry = col(CsmTaskRow.crm_status), col(CsmTaskRow.crm_retry_at)
    return or_(
        and_(status.is_(None), col(CsmTaskRow.status) == "open"),
        and_(status == PENDING, or_(retry.is_(None), retry <= now)),
    )


def tasks_to_push(
    engine: Engine, now: datetime, limit: int, customer_id: str | None = None
) -> list[int]:
    query = select(CsmTaskRow.id).where(_due(now)).order_by(col(CsmTaskRow.id)).limit(limit)
    if customer_id is not None:
        query = query.where(col(CsmTaskRow.customer_id) == customer_id)
    with session(engine) as db:
        return [i for i in db.exec(query).all() if i is not None]


def begin_push(
    engine: Engine, task_id: int, provider: str, now: datetime, lease_until: datetime
) -> CsmTaskRow | None:
    """Take a due task for one push (None: not due, or another pusher took it first); the
    attempt is counted before the CRM is asked, so a push killed mid-way still shows."""
    with session(engine) as db:
        taken = db.exec(  # type: ignore[call-overload]
            update(CsmTaskRow)
            .where(col(CsmTaskRow.id) == task_id, _due(now))
            .values(
                crm_provider=provider,
                crm_status=PENDING,
                crm_attempts=CsmTaskRow.crm_attempts + 1,
                crm_retry_at=lease_until,
            )
        )
        if not taken.rowcount:
            return None
    with session(engine) as db:
        return db.get(CsmTaskRow, task_id)


def record_push(engine: Engine, pushed: CsmTaskRow, result: PushResult, now: datetime) -> bool:
    """Keep the CRM's id whatever happened since; the status only when `pushed` is still the
    task's latest attempt and no newer push was asked for (False: the next pass pushes again)."""
    latest = and_(
        col(CsmTaskRow.id) == pushed.id,
        col(CsmTaskRow.crm_attempts) == pushed.crm_attempts,
        col(CsmTaskRow.crm_retry_at).is_not(None),
    )
    with session(engine) as db:
        if result.crm_id is not None:
            db.exec(  # type: ignore[call-overload]
                update(CsmTaskRow)
                .where(col(CsmTaskRow.id) == pushed.id)
                .values(crm_id=result.crm_id, crm_url=result.url)
            )
        recorded = db.exec(  # type: ignore[call-overload]
            update(CsmTaskRow)
            .where(latest)
            .values(
                crm_status=result.status,
                crm_error=result.error,
                crm_retry_at=result.retry_at,
                crm_synced_at=now if result.status == SYNCED else CsmTaskRow.crm_synced_at,
            )
        )
        return bool(recorded.rowcount)


def retry_failed(engine: Engine, task_id: int | None = None) -> int:
    """Make failed pushes (one task's, or all) due again, e.g. once a revoked token is
    replaced; how many."""
    query = update(CsmTaskRow).where(col(CsmTaskRow.crm_status) == FAILED)
    if task_id is not None:
        query = query.where(col(CsmTaskRow.id) == task_id)
    with session(engine) as db:
        again = db.exec(query.values(crm_status=PENDING, crm_retry_at=None))  # type: ignore[call-overload]
        return int(again.rowcount)


def complete_from_crm(
    engine: Engine, provider: str, crm_id: str, at: datetime | None, key: str | None = None
) -> CsmTaskRow | None:
    """Complete our task that is `crm_id` (or has our `key`) in `provider`, and queue its
    task_completed event in the inbox in the same transaction: once, however often the CRM
    says so. None: not ours, or done before."""
    by = f"{provider} (CRM)"
    same = col(CsmTaskRow.crm_id) == crm_id
    if key is not None:  # a push whose answer was lost has no crm_id yet
        same = or_(same, col(CsmTaskRow.idempotency_key) == key)
    with session(engine) as db:
        query = select(CsmTaskRow).where(col(CsmTaskRow.crm_provider) == provider, same)
        task = db.exec(query).first()
        if task is None or task.id is None or not complete_in(db, task.id, by, None, at):
            return None
        db.refresh(task)
        db.add(_completion_row(task))
        return task


def _completion_row(task: CsmTaskRow) -> InboxRow:
    event = completed_event(task)
    return InboxRow(
        source=CRM_SOURCE,
        source_event_id=f"task-completed:{task.id}",
        kind="task_completed",
        customer_id=task.customer_id,
        event=event.model_dump(mode="json"),
        event_type=event.type,
        status="pending",
        delivery="forward",
        due_at=task.completed_at,
    )


def read_mark(engine: Engine, provider: str) -> datetime | None:
    with session(engine) as db:
        row = db.get(CrmMarkRow, provider)
        return row.mark if row is not None else None


def first_mark(engine: Engine, provider: str, now: datetime) -> datetime:
    """Where a first poll starts: when the oldest open task went to the CRM, else now."""
    query = (
        select(CsmTaskRow.crm_synced_at)
        .where(
            col(CsmTaskRow.crm_provider) == provider,
            col(CsmTaskRow.status) == "open",
            col(CsmTaskRow.crm_synced_at).is_not(None),
        )
        .order_by(col(CsmTaskRow.crm_synced_at))
    )
    with session(engine) as db:
        oldest = db.exec(query).first()
    return oldest or now


def keep_mark(engine: Engine, provider: str, mark: datetime) -> None:
    with session(engine) as db:
        row = db.get(CrmMarkRow, provider) or CrmMarkRow(provider=provider, mark=mark)
        row.mark = max(row.mark, mark)
        db.add(row)
