"""CSM tasks in the database: list them, complete them once, note the journey heard of it."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from sqlalchemy import Engine, update
from sqlmodel import col, select

from retention.errors import RetentionError
from retention.store.db import session
from retention.store.tables import CsmTaskRow, utcnow

TaskStatus = Literal["open", "done", "all"]
UNASSIGNED = "unassigned"


class TaskNotFound(RetentionError):
    """No CSM task has this id."""


@dataclass(frozen=True)
class Completion:
    """The task as it is now, and whether this call completed it (False: it was done before)."""

    task: CsmTaskRow
    completed_now: bool


def list_tasks(
    engine: Engine,
    *,
    customer_id: str | None = None,
    csm: str | None = None,
    status: TaskStatus = "open",
) -> list[CsmTaskRow]:
    """Tasks by due time; `csm="unassigned"` finds those of customers without a CSM."""
    query = select(CsmTaskRow).order_by(col(CsmTaskRow.due_at), col(CsmTaskRow.id))
    if customer_id is not None:
        query = query.where(col(CsmTaskRow.customer_id) == customer_id)
    if csm == UNASSIGNED:
        query = query.where(col(CsmTaskRow.assigned_csm).is_(None))
    elif csm is not None:
        query = query.where(col(CsmTaskRow.assigned_csm) == csm)
    if status != "all":
        query = query.where(col(CsmTaskRow.status) == status)
    with session(engine) as db:
        return list(db.exec(query).all())


def complete_task(engine: Engine, task_id: int, by: str, note: str | None) -> Completion:
    """Mark the task done by `by`, once: the open → done switch is one conditional UPDATE, so
    two people completing it at the same moment complete it once."""
    with session(engine) as db:
        switched = db.exec(  # type: ignore[call-overload]
            update(CsmTaskRow)
            .where(col(CsmTaskRow.id) == task_id, col(CsmTaskRow.status) == "open")
            .values(status="done", completed_at=utcnow(), completed_by=by, note=note)
        )
        completed_now = bool(switched.rowcount)
    return Completion(_task(engine, task_id), completed_now)


def note_event_sent(engine: Engine, task_id: int, at: datetime | None = None) -> CsmTaskRow:
    with session(engine) as db:
        task = db.get(CsmTaskRow, task_id)
        if task is None:
            raise TaskNotFound(f"no CSM task {task_id}")
        task.event_sent_at = at or utcnow()
        db.add(task)
    return task


def _task(engine: Engine, task_id: int) -> CsmTaskRow:
    with session(engine) as db:
        task = db.get(CsmTaskRow, task_id)
    if task is None:
        raise TaskNotFound(
            f"no CSM task {task_id}: `starter.py tasks list --status all` lists them"
        )
    return task
