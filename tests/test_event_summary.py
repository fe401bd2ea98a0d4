"""What a journey remembers of its events: a bounded summary that answers what the rules ask."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from factories import make_customer
from hypothesis import given, settings
from hypothesis import strategies as st

from retention.customer import CustomerEvent, CustomerSnapshot
from retention.event_summary import (
    KEPT_MOMENTS,
    KEPT_RAW_EVENTS,
    EventRecord,
    EventSummary,
    summarize,
)
from retention.events import EXECUTIVE_TASKS, apply_effects, fold_events

T0 = datetime(2026, 12, 1, tzinfo=UTC)


def heard(summary: EventSummary, kind: str, at: datetime, count: int = 1, **data: Any) -> None:
    event = CustomerEvent(type=kind, data=data, count=count)  # type: ignore[arg-type]
    record = EventRecord(type=kind, data=data, count=count, received_at=at, accepted=True)
    summary.note(record, event)


def test_a_burst_in_one_moment_is_one_moment_and_counts_whole() -> None:
    summary = EventSummary()
    for _ in range(5_000):
        heard(summary, "feature_used", T0)

    tally = summary.tallies["feature_used"]
    assert (tally.count, len(tally.moments), tally.moments[0].count) == (5_000, 1, 5_000)
    assert len(summary.recent) == KEPT_RAW_EVENTS and summary.received == 5_000


def test_windowed_counts_are_exact_while_the_moments_fit() -> None:
    summary = EventSummary()
    for day in range(10):  # a login a day for ten days
        heard(summary, "login", T0 + timedelta(days=day))
    now = T0 + timedelta(days=9)

    assert summary.seen("login", now - timedelta(days=7)) == 8  # days 2..9
    assert summary.seen("login") == 10
    assert summary.types_since(now - timedelta(hours=1)) == ["login"]
    assert summary.seen("feature_used", now - timedelta(days=7)) == 0


def test_past_the_kept_moments_a_window_counts_at_least_the_kept_ones() -> None:
    summary = EventSummary()
    for minute in range(1_000):
        heard(summary, "login", T0 + timedelta(minutes=minute))

    assert len(summary.tallies["login"].moments) == KEPT_MOMENTS
    assert summary.seen("login", T0) == KEPT_MOMENTS  # a lower bound, above any sane threshold
    assert summary.seen("login") == 1_000  # the total stays exact


def test_a_coalesced_event_counts_as_many() -> None:
    summary = EventSummary()
    heard(summary, "login", T0, count=40)

    assert summary.seen("login", T0) == 40 and summary.accepted == 40
    assert summary.effects.logins == 40


def test_rejected_events_are_kept_for_operators_but_not_counted() -> None:
    summary = EventSummary()
    summary.note(EventRecord(type="(missing)", received_at=T0, accepted=False, reason="type"))

    assert (summary.received, summary.rejected, summary.accepted) == (1, 1, 0)
    assert summary.recent[0].reason == "type" and not summary.tallies


def test_a_journey_carried_with_every_event_is_folded_into_a_summary() -> None:
    listed = [
        {"type": "login", "received_at": T0.isoformat(), "accepted": True},
        {"type": "nps_response", "data": {"score": 9}, "received_at": T0.isoformat(),
         "accepted": True},
        {"type": "login", "received_at": T0.isoformat(), "accepted": False, "reason": "closed"},
    ]  # fmt: skip

    summary = summarize(listed)

    assert summary.seen("login") == 1 and summary.rejected == 1
    assert summary.effects.nps == 9 and len(summary.recent) == 3


# ---- folding is the same as applying the events one by one, in order ----------------------


def apply_one_by_one(snapshot: CustomerSnapshot, events: list[CustomerEvent]) -> CustomerSnapshot:
    """The reference: each event's effect on the snapshot in turn (as re-scores once did)."""
    now = snapshot.model_copy(deep=True)
    usage, engagement = now.usage, now.engagement
    for event in events:
        for _ in range(event.count):
            match event.type:
                case "login":
                    usage.days_since_last_login = 0
                    usage.logins_per_week += 1
                case "feature_used":
                    usage.days_since_last_login = 0
                    usage.features_used = min(usage.total_features, usage.features_used + 1)
                case "email_opened" | "email_clicked":
                    engagement.email_open_rate = min(1.0, engagement.email_open_rate + 0.05)
                case "meeting_booked":
                    now.relationship.executive_engaged = True
                case "ticket_opened":
                    now.support.tickets_90d += 1
                case "payment_failed":
                    now.financial.payment_delays_90d += 1
                case "payment_succeeded":
                    now.financial.payment_delays_90d = max(0, now.financial.payment_delays_90d - 1)
                case "nps_response":
                    now.relationship.nps = int(event.data["score"])
                case "task_completed" if event.data["action"] in EXECUTIVE_TASKS:
                    now.relationship.executive_engaged = True
    return now


KINDS = ["login", "feature_used", "email_opened", "email_clicked", "meeting_booked",
         "ticket_opened", "payment_failed", "payment_succeeded", "replied"]  # fmt: skip
events_st = st.lists(
    st.one_of(
        st.builds(
            lambda kind, n: CustomerEvent(type=kind, count=n),
            st.sampled_from(KINDS),
            st.integers(1, 3),
        ),
        st.builds(
            lambda score: CustomerEvent(type="nps_response", data={"score": score}),
            st.integers(0, 10),
        ),
        st.builds(
            lambda action: CustomerEvent(
                type="task_completed",
                data={"task_id": 1, "action": action, "completed_by": "csm"},
            ),
            st.sampled_from(["executive_call", "csm_checkin"]),
        ),
    ),
    max_size=40,
)


@settings(max_examples=200, deadline=None)
@given(events=events_st, delays=st.integers(0, 3))
def test_folded_events_change_the_snapshot_as_applying_them_in_order(
    events: list[CustomerEvent], delays: int
) -> None:
    customer = make_customer(financial={"payment_delays_90d": delays})

    folded = apply_effects(customer, fold_events(events), 0)
    expected = apply_one_by_one(customer, events)

    assert folded.model_dump(exclude={"engagement"}) == expected.model_dump(exclude={"engagement"})
    assert abs(folded.engagement.email_open_rate - expected.engagement.email_open_rate) < 1e-9
