"""Overdue CSM tasks: each alerted once, as an `internal` message in the outbox, the channel a
journey's own `alert_csm` step takes (rules/timelines.yaml), and posted to Slack when alerts
are on.

Marking the task and adding the message (and reserving its Slack alert) are one transaction,
and the mark is a conditional UPDATE: two runs at once alert each task once. The Slack alert is
posted after the commit; one a run could not post (it died, or Slack asked to wait) is posted
by a later run. A snoozed task is not overdue until it wakes.
"""

from __future__ import annotations

import logging
from datetime import datetime
from pathlib import Path

from sqlalchemy import Engine

from retention.delivery.alerting import AlertPoster
from retention.delivery.alerts import CsmAlert
from retention.delivery.outbox import write_captured
from retention.errors import ProviderUnavailable
from retention.store.csm_tasks import list_tasks, mark_overdue_alerted
from retention.store.db import session
from retention.store.tables import CsmTaskRow, OutboxRow, utcnow

log = logging.getLogger(__name__)


def alert_overdue(
    engine: Engine,
    outbox_dir: Path,
    now: datetime | None = None,
    alerts: AlertPoster | None = None,
) -> list[CsmTaskRow]:
    """Alert every open, awake task past its due time that was not alerted yet; the tasks this
    call alerted. With `alerts`, first post the Slack alerts earlier runs left unsent."""
    moment = now or utcnow()
    if alerts is not None:
        alerts.resend_pending(moment)
    due = [t for t in list_tasks(engine, overdue=True, now=moment) if t.overdue_alerted_at is None]
    return [task for task in due if _alert(engine, outbox_dir, task, moment, alerts)]


def _alert(
    engine: Engine,
    outbox_dir: Path,
    task: CsmTaskRow,
    now: datetime,
    alerts: AlertPoster | None,
) -> bool:
    assert task.id is not None
    with session(engine) as db:
        if not mark_overdue_alerted(db, task.id, now):
            return False  # another run alerted it, or it was completed or snoozed meanwhile
        url = alerts.journey_url(task.journey_id) if alerts is not None else None
        row, alert = overdue_messages(outbox_dir, task, now, url)
        write_captured(outbox_dir, row)
        db.add(row)
        reserved = None
        if alerts is not None and alert is not None:
            reserved = alerts.reserved(alert)
            db.add(reserved)
    log.warning("CSM task %s overdue: %s", task.id, row.subject)
    if alerts is not None and reserved is not None:
        _post(alerts, reserved)
    return True


def _post(alerts: AlertPoster, reserved: OutboxRow) -> None:
    try:
        alerts.send(reserved, resuming=False)
    except ProviderUnavailable as exc:
        log.warning("overdue alert %s not posted yet: %s", reserved.idempotency_key, exc)


def overdue_messages(
    outbox_dir: Path, task: CsmTaskRow, now: datetime, journey_url: str | None
) -> tuple[OutboxRow, CsmAlert | None]:
    """One overdue task's messages, from the same fields: the `internal` outbox row, and with
    the journey's URL (Slack alerts on) its Slack alert."""
    # one alert per task: the key is a second guard behind the conditional UPDATE
    key, who = f"csm-task:{task.id}:overdue", task.assigned_csm or "csm:unassigned"
    due = f"{task.due_at:%Y-%m-%d %H:%M} UTC"
    row = OutboxRow(
        idempotency_key=key,
        journey_key=task.journey_key,
        journey_id=task.journey_id,
        step_id=task.step_id,
        customer_id=task.customer_id,
        channel="internal",
        recipient=who,
        subject=f"Overdue: task {task.id}, {task.action} for {task.customer_id} (due {due})",
        body=(
            f"{task.summary}\n\nOwner: {who}. Asked {task.requests} time(s) by {task.reason}.\n"
            f"Done: starter.py tasks complete {task.id}; "
            f"not yet: starter.py tasks snooze {task.id} --until DATE --reason TEXT"
        ),
        status="captured",
        mode="capture",
        created_at=now,
        path=str(outbox_dir / task.journey_id / f"{task.step_id}.overdue.txt"),
    )
    if journey_url is None:
        return row, None
    alert = CsmAlert(
        key=f"{key}:slack",
        journey_key=task.journey_key,
        journey_id=task.journey_id,
        step_id=task.step_id,
        customer_id=task.customer_id,
        customer_name=task.customer_id,
        csm=task.assigned_csm,
        headline=f"Overdue: {task.action.replace('_', ' ')} for {task.customer_id}",
        reason=f"task {task.id} was due {due}: {task.summary}",
        fired_rules=[task.reason],
        journey_url=journey_url,
        crm_task_url=task.crm_url,
    )
    return row, alert
