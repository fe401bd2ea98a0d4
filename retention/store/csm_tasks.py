"""CSM tasks in the database: list them, snooze them, complete them once, note the journey heard
of it, and mark an overdue one alerted once.

A snoozed task is an open task with `snoozed_until` in the future: nothing wakes it early (a
journey asking again updates it, delivery/task_filing.py), and when that moment passes it is
simply open again, with no job needed to wake it."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Literal, get_args

from sqlalchemy import ColumnElement, Engine, case, or_, update
from sqlmodel import Session, col, select

from retention.customer import CustomerEvent
from retention.errors import InvalidInput, RetentionError
from retention.store.db import session
from retention.store.tables import CsmTaskRow, utcnow

# open: to do now (not snoozed); snoozed: open, but held until `snoozed_until`
TaskStatus = Literal["open", "snoozed", "done", "all"]
TASK_STATUSES: tuple[TaskStatus, ...] = get_args(TaskStatus)
UNASSIGNED = "unassigned"


class TaskNotFound(RetentionError):
    """No CSM task has this id."""


class TaskNotOpen(InvalidInput):
    """The task is done: there is nothing left to hold."""


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
    overdue: bool = False,
    now: datetime | None = None,
) -> list[CsmTaskRow]:
    """Tasks by due time; `csm="unassigned"` finds those of customers without a CSM; `overdue`
    keeps the open, awake ones past their due time, whatever `status` says."""
    moment = now or utcnow()
    query = select(CsmTaskRow).order_by(col(CsmTaskRow.due_at), col(CsmTaskRow.id))
    if customer_id is not None:
        query = query.where(col(CsmTaskRow.customer_id) == customer_id)
    if csm == UNASSIGNED:
        query = query.where(col(CsmTaskRow.assigned_csm).is_(None))
    elif csm is not None:
        query = query.where(col(CsmTaskRow.assigned_csm) == csm)
    if overdue:
        query = query.where(_awake(moment), col(CsmTaskRow.due_at) < moment)
    elif status == "open":
        query = query.where(_awake(moment))
    elif status == "snoozed":
        query = query.where(_is_open(), col(CsmTaskRow.snoozed_until) > moment)
    elif status == "done":
        query = query.where(col(CsmTaskRow.status) == "done")
    with session(engine) as db:
        return list(db.exec(query).all())


def is_snoozed(task: CsmTaskRow, now: datetime | None = None) -> bool:
    until = task.snoozed_until
    return task.status == "open" and until is not None and until > (now or utcnow())


def snooze_task(
    engine: Engine, task_id: int, until: datetime, reason: str, now: datetime | None = None
) -> CsmTaskRow:
    """Hold an open task until `until` (a snoozed one: until the new moment). A journey asking
    for it again meanwhile updates it without waking it."""
    if until <= (now or utcnow()):
        raise InvalidInput(f"--until: {until:%Y-%m-%d %H:%M} UTC is not in the future")
    if not reason.strip():
        raise InvalidInput("--reason: say why the task waits")
    with session(engine) as db:
        held = db.exec(  # type: ignore[call-overload]
            update(CsmTaskRow)
            .where(col(CsmTaskRow.id) == task_id, _is_open())
            .values(snoozed_until=until, snooze_reason=reason.strip())
        )
        snoozed = bool(held.rowcount)
    task = _task(engine, task_id)
    if not snoozed:
        raise TaskNotOpen(f"task {task_id} is done: only an open task can be snoozed")
    return task


def complete_task(engine: Engine, task_id: int, by: str, note: str | None) -> Completion:
    """Mark the task done by `by`, once: the open → done switch is one conditional UPDATE, so
    two people completing it at the same moment complete it once."""
    with session(engine) as db:
        completed_now = complete_in(db, task_id, by, note)
    return Completion(_task(engine, task_id), completed_now)


def complete_in(
    db: Session, task_id: int, by: str, note: str | None, at: datetime | None = None
) -> bool:
    """Complete an open task in the caller's transaction (False: done before). A task in a CRM
    is due a push there, which closes it (docs/crm.md)."""
    in_crm = col(CsmTaskRow.crm_status).is_not(None)
    switched = db.exec(  # type: ignore[call-overload]
        update(CsmTaskRow)
        .where(col(CsmTaskRow.id) == task_id, col(CsmTaskRow.status) == "open")
        .values(
            status="done",
            completed_at=at or utcnow(),
            completed_by=by,
            note=note,
            crm_status=case((in_crm, "pending"), else_=None),
            crm_retry_at=None,
        )
    )
    return bool(switched.rowcount)


def completed_event(task: CsmTaskRow) -> CustomerEvent:
    """The task_completed event a done task's journey gets."""
    assert task.id is not None and task.completed_by is not None
    return CustomerEvent(
        type="task_completed",
        at=task.completed_at,
        data={"task_id": task.id, "action": task.action, "completed_by": task.completed_by}
        | ({"note": task.note} if task.note else {}),
    )


def note_event_sent(engine: Engine, task_id: int, at: datetime | None = None) -> CsmTaskRow:
    with session(engine) as db:
        task = db.get(CsmTaskRow, task_id)
        if task is None:
            raise TaskNotFound(f"no CSM task {task_id}")
        task.event_sent_at = at or utcnow()
        db.add(task)
    return task


def mark_overdue_alerted(db: Session, task_id: int, now: datetime) -> bool:
    """Mark an overdue task alerted in the caller's transaction; False when it was already (or
    is no longer open, overdue and awake): of two runs at once, one marks it, so one alerts."""
    marked = db.exec(  # type: ignore[call-overload]
        update(CsmTaskRow)
        .where(
            col(CsmTaskRow.id) == task_id,
            col(CsmTaskRow.overdue_alerted_at).is_(None),
            col(CsmTaskRow.due_at) < now,
            _awake(now),
        )
        .values(overdue_alerted_at=now)
    )
    return bool(marked.rowcount)


def _is_open() -> ColumnElement[bool]:
    return col(CsmTaskRow.status) == "open"


def _awake(now: datetime) -> ColumnElement[bool]:
    """Open and not snoozed at `now`."""
    snooze = col(CsmTaskRow.snoozed_until)
    return _is_open() & or_(snooze.is_(None), snooze <= now)


def _task(engine: Engine, task_id: int) -> CsmTaskRow:
    with session(engine) as db:
        task = db.get(CsmTaskRow, task_id)
    if task is None:
        raise TaskNotFound(
            f"no CSM task {task_id}: `starter.py tasks list --status all` lists them"
        )
    return task


def crm_url_of(engine: Engine, outbox_id: str | None) -> str | None:
    """Where the CRM shows the task the outbox row `outbox_id` made or asked again; None when
    it is not (yet) in a CRM."""
    if outbox_id is None:
        return None
    with session(engine) as db:
        query = select(CsmTaskRow.crm_url).where(col(CsmTaskRow.outbox_id) == outbox_id)
        return db.exec(query).first()
