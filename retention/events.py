"""What customer events do to the snapshot, so a checkpoint re-score sees the customer as now.

Each accepted event nudges the field it is evidence for; time without a login adds to
`days_since_last_login`. The rules are deliberately simple and documented in docs/model.md
("Re-scoring").

A journey does not keep its events to replay them at every re-score: it folds each one into an
`EventEffects` as it arrives (a few numbers, whatever the volume, and the newest change of each
contact a `contact_changed` event named), and the re-score applies that.
Folding gives the same snapshot as applying the events one by one, in order.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from pydantic import BaseModel, Field

from retention.customer import (
    MAX_CONTACTS,
    Contact,
    CustomerEvent,
    CustomerSnapshot,
    champion_status_from,
    check_each_person_once,
    contact_change,
)

# CSM work that puts the customer's executives in the room.
EXECUTIVE_TASKS = frozenset({"executive_call", "executive_outreach", "value_review"})
EMAIL_OPEN_STEP = 0.05  # each open or click nudges the open rate up by this much
# The folded contact changes travel in the journey's state: at most this many people, twice an
# account's whole list (each replaced once); changes for more new ids are not kept.
MAX_CONTACT_CHANGES = 2 * MAX_CONTACTS


class EventEffects(BaseModel):
    """Everything the accepted events of a journey do to its snapshot, folded as they arrive."""

    active: bool = Field(default=False, description="a login or feature use: last login is now")
    logins: int = 0
    features_used: int = 0
    email_opens: int = Field(default=0, description="opens and clicks")
    executive_engaged: bool = False
    tickets_opened: int = 0
    # Payment delays change as x -> max(floor, x + add): a success clears one delay but never
    # goes below none, so the order of failures and successes matters; this keeps it exactly.
    payment_delays_add: int = 0
    payment_delays_floor: int = 0
    nps: int | None = Field(default=None, description="the latest NPS answer")
    contacts: dict[str, Contact | None] = Field(
        default_factory=dict,
        description="contact id → the contact as last changed, None: removed; in change order",
    )

    def add(self, event: CustomerEvent) -> None:
        effect = EFFECTS.get(event.type)
        if effect:
            effect(self, event)


Effect = Callable[[EventEffects, CustomerEvent], None]


def _login(e: EventEffects, event: CustomerEvent) -> None:
    e.active = True
    e.logins += event.count


def _feature_used(e: EventEffects, event: CustomerEvent) -> None:
    e.active = True
    e.features_used += event.count


def _email_opened(e: EventEffects, event: CustomerEvent) -> None:
    e.email_opens += event.count


def _meeting_booked(e: EventEffects, _event: CustomerEvent) -> None:
    e.executive_engaged = True


def _ticket_opened(e: EventEffects, event: CustomerEvent) -> None:
    e.tickets_opened += event.count


def _payment_failed(e: EventEffects, event: CustomerEvent) -> None:
    e.payment_delays_add += event.count
    e.payment_delays_floor += event.count


def _payment_succeeded(e: EventEffects, event: CustomerEvent) -> None:
    e.payment_delays_add -= event.count
    e.payment_delays_floor = max(0, e.payment_delays_floor - event.count)


def _nps_response(e: EventEffects, event: CustomerEvent) -> None:
    e.nps = int(event.data["score"])


def _task_completed(e: EventEffects, event: CustomerEvent) -> None:
    if event.data.get("action") in EXECUTIVE_TASKS:
        e.executive_engaged = True


def _contact_changed(e: EventEffects, event: CustomerEvent) -> None:
    contact_id, contact = contact_change(event.data)
    if contact_id not in e.contacts and len(e.contacts) >= MAX_CONTACT_CHANGES:
        return
    e.contacts.pop(contact_id, None)  # the newest change of each person counts, in its place
    e.contacts[contact_id] = contact


# The event types a re-score reads, and how.
EFFECTS: dict[str, Effect] = {
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
    "contact_changed": _contact_changed,
}


def fold_events(events: Iterable[CustomerEvent]) -> EventEffects:
    effects = EventEffects()
    for event in events:
        effects.add(event)
    return effects


def apply_effects(
    snapshot: CustomerSnapshot, effects: EventEffects, elapsed_hours: float
) -> CustomerSnapshot:
    """The snapshot after `elapsed_hours` of journey time in which the folded events happened."""
    now = snapshot.model_copy(deep=True)
    usage, relationship = now.usage, now.relationship
    usage.days_since_last_login = (
        0 if effects.active else usage.days_since_last_login + int(elapsed_hours // 24)
    )
    usage.logins_per_week += effects.logins
    usage.features_used = min(usage.total_features, usage.features_used + effects.features_used)
    engagement = now.engagement
    engagement.email_open_rate = min(
        1.0, engagement.email_open_rate + EMAIL_OPEN_STEP * effects.email_opens
    )
    relationship.executive_engaged = relationship.executive_engaged or effects.executive_engaged
    now.support.tickets_90d += effects.tickets_opened
    financial = now.financial
    financial.payment_delays_90d = max(
        effects.payment_delays_floor, financial.payment_delays_90d + effects.payment_delays_add
    )
    if effects.nps is not None:
        relationship.nps = effects.nps
    if effects.contacts:
        before, now.contacts = now.contacts, _changed_contacts(now.contacts, effects.contacts)
        # As the snapshot's own check sets it, the contacts being the fresher fact; the people
        # removed count as gone, so the last contact leaving is not an empty list's "unknown".
        kept = {contact.contact_id for contact in now.contacts}
        gone = [c.model_copy(update={"active": False}) for c in before if c.contact_id not in kept]
        status = champion_status_from([*now.contacts, *gone], relationship.champion_status)
        relationship.champion_status = status
    return now


def _changed_contacts(contacts: list[Contact], changes: dict[str, Contact | None]) -> list[Contact]:
    """`contacts` with each change applied in order: upserted by contact id (a new person at
    the end), or removed. A change that would list a person twice (an email another contact
    has) or more than MAX_CONTACTS people is left out: the snapshot stays valid."""
    people = {contact.contact_id: contact for contact in contacts}
    for contact_id, contact in changes.items():
        if contact is None:
            people.pop(contact_id, None)
            continue
        changed = {**people, contact_id: contact}
        try:
            check_each_person_once(list(changed.values()))
        except ValueError:
            continue
        if len(changed) <= MAX_CONTACTS:
            people = changed
    return list(people.values())
