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
from retention.delivery.alerts import overdue_task_alert
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
        row = overdue_alert(outbox_dir, task, now)
        write_captured(outbox_dir, row)
        db.add(row)
        reserved = None
        if alerts is not None:
            reserved = alerts.reserved(
                overdue_task_alert(task, alerts.journey_url(task.journey_id))
            )
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


def overdue_alert(outbox_dir: Path, task: CsmTaskRow, now: datetime) -> OutboxRow:
    who = task.assigned_csm or "csm:unassigned"
    return OutboxRow(
        # one alert per task: the key is a second guard behind the conditional UPDATE
        idempotency_key=f"csm-task:{task.id}:overdue",
        journey_key=task.journey_key,
        journey_id=task.journey_id,
        step_id=task.step_id,
        customer_id=task.customer_id,
        channel="internal",
        recipient=who,
        subject=(
            f"Overdue: task {task.id}, {task.action} for {task.customer_id} "
            f"(due {task.due_at:%Y-%m-%d %H:%M} UTC)"
        ),
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
