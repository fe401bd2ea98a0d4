"""A customer's account timeline: everything the database recorded about one customer, newest
first, for CSMs and CS leaders (`starter.py timeline`, and a page beside the HTML report).

Pure: `build_timeline` turns rows read by `reader.read_timeline` into the timeline: scores,
journeys, every decision of their rule sets (strategy before and after, the rules that fired,
the rule-set version, why), messages, CSM tasks, events (webhooks from the ingest service and
events sent with `starter.py event`, by source) and the audit log (operator commands given with
`starter.py` and who gave them). What is not recorded in the database cannot appear here:
commands given in Temporal UI, events other programs send with `send_event`, and decisions made
before the `journey_decisions` table existed (docs/operators.md)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import Annotated, Any, Literal, cast

from pydantic import BaseModel, Field, computed_field

from retention.customer import CUSTOMER_ID_PATTERN
from retention.errors import CustomerNotFound, RetentionError
from retention.store.decisions import DecisionReason
from retention.store.tables import (
    AuditRow,
    ChurnPredictionRow,
    CsmTaskRow,
    DecisionRow,
    HealthScoreRow,
    InboxRow,
    JourneyRow,
    OutboxRow,
)

EntryKind = Literal["score", "journey", "decision", "message", "task", "event", "audit"]
KINDS: tuple[EntryKind, ...] = (
    "score", "journey", "decision", "message", "task", "event", "audit",
)  # fmt: skip
# How a decision's `reason` reads.
WHY_DECIDED: dict[DecisionReason, str] = {
    "first_plan": "first plan",
    "checkpoint": "checkpoint re-score",
    "escalation": "escalated by an operator",
}
# A chatty customer has thousands of events and scores: a page a CSM can read, not all of them.
DEFAULT_LIMIT = 200
TIMELINES_FOLDER = "timelines"
# What an audit entry's detail says on its line: an operator's reason or note, the journey's answer.
AUDIT_DETAIL_SHOWN = ("reason", "note", "answer")


class Entry(BaseModel):
    at: datetime
    journey_id: str | None = None


class ScoreEntry(Entry):
    """One assessment: the health score and churn prediction recorded together."""

    kind: Literal["score"] = "score"
    churn_probability: float
    model_version: str
    probability_source: str
    health: float | None = Field(default=None, description="None: no health row at that moment")
    health_status: str | None = None

    def summary(self) -> str:
        health = (
            f"health {self.health:.1f} ({self.health_status})"
            if self.health is not None
            else "health -"
        )
        return (
            f"{health} · churn probability {self.churn_probability:.2f} "
            f"({self.probability_source}, model {self.model_version})"
        )


class JourneyEntry(Entry):
    """A journey, at its start: every strategy it ran in order and what it came to."""

    kind: Literal["journey"] = "journey"
    journey_key: str
    strategy_path: list[str]
    risk_tier: str | None
    rules_version: str | None = Field(description="of its latest decision")
    model_version: str | None
    stage: str
    holdout: bool | None
    outcome: str | None
    exit_reason: str | None
    finished_at: datetime | None

    def summary(self) -> str:
        path = " → ".join(self.strategy_path) or "no strategy yet"
        why = f" ({self.exit_reason})" if self.exit_reason else ""
        ended = (
            f"ended {_minute(self.finished_at)}: {self.outcome}{why}"
            if self.outcome
            else f"open, {self.stage}"
        )
        held = " · held out" if self.holdout else ""
        return (
            f"strategy {path} · tier {self.risk_tier or '-'} · rules {_short(self.rules_version)}"
            f" · model {self.model_version or '-'}{held} · {ended}"
        )


class DecisionEntry(Entry):
    """One decision of the journey's rule set, kept or changing the strategy."""

    kind: Literal["decision"] = "decision"
    generation: int
    from_strategy: str | None
    to_strategy: str
    fired_rules: list[str]
    rules_version: str
    reason: DecisionReason

    def summary(self) -> str:
        why = WHY_DECIDED[self.reason]
        if self.from_strategy == self.to_strategy:
            change = f"strategy {self.to_strategy} kept"
        else:
            change = f"strategy {self.from_strategy or 'none'} → {self.to_strategy}"
        rules = ", ".join(self.fired_rules) or "none"
        return f"{change} (rules: {rules}, rule set {_short(self.rules_version)}) · {why}"


class MessageEntry(Entry):
    """One outbox message: to whom, how, and what became of it."""

    kind: Literal["message"] = "message"
    step_id: str
    channel: str
    recipient: str
    subject: str
    status: str
    provider: str | None
    provider_message_id: str | None
    sent_at: datetime | None
    note: str | None

    def summary(self) -> str:
        provider = f" · {self.provider} id {self.provider_message_id}" if self.provider else ""
        note = f" · {self.note}" if self.note else ""
        return (
            f'{self.channel} to {self.recipient}: "{self.subject}" · {self.status}{provider}{note}'
        )


class TaskEntry(Entry):
    """One CSM task, when it was made; its copy in the CRM, if any; done by whom, if it is."""

    kind: Literal["task"] = "task"
    task_id: int | None
    action: str
    assigned_csm: str | None
    subject: str
    status: str
    due_at: datetime
    completed_at: datetime | None
    completed_by: str | None
    note: str | None
    crm: str | None = Field(default=None, description="the CRM it is synced to, e.g. hubspot")
    crm_status: str | None = Field(default=None, description="pending, synced or failed")
    crm_id: str | None = None
    crm_synced_at: datetime | None = None

    def summary(self) -> str:
        owner = self.assigned_csm or "unassigned"
        if self.status == "done":
            state = f"done by {self.completed_by} at {_minute(self.completed_at)}"
        else:
            state = f"open, due {_minute(self.due_at)}"
        note = f": {self.note}" if self.note else ""
        return f"task {self.task_id} {self.action} for {owner} · {state}{self._in_crm()}{note}"

    def _in_crm(self) -> str:
        if self.crm_status is None:
            return ""
        if self.crm_status == "synced":
            return f" · in {self.crm} as {self.crm_id} since {_minute(self.crm_synced_at)}"
        return f" · {self.crm or 'CRM'} sync {self.crm_status}"


class EventEntry(Entry):
    """One webhook the ingest service received for the customer, and where it went."""

    kind: Literal["event"] = "event"
    source: str
    source_kind: str = Field(description="the source's own name for what happened")
    event_type: str | None
    status: str
    note: str | None

    def summary(self) -> str:
        note = f" · {self.note}" if self.note else ""
        return f"{self.event_type or self.source_kind} from {self.source} · {self.status}{note}"


class AuditEntry(Entry):
    """One audit-log entry: who did what (journeys started and closed, operator commands,
    erasures, ...)."""

    kind: Literal["audit"] = "audit"
    actor: str
    action: str
    detail: dict[str, Any]

    def summary(self) -> str:
        said = [f"{k}: {self.detail[k]}" for k in AUDIT_DETAIL_SHOWN if self.detail.get(k)]
        return " · ".join([f"{self.action.replace('_', ' ')} by {self.actor}", *said])


AnyEntry = (
    ScoreEntry | JourneyEntry | DecisionEntry | MessageEntry | TaskEntry | EventEntry | AuditEntry
)
TimelineEntry = Annotated[AnyEntry, Field(discriminator="kind")]


class Timeline(BaseModel):
    customer_id: str
    company: str | None
    limit: int
    entries: list[TimelineEntry] = Field(description="newest first, at most `limit`")
    recorded: dict[EntryKind, int] = Field(description="how many of each the database holds")

    @computed_field  # type: ignore[prop-decorator]
    @property
    def left_out(self) -> dict[EntryKind, int]:
        """Recorded but past the limit, by kind (kinds with none left out are not named)."""
        shown = {kind: sum(e.kind == kind for e in self.entries) for kind in KINDS}
        return {k: n - shown[k] for k, n in self.recorded.items() if n > shown[k]}


@dataclass
class TimelineRecords:
    """The newest `limit` rows of each kind for one customer, and how many each table holds."""

    customer_id: str
    company: str | None = None
    known: bool = False  # in the customers table
    predictions: list[ChurnPredictionRow] = field(default_factory=list)
    health: list[HealthScoreRow] = field(default_factory=list)
    journeys: list[JourneyRow] = field(default_factory=list)
    decisions: list[DecisionRow] = field(default_factory=list)
    messages: list[OutboxRow] = field(default_factory=list)
    tasks: list[CsmTaskRow] = field(default_factory=list)
    events: list[InboxRow] = field(default_factory=list)
    audit: list[AuditRow] = field(default_factory=list)
    recorded: dict[EntryKind, int] = field(default_factory=dict)


def build_timeline(records: TimelineRecords, limit: int = DEFAULT_LIMIT) -> Timeline:
    if not records.known and not any(records.recorded.values()):
        raise CustomerNotFound(
            f"customer {records.customer_id!r}: nothing is recorded for it in the database"
        )
    entries: list[AnyEntry] = [
        *_scores(records.predictions, records.health),
        *(_journey(row) for row in records.journeys),
        *(_decision(row) for row in records.decisions),
        *(_message(row) for row in records.messages),
        *(_task(row) for row in records.tasks),
        *(_event(row) for row in records.events),
        *(_audit(row) for row in records.audit),
    ]
    entries.sort(key=lambda e: e.at, reverse=True)
    return Timeline(
        customer_id=records.customer_id,
        company=records.company,
        limit=limit,
        entries=entries[:limit],
        recorded=records.recorded,
    )


def timeline_page(customer_id: str) -> str:
    """The timeline page's path relative to the report: safe as a file name and a link, since
    a customer id is letters, digits, `_`, `.` and `-`, never starting with a dot."""
    if not re.match(CUSTOMER_ID_PATTERN, customer_id):
        raise RetentionError(f"customer id {customer_id!r} cannot name a timeline page")
    return f"{TIMELINES_FOLDER}/{customer_id}.html"


def _scores(
    predictions: list[ChurnPredictionRow], health: list[HealthScoreRow]
) -> list[ScoreEntry]:
    """An assessment writes its health and prediction rows at one moment: paired by it."""
    by_moment = {(h.scored_at, h.journey_id): h for h in health}
    entries = []
    for p in predictions:
        h = by_moment.get((p.predicted_at, p.journey_id))
        entries.append(
            ScoreEntry(
                at=p.predicted_at,
                journey_id=p.journey_id,
                churn_probability=p.probability,
                model_version=p.model_version,
                probability_source=p.probability_source,
                health=h.overall if h else None,
                health_status=h.status if h else None,
            )
        )
    return entries


def _journey(row: JourneyRow) -> JourneyEntry:
    return JourneyEntry(
        at=row.started_at,
        journey_id=row.workflow_id,
        journey_key=row.journey_key,
        strategy_path=row.strategy_path or ([row.strategy] if row.strategy else []),
        risk_tier=row.risk_tier,
        rules_version=row.rules_version,
        model_version=row.model_version,
        stage=row.stage,
        holdout=row.holdout,
        outcome=row.outcome,
        exit_reason=row.exit_reason,
        finished_at=row.finished_at,
    )


def _decision(row: DecisionRow) -> DecisionEntry:
    return DecisionEntry(
        at=row.decided_at,
        journey_id=row.journey_id,
        generation=row.generation,
        from_strategy=row.from_strategy,
        to_strategy=row.to_strategy,
        fired_rules=row.fired_rules,
        rules_version=row.rules_version,
        reason=cast(DecisionReason, row.reason),
    )


def _message(row: OutboxRow) -> MessageEntry:
    return MessageEntry(
        at=row.created_at,
        journey_id=row.journey_id,
        step_id=row.step_id,
        channel=row.channel,
        recipient=row.recipient,
        subject=row.subject,
        status=row.status,
        provider=row.provider,
        provider_message_id=row.provider_message_id,
        sent_at=row.sent_at,
        note=row.note,
    )


def _task(row: CsmTaskRow) -> TaskEntry:
    return TaskEntry(
        at=row.created_at,
        journey_id=row.journey_id,
        task_id=row.id,
        action=row.action,
        assigned_csm=row.assigned_csm,
        subject=row.summary,
        status=row.status,
        due_at=row.due_at,
        completed_at=row.completed_at,
        completed_by=row.completed_by,
        note=row.note,
        crm=row.crm_provider,
        crm_status=row.crm_status,
        crm_id=row.crm_id,
        crm_synced_at=row.crm_synced_at,
    )


def _event(row: InboxRow) -> EventEntry:
    return EventEntry(
        at=row.received_at,
        journey_id=row.workflow_id,
        source=row.source,
        source_kind=row.kind,
        event_type=row.event_type,
        status=row.status,
        note=row.note,
    )


def _audit(row: AuditRow) -> AuditEntry:
    return AuditEntry(
        at=row.at, journey_id=row.journey_id, actor=row.actor, action=row.action, detail=row.detail
    )


def _short(version: str | None) -> str:
    return version[:12] if version else "-"


def _minute(moment: datetime | None) -> str:
    return f"{moment:%Y-%m-%d %H:%M}" if moment else "-"
