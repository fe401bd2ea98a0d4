"""A customer's account timeline: everything recorded about one customer, newest first, for CSMs
and CS leaders (`starter.py timeline`, and a page beside the HTML report).

Pure: `build_timeline` turns rows read by `reader.read_timeline` into the timeline: scores,
journeys, every decision of their rule sets (strategy before and after, the rules that fired,
the rule-set version, why), messages, CSM tasks, events (webhooks from the ingest service and
events sent with `starter.py event`, by source) and the audit log (operator commands given with
`starter.py` and who gave them). Given what the journeys' Temporal histories hold
(`retention.runtime.history`), it adds what only they know: commands given in Temporal UI, with
the `temporal` CLI or by a program, and events other programs sent with `send_event`, each once
(a command or event the database has too is shown from the database). Decisions made before
the `journey_decisions` table existed are not on it (docs/operators.md)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal, cast

from pydantic import BaseModel, Field, computed_field

from retention.customer import CUSTOMER_ID_PATTERN
from retention.errors import CustomerNotFound, RetentionError
from retention.runtime.history import HeardCommand, HeardEvent, JourneyHistories
from retention.store.commands import OPERATOR
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

EntryKind = Literal[
    "score", "journey", "decision", "message", "task", "event", "audit", "command"
]  # fmt: skip
# The kinds the database holds; `command` entries come only from the journeys' histories.
KINDS: tuple[EntryKind, ...] = (
    "score", "journey", "decision", "message", "task", "event", "audit",
)  # fmt: skip
Source = Literal["database", "temporal"]
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
UNNAMED = "unnamed sender"  # Temporal recorded no identity (e.g. Temporal UI's update form)
# A command's audit row is written once the journey answered (at most a minute, the CLI's
# COMMAND_TIMEOUT): a row written before update ids were recorded matches a command in the
# history of the same journey, name and reason accepted up to this long before it...
AUDITED_WITHIN = timedelta(minutes=2)
# ...and an event signalled by the ingest service (a journey it started) matches the inbox row
# of the same journey and event forwarded this close to it.
FORWARDED_WITHIN = timedelta(minutes=2)


class Entry(BaseModel):
    at: datetime
    journey_id: str | None = None
    source: Source = Field(
        default="database", description="read from the database or a journey's Temporal history"
    )


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
    """One webhook the ingest service received for the customer, and where it went; or, from a
    journey's history, an event another program sent it."""

    kind: Literal["event"] = "event"
    sender: str = Field(
        description="database: the inbox source (a webhook source, `cli`); temporal: the "
        "identity the sender's Temporal client gave, or `unnamed sender`"
    )
    source_kind: str = Field(description="the source's own name for what happened")
    event_type: str | None
    status: str = Field(
        description="database: the inbox row's; temporal: accepted, rejected, heard"
    )
    note: str | None

    def summary(self) -> str:
        note = f" · {self.note}" if self.note else ""
        return f"{self.event_type or self.source_kind} from {self.sender} · {self.status}{note}"


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


class CommandEntry(Entry):
    """An operator command read from a journey's history that the audit log does not hold:
    given in Temporal UI, with the `temporal` CLI or by a program, by the identity Temporal
    recorded (Temporal UI's update form sends none)."""

    kind: Literal["command"] = "command"
    source: Source = "temporal"
    command: str
    by: str | None = Field(description="the identity Temporal recorded; None: none was given")
    via: Literal["update", "signal"]
    arguments: dict[str, Any]
    answer: str | None = Field(description="the journey's answer")
    taken: bool = Field(description="False: sent as a signal, which journeys do not take")
    update_id: str | None

    def summary(self) -> str:
        who = self.by or UNNAMED
        said = [f"{k}: {self.arguments[k]}" for k in AUDIT_DETAIL_SHOWN if self.arguments.get(k)]
        if not self.taken:
            said.append("not taken: journeys take commands as updates, not signals")
        elif self.answer:
            said.append(f"answer: {self.answer}")
        return " · ".join([f"{self.command} by {who} (Temporal {self.via})", *said])


AnyEntry = (
    ScoreEntry
    | JourneyEntry
    | DecisionEntry
    | MessageEntry
    | TaskEntry
    | EventEntry
    | AuditEntry
    | CommandEntry
)
TimelineEntry = Annotated[AnyEntry, Field(discriminator="kind")]


class Timeline(BaseModel):
    customer_id: str
    company: str | None
    limit: int
    entries: list[TimelineEntry] = Field(description="newest first, at most `limit`")
    recorded: dict[EntryKind, int] = Field(
        description="how many of each the database holds, plus those only the histories held"
    )
    history_read: bool = Field(
        default=False, description="the journeys' Temporal histories were read"
    )
    history_notes: list[str] = Field(
        default_factory=list,
        description="why they were not read, or what of them was not (older history not read)",
    )

    @computed_field  # type: ignore[prop-decorator]
    @property
    def left_out(self) -> dict[EntryKind, int]:
        """Recorded but past the limit, by kind (kinds with none left out are not named)."""
        shown = {kind: sum(e.kind == kind for e in self.entries) for kind in self.recorded}
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


def build_timeline(
    records: TimelineRecords,
    limit: int = DEFAULT_LIMIT,
    heard: JourneyHistories | None = None,
    history_notes: list[str] | None = None,
) -> Timeline:
    """`heard`: what the journeys' histories hold (None: not read, `history_notes` say why)."""
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
    recorded = dict(records.recorded)
    if heard is not None:
        commands = [_command(c) for c in _unaudited(heard.commands, records.audit)]
        events = [_heard_event(e) for e in _not_in_inbox(heard.events, records.events)]
        entries += [*commands, *events]
        recorded["command"] = len(commands)
        recorded["event"] = recorded.get("event", 0) + len(events)
    entries.sort(key=lambda e: e.at, reverse=True)
    return Timeline(
        customer_id=records.customer_id,
        company=records.company,
        limit=limit,
        entries=entries[:limit],
        recorded=recorded,
        history_read=heard is not None,
        history_notes=[*(history_notes or []), *(heard.not_read if heard else [])],
    )


# ---- what only the histories hold ----------------------------------------------------------


def _unaudited(heard: list[HeardCommand], audit: list[AuditRow]) -> list[HeardCommand]:
    """The commands no `starter.py` audit row stands for: matched by the update id the row
    records, or (rows written before it did) by journey, command, reason and time."""
    given = [row for row in audit if row.actor.startswith(OPERATOR)]
    ids = {row.detail["update_id"] for row in given if row.detail.get("update_id")}
    unmatched = [row for row in given if not row.detail.get("update_id")]
    shown = []
    for command in heard:
        if command.update_id in ids:
            continue
        if (row := _audited_as(command, unmatched)) is not None:
            unmatched.remove(row)  # one row stands for one command
            continue
        shown.append(command)
    return shown


def _audited_as(command: HeardCommand, rows: list[AuditRow]) -> AuditRow | None:
    if not command.taken:
        return None
    reason = command.arguments.get("reason") or command.arguments.get("note") or ""
    for row in rows:
        said = row.detail.get("reason") or row.detail.get("note") or ""
        if (row.journey_id, row.action, said) == (
            command.workflow_id,
            command.command,
            reason,
        ) and timedelta(0) <= _utc(row.at) - command.at <= AUDITED_WITHIN:
            return row
    return None


def _not_in_inbox(heard: list[HeardEvent], inbox: list[InboxRow]) -> list[HeardEvent]:
    """The events no inbox row stands for. An update carries the request id its sender gave:
    `inbox:<batch>` from the ingest service's forwarder (one update for a coalesced batch of
    rows), the row's own id from `starter.py event`. A signal carries none: the forwarder
    signals an event that starts a journey, matched by journey, event and time."""
    ids = {f"inbox:{row.batch}" for row in inbox if row.batch} | {
        row.source_event_id for row in inbox if not row.batch
    }
    signalled = [row for row in inbox if row.started_journey]
    shown = []
    for event in heard:
        if event.update_id is not None and event.update_id in ids:
            continue
        if event.via == "signal" and (row := _forwarded_as(event, signalled)) is not None:
            signalled.remove(row)
            continue
        shown.append(event)
    return shown


def _forwarded_as(event: HeardEvent, rows: list[InboxRow]) -> InboxRow | None:
    for row in rows:
        at = _utc(row.forwarded_at or row.received_at)
        if (row.workflow_id, row.event) == (event.workflow_id, event.event) and abs(
            at - event.at
        ) <= FORWARDED_WITHIN:
            return row
    return None


def _command(heard: HeardCommand) -> CommandEntry:
    return CommandEntry(
        at=heard.at,
        journey_id=heard.workflow_id,
        command=heard.command,
        by=heard.identity,
        via=heard.via,
        arguments=heard.arguments,
        answer=heard.answer,
        taken=heard.taken,
        update_id=heard.update_id,
    )


def _heard_event(heard: HeardEvent) -> EventEntry:
    kind = heard.event.get("type")
    if heard.accepted is None:
        status = "heard" if heard.via == "signal" else "not answered yet"
    else:
        status = "accepted" if heard.accepted else "rejected"
    return EventEntry(
        at=heard.at,
        journey_id=heard.workflow_id,
        source="temporal",
        sender=heard.identity or UNNAMED,
        source_kind=str(kind) if kind is not None else "(no type)",
        event_type=str(kind) if kind is not None else None,
        status=status,
        note="; ".join(filter(None, [heard.reason, f"Temporal {heard.via}"])),
    )


def _utc(moment: datetime) -> datetime:
    """The database gives UTC, SQLite without its zone: compared with the histories' times."""
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


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
        sender=row.source,
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
