"""CSM tasks: what a step on a CSM channel leaves for the customer's CSM to do.

Made in the same transaction as the step's outbox row, keyed by its idempotency key, so a
retried activity or a replayed journey makes one task. A held-out customer's step makes none:
the holdout gets no intervention, a CSM's included.

A CSM wants one task per thing to do, not one per time a journey asked: when the customer has
an open task (snoozed or not) for the same action and reason, a new ask updates it instead of
making a second. The reason is the rule that put the step in the plan (`PlanStep.source`, e.g.
`strategy:critical_save` or `timeline:high`), so a re-plan under the same strategy re-asks the
same task while a different rule asking for the same action makes its own.
"""

from __future__ import annotations

from datetime import timedelta

from sqlmodel import Session, col, select

from retention.delivery.channels import CSM_CHANNELS
from retention.delivery.requests import DeliverRequest
from retention.recipients import recipients_for
from retention.store.tables import CsmTaskRow, OutboxRow

# The due time of a step planned before the rules set one (journey.yaml `csm_task_due`, an
# intervention's `due`): what the rules said then, docs/architecture.md "Design facts".
TASK_RESPONSE_TIME = timedelta(hours=24)


def file_task(db: Session, request: DeliverRequest, row: OutboxRow) -> str | None:
    """Add the task `row` stands for, or update the customer's open one for the same action and
    reason; then a note for the message saying which task it updated (None otherwise)."""
    task = task_for(request, row)
    if task is None:
        return None
    asked = open_task(db, task.customer_id, task.action, task.reason)
    if asked is None:
        db.add(task)
        return None
    db.add(reask(asked, task))
    return f"updated CSM task {asked.id}: already open for this customer, action and reason"


def task_for(request: DeliverRequest, row: OutboxRow) -> CsmTaskRow | None:
    """The task a captured message on a CSM channel stands for; None for any other message."""
    if row.channel not in CSM_CHANNELS or row.status != "captured":
        return None
    return CsmTaskRow(
        idempotency_key=row.idempotency_key,
        outbox_id=row.id,
        journey_key=request.journey_key,
        journey_id=request.journey_id,
        customer_id=request.customer.customer_id,
        step_id=request.step.step_id,
        action=request.step.action,
        channel=row.channel,
        assigned_csm=request.customer.profile.assigned_csm,
        summary=row.subject,
        reason=request.step.source or f"strategy:{request.strategy}",
        created_at=row.created_at,
        due_at=row.created_at + response_time(request),
        crm_account_id=request.customer.profile.crm_account_id,
        crm_contact_id=_crm_contact(request),
    )


def _crm_contact(request: DeliverRequest) -> str | None:
    """The CRM contact of the person the step names (its addressing), if they have one."""
    step = request.step
    named = recipients_for(step.addressing, step.channel, request.customer)
    return named[0].contact.crm_contact_id if named else None


def response_time(request: DeliverRequest) -> timedelta:
    hours = request.step.task_due_hours
    return TASK_RESPONSE_TIME if hours is None else timedelta(hours=hours)


def open_task(db: Session, customer_id: str, action: str, reason: str) -> CsmTaskRow | None:
    query = select(CsmTaskRow).where(
        col(CsmTaskRow.customer_id) == customer_id,
        col(CsmTaskRow.action) == action,
        col(CsmTaskRow.reason) == reason,
        col(CsmTaskRow.status) == "open",
    )
    return db.exec(query.with_for_update()).first()


def reask(task: CsmTaskRow, again: CsmTaskRow) -> CsmTaskRow:
    """`task` pointing at the newer ask `again`. It keeps the key of the message that made it,
    its snooze and the earlier due time: the customer has waited since the first ask."""
    task.outbox_id = again.outbox_id
    task.journey_key, task.journey_id = again.journey_key, again.journey_id
    task.step_id, task.channel, task.summary = again.step_id, again.channel, again.summary
    task.assigned_csm = again.assigned_csm
    task.crm_account_id, task.crm_contact_id = again.crm_account_id, again.crm_contact_id
    if task.crm_status is not None:  # in a CRM already: the sync updates it there too
        task.crm_status, task.crm_retry_at = "pending", None
    task.due_at = min(task.due_at, again.due_at)
    task.requests += 1
    task.updated_at = again.created_at
    return task
