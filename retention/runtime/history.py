"""What a customer's journeys heard, read from their Temporal histories, for the account timeline
(docs/operators.md, "Account timeline"): every operator command, however it was given
(`starter.py`, Temporal UI, the `temporal` CLI, a program), with the identity Temporal recorded
on it, and every customer event that reached the journey, from any sender.

Only the history holds these for commands given outside `starter.py` and for events sent by
other programs with `send_event`; the timeline de-duplicates them against the database. The read
is bounded (the constants below): a CSM waits for the timeline, and a journey that ran for a
year may have many runs of thousands of events each.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Literal, get_args

from pydantic import BaseModel, Field
from temporalio.api.enums.v1 import EventType
from temporalio.api.history.v1 import HistoryEvent
from temporalio.api.update.v1 import Outcome
from temporalio.client import Client, WorkflowHistoryEventFilterType
from temporalio.service import RPCError, RPCStatusCode

from retention.errors import JourneyOperationError, TemporalUnreachable
from retention.runtime.operations import Command

OPERATOR_COMMANDS: tuple[str, ...] = get_args(Command)
EVENT_SIGNAL = "customer_event"
EVENT_UPDATE = "record_event"
# A journey continues as new after some thousands of events (or when Temporal suggests it, at
# 4 MB or ~10,000 events a run), so 5 runs reach weeks back for a chatty customer and all the way
# for most. A run is read whole, since a history is read oldest first and its newest events are
# the ones the timeline shows (Temporal bounds a run's length); an older run is read only while
# fewer than 20,000 events have been: about 20 pages of history, a few seconds at most. The
# timeline says when it stopped short ("older history not read").
MAX_RUNS_PER_JOURNEY = 5
MAX_EVENTS_PER_JOURNEY = 20_000
# The timeline shows the newest entries: older journeys than these five add nothing to them.
MAX_JOURNEYS = 5
# An older journey's last run is found by following its runs forward, one close event each.
MAX_RUN_HOPS = 100
# The whole read, connection included: past this the timeline prints without it.
READ_PATIENCE = timedelta(seconds=30)
_CAUSE_TYPES = {"ValueError: ", "ApplicationError: "}


class Heard(BaseModel):
    """One message a journey's history holds, as Temporal recorded it."""

    at: datetime = Field(description="when the journey took it (the history event's time)")
    workflow_id: str
    run_id: str
    identity: str | None = Field(description="as the sender's client gave it; None: none given")
    via: Literal["update", "signal"]
    update_id: str | None = None


class HeardCommand(Heard):
    command: str
    arguments: dict[str, Any] = Field(default_factory=dict)
    answer: str | None = Field(default=None, description="the journey's answer, once given")
    taken: bool = Field(description="False: a signal named like a command, which journeys ignore")


class HeardEvent(Heard):
    event: dict[str, Any] = Field(description="the customer event as sent")
    accepted: bool | None = Field(default=None, description="the update's answer; None: signal")
    reason: str | None = None


class JourneyHistories(BaseModel):
    commands: list[HeardCommand] = Field(default_factory=list)
    events: list[HeardEvent] = Field(default_factory=list)
    not_read: list[str] = Field(
        default_factory=list, description="what was left unread, one line a journey"
    )


@dataclass(frozen=True)
class JourneyRef:
    """A journey to read: its workflow id and, when the database knows it, its first run."""

    workflow_id: str
    first_run_id: str | None = None

    @classmethod
    def of(cls, workflow_id: str, journey_key: str) -> JourneyRef:
        """`journey_key` is `{workflow_id}/{first_execution_run_id}`
        (workflows/retention_journey.py)."""
        prefix, _, run_id = journey_key.rpartition("/")
        return cls(workflow_id, run_id if prefix == workflow_id and run_id else None)


async def read_histories(client: Client, journeys: Sequence[JourneyRef]) -> JourneyHistories:
    """The commands and events in the histories of `journeys` (newest first), each journey's
    runs newest first, within the bounds above. Raises `TemporalUnreachable` when the server
    does not answer (in time)."""
    heard = JourneyHistories()
    try:
        async with asyncio.timeout(READ_PATIENCE.total_seconds()):
            for journey in journeys[:MAX_JOURNEYS]:
                await _read_journey(client, journey, heard)
    except TimeoutError as exc:
        raise TemporalUnreachable(
            f"reading the journeys' histories took over {READ_PATIENCE.total_seconds():g} s"
        ) from exc
    if len(journeys) > MAX_JOURNEYS:
        heard.not_read.append(
            f"{len(journeys) - MAX_JOURNEYS} older journeys: history not read "
            f"(the newest {MAX_JOURNEYS} were)"
        )
    return heard


async def _read_journey(client: Client, journey: JourneyRef, heard: JourneyHistories) -> None:
    try:
        run_id: str | None = await _last_run(client, journey)
        budget = _Budget()
        while run_id is not None:
            if budget.runs == MAX_RUNS_PER_JOURNEY or budget.events >= MAX_EVENTS_PER_JOURNEY:
                heard.not_read.append(f"{journey.workflow_id}: older history not read ({budget})")
                return
            run_id = await _read_run(client, journey.workflow_id, run_id, budget, heard)
    except RPCError as exc:
        if exc.status != RPCStatusCode.NOT_FOUND:
            raise _failure(exc) from exc
        heard.not_read.append(f"{journey.workflow_id}: Temporal no longer holds its history")


@dataclass
class _Budget:
    runs: int = 0
    events: int = 0

    def __str__(self) -> str:
        return f"read {self.runs} runs, {self.events:,} history events"


async def _last_run(client: Client, journey: JourneyRef) -> str:
    """The journey's newest run: the workflow's latest when it is that journey's (or the
    database does not know the journey's first run), else found forward from its first run."""
    latest = await client.get_workflow_handle(journey.workflow_id).describe()
    first = journey.first_run_id
    if first is None or first == latest.run_id:
        return latest.run_id
    started = await _first_event(client, journey.workflow_id, latest.run_id)
    if started.workflow_execution_started_event_attributes.first_execution_run_id == first:
        return latest.run_id
    run_id = first
    for _ in range(MAX_RUN_HOPS):
        handle = client.get_workflow_handle(journey.workflow_id, run_id=run_id)
        closing = handle.fetch_history_events(
            event_filter_type=WorkflowHistoryEventFilterType.CLOSE_EVENT
        )
        after = [
            e.workflow_execution_continued_as_new_event_attributes.new_execution_run_id
            async for e in closing
            if e.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_CONTINUED_AS_NEW
        ]
        if not after:
            return run_id
        run_id = after[0]
    return run_id  # a chain this long: its newest runs are not reached; this one is read


async def _first_event(client: Client, workflow_id: str, run_id: str) -> HistoryEvent:
    handle = client.get_workflow_handle(workflow_id, run_id=run_id)
    async for event in handle.fetch_history_events(page_size=1):
        return event
    raise JourneyOperationError(f"{workflow_id} run {run_id}: Temporal returned no history")


async def _read_run(
    client: Client, workflow_id: str, run_id: str, budget: _Budget, heard: JourneyHistories
) -> str | None:
    """Read one run, whole, into `heard`; the run it continued from, or None at the journey's
    first."""
    handle = client.get_workflow_handle(workflow_id, run_id=run_id)
    run = _Run(client, workflow_id, run_id)
    budget.runs += 1
    previous: str | None = None
    async for event in handle.fetch_history_events():
        budget.events += 1
        if event.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_STARTED:
            previous = (
                event.workflow_execution_started_event_attributes.continued_execution_run_id or None
            )
        await run.note(event)
    heard.commands += run.commands
    heard.events += run.events
    return previous


@dataclass
class _Run:
    """What one run's history holds, updates paired with their answers by update id."""

    client: Client
    workflow_id: str
    run_id: str
    commands: list[HeardCommand] = field(default_factory=list)
    events: list[HeardEvent] = field(default_factory=list)
    _accepted: dict[str, HeardCommand | HeardEvent] = field(default_factory=dict)

    async def note(self, event: HistoryEvent) -> None:
        kind = event.event_type
        if kind == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED:
            await self._signaled(event)
        elif kind == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_ACCEPTED:
            await self._accepted_update(event)
        elif kind == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_COMPLETED:
            completed = event.workflow_execution_update_completed_event_attributes
            if (found := self._accepted.get(completed.meta.update_id)) is not None:
                await self._answer(found, completed.outcome)

    async def _signaled(self, event: HistoryEvent) -> None:
        signaled = event.workflow_execution_signaled_event_attributes
        name = signaled.signal_name
        if name != EVENT_SIGNAL and name not in OPERATOR_COMMANDS:
            return
        argument = await self._decode(list(signaled.input.payloads))
        common = self._common(event, signaled.identity, "signal")
        if name == EVENT_SIGNAL:
            self.events.append(HeardEvent(**common, event=_as_dict(argument)))
        else:
            self.commands.append(
                HeardCommand(**common, command=name, arguments=_as_dict(argument), taken=False)
            )

    async def _accepted_update(self, event: HistoryEvent) -> None:
        request = event.workflow_execution_update_accepted_event_attributes.accepted_request
        name = request.input.name
        if name != EVENT_UPDATE and name not in OPERATOR_COMMANDS:
            return
        argument = _as_dict(await self._decode(list(request.input.args.payloads)))
        common = self._common(event, request.meta.identity, "update", request.meta.update_id)
        heard: HeardCommand | HeardEvent
        if name == EVENT_UPDATE:
            heard = HeardEvent(**common, event=argument)
            self.events.append(heard)
        else:
            heard = HeardCommand(**common, command=name, arguments=argument, taken=True)
            self.commands.append(heard)
        self._accepted[request.meta.update_id] = heard

    async def _answer(self, heard: HeardCommand | HeardEvent, outcome: Outcome) -> None:
        if outcome.HasField("failure"):
            failed = _without_type(outcome.failure.message)
            if isinstance(heard, HeardCommand):
                heard.answer = f"failed: {failed}"
            else:
                heard.accepted, heard.reason = False, failed
            return
        answer = _as_dict(await self._decode(list(outcome.success.payloads)))
        if isinstance(heard, HeardCommand):
            heard.answer = str(answer.get("message") or "") or None
        else:
            heard.accepted = bool(answer.get("accepted"))
            heard.reason = answer.get("reason")

    def _common(
        self, event: HistoryEvent, identity: str, via: str, update_id: str | None = None
    ) -> dict[str, Any]:
        return {
            "at": event.event_time.ToDatetime(tzinfo=UTC),
            "workflow_id": self.workflow_id,
            "run_id": self.run_id,
            "identity": identity or None,
            "via": via,
            "update_id": update_id or None,
        }

    async def _decode(self, payloads: list[Any]) -> Any:
        """The first argument as sent (JSON: a dict); a payload this process cannot decode
        (e.g. encrypted by a codec it lacks) is named rather than fail the whole timeline."""
        if not payloads:
            return {}
        try:
            return (await self.client.data_converter.decode(payloads))[0]
        except Exception as exc:  # noqa: BLE001 - any converter's refusal: show, do not fail
            return {"payload": f"not readable here ({type(exc).__name__})"}


def _as_dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {"value": value}


def _without_type(message: str) -> str:
    for prefix in _CAUSE_TYPES:
        message = message.removeprefix(prefix)
    return message


def _failure(exc: RPCError) -> JourneyOperationError:
    if exc.status in (RPCStatusCode.UNAVAILABLE, RPCStatusCode.DEADLINE_EXCEEDED) or (
        exc.status == RPCStatusCode.UNKNOWN and "transport error" in exc.message
    ):
        return TemporalUnreachable(f"the Temporal server did not answer: {exc.message}")
    return JourneyOperationError(f"Temporal refused a history read ({exc.status.name}): {exc}")
