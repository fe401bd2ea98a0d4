"""CSM tasks: what a step on a CSM channel leaves for the customer's CSM to do.

Made in the same transaction as the step's outbox row, keyed by its idempotency key, so a
retried activity or a replayed journey makes one task. A held-out customer's step makes none:
the holdout gets no intervention, a CSM's included.
"""

from __future__ import annotations

from datetime import timedelta

from retention.delivery.channels import CSM_CHANNELS
from retention.delivery.requests import DeliverRequest
from retention.store.tables import CsmTaskRow, OutboxRow

# docs/architecture.md, "Design facts": a high-risk customer hears from their CSM within 24 hours.
TASK_RESPONSE_TIME = timedelta(hours=24)


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
        created_at=row.created_at,
        due_at=row.created_at + TASK_RESPONSE_TIME,
    )
