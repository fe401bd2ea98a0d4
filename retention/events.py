"""What customer events do to the snapshot, so a checkpoint re-score sees the customer as now.

Each accepted event nudges the field it is evidence for; time without a login adds to
`days_since_last_login`. The rules are deliberately simple and documented in the README.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from retention.customer import CustomerEvent, CustomerSnapshot

Update = Callable[[CustomerSnapshot, CustomerEvent], None]


def _login(c: CustomerSnapshot, _e: CustomerEvent) -> None:
    c.usage.days_since_last_login = 0
    c.usage.logins_per_week += 1


def _feature_used(c: CustomerSnapshot, _e: CustomerEvent) -> None:
    c.usage.days_since_last_login = 0
    c.usage.features_used = min(c.usage.total_features, c.usage.features_used + 1)


def _email_opened(c: CustomerSnapshot, _e: CustomerEvent) -> None:
    c.engagement.email_open_rate = min(1.0, c.engagement.email_open_rate + 0.05)


def _meeting_booked(c: CustomerSnapshot, _e: CustomerEvent) -> None:
    c.relationship.executive_engaged = True


def _ticket_opened(c: CustomerSnapshot, _e: CustomerEvent) -> None:
    c.support.tickets_90d += 1


def _payment_failed(c: CustomerSnapshot, _e: CustomerEvent) -> None:
    c.financial.payment_delays_90d += 1


def _payment_succeeded(c: CustomerSnapshot, _e: CustomerEvent) -> None:
    c.financial.payment_delays_90d = max(0, c.financial.payment_delays_90d - 1)


def _nps_response(c: CustomerSnapshot, e: CustomerEvent) -> None:
    c.relationship.nps = int(e.data["score"])


# CSM work that puts the customer's executives in the room.
EXECUTIVE_TASKS = frozenset({"executive_call", "executive_outreach", "value_review"})


def _task_completed(c: CustomerSnapshot, e: CustomerEvent) -> None:
    if e.data.get("action") in EXECUTIVE_TASKS:
        c.relationship.executive_engaged = True


EFFECTS: dict[str, Update] = {
    "login": _login,
    "feature_used": _feature_used,
    "email_opened": _email_opened,
    "email_clicked": _email_opened,
    "meeting_booked": _meeting_booked,
    "ticket_opened": _ticket_opened,
    "payment_failed": _payment_failed,
    "payment_succeeded": _payment_succeeded,
    "nps_response": _nps_response,
    "task_completed": _task_completed,
}


def apply_events(
    snapshot: CustomerSnapshot, events: Iterable[CustomerEvent], elapsed_hours: float
) -> CustomerSnapshot:
    """The snapshot after `elapsed_hours` of journey time in which `events` happened."""
    now = snapshot.model_copy(deep=True)
    now.usage.days_since_last_login += int(elapsed_hours // 24)
    for event in events:
        effect = EFFECTS.get(event.type)
        if effect:
            effect(now, event)
    return now
