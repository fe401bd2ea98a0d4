"""What a journey remembers of its customer's events: a bounded summary, never every event.

A busy account sends thousands of events a day; the journey's state, its `state` answer and
what continue-as-new carries must stay small whatever the volume. So each event is folded into:
- a tally per event type: how many, first and last seen, and the most recent moments it arrived
  (with how many arrived at each), enough to count "at least N within the last H hours";
- what the events do to the snapshot at the next re-score (`EventEffects`);
- the most recent raw events, for operators (`show`, Temporal UI).
Windowed counts are exact while a type arrived at no more than `KEPT_MOMENTS` distinct moments
within the window (events handled in one workflow task share a moment); past that they are a
lower bound that already exceeds any threshold a rule can sensibly set.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field

from retention.customer import CustomerEvent
from retention.events import EventEffects

KEPT_RAW_EVENTS = 20  # the most recent events shown to operators, accepted or not
KEPT_MOMENTS = 32  # per event type: the most recent arrival moments kept for windowed counts


class EventRecord(BaseModel):
    type: str
    received_at: datetime
    at: datetime | None = None
    data: dict[str, Any] = Field(default_factory=dict)
    count: int = Field(default=1, description="events this record stands for (coalesced)")
    accepted: bool
    reason: str | None = None


class Moment(BaseModel):
    at: datetime = Field(description="when the journey received them")
    count: int


class EventTally(BaseModel):
    count: int = 0
    first_at: datetime | None = None
    last_at: datetime | None = None
    moments: list[Moment] = Field(default_factory=list, description="newest last")

    def add(self, at: datetime, count: int) -> None:
        self.count += count
        self.first_at = self.first_at or at
        self.last_at = at
        if self.moments and self.moments[-1].at == at:
            self.moments[-1].count += count
            return
        self.moments.append(Moment(at=at, count=count))
        del self.moments[:-KEPT_MOMENTS]

    def since(self, since: datetime | None) -> int:
        if since is None:
            return self.count
        return sum(m.count for m in self.moments if m.at >= since)


class EventSummary(BaseModel):
    """Every event a journey heard, folded; see the module docstring."""

    received: int = Field(default=0, description="events heard, accepted or not")
    rejected: int = Field(default=0, description="malformed, or heard after the journey ended")
    tallies: dict[str, EventTally] = Field(
        default_factory=dict, description="accepted events per type"
    )
    effects: EventEffects = Field(default_factory=EventEffects)
    recent: list[EventRecord] = Field(default_factory=list, description="newest last")

    def note(self, record: EventRecord, event: CustomerEvent | None = None) -> None:
        """Fold `record` in; `event` (the parsed event) when it was accepted."""
        self.received += record.count
        self.recent.append(record)
        del self.recent[:-KEPT_RAW_EVENTS]
        if event is None or not record.accepted:
            self.rejected += record.count
            return
        self.tallies.setdefault(record.type, EventTally()).add(record.received_at, record.count)
        self.effects.add(event)

    def seen(self, event_type: str, since: datetime | None = None) -> int:
        """Accepted events of `event_type` received at or after `since` (ever, if None)."""
        tally = self.tallies.get(event_type)
        return tally.since(since) if tally else 0

    def types_since(self, since: datetime) -> list[str]:
        return sorted(t for t, tally in self.tallies.items() if tally.since(since))

    @property
    def accepted(self) -> int:
        return sum(tally.count for tally in self.tallies.values())


def summarize(records: list[dict[str, Any]] | list[EventRecord]) -> EventSummary:
    """The summary of an event list as journeys kept it before summaries (their carried state)."""
    summary = EventSummary()
    for raw in records:
        record = EventRecord.model_validate(raw)
        event = None
        if record.accepted:
            event = CustomerEvent.model_validate(
                {"type": record.type, "at": record.at, "data": record.data, "count": record.count}
            )
        summary.note(record, event)
    return summary
