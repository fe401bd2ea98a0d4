"""What upstream systems and operators do to journeys, as Temporal client calls.

Start a journey, send it a customer event, read its state, run an operator command, list
journeys from their search attributes. No workflow code lives here: the workflow is named by
its type, signals, updates and queries by their names. Every Temporal failure a caller can act
on comes out as a `JourneyOperationError` whose message is one clear line.
"""

from __future__ import annotations

import asyncio
import time
import uuid
import weakref
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import timedelta
from typing import Any, Literal, get_args

from pydantic import BaseModel, ValidationError
from temporalio.api.common.v1 import WorkflowExecution as ExecutionRef
from temporalio.api.enums.v1 import EventType
from temporalio.api.history.v1 import HistoryEvent
from temporalio.api.workflowservice.v1 import (
    DeleteWorkflowExecutionRequest,
)
from temporalio.client import (
    Client,
    WorkflowExecution,
    WorkflowExecutionStatus,
    WorkflowHandle,
    WorkflowUpdateFailedError,
    WorkflowUpdateRPCTimeoutOrCancelledError,
)
from temporalio.common import (
    SearchAttributePair,
    TypedSearchAttributes,
    WorkflowIDConflictPolicy,
    WorkflowIDReusePolicy,
)
from temporalio.exceptions import WorkflowAlreadyStartedError
from temporalio.service import RPCError, RPCStatusCode

from retention import search_attributes
from retention.customer import CustomerEvent, CustomerSnapshot, describe_validation_error
from retention.errors import (
    InvalidInput,
    JourneyOperationError,
    RetentionError,
    TemporalUnreachable,
)
from retention.journey_state import (
    FIRST_STAGE,
    JOURNEY_ROLLING_OVER,
    CancelRequest,
    CommandResult,
    EscalateRequest,
    EventReceipt,
    JourneyOptions,
    JourneyRequest,
    JourneyState,
    PauseRequest,
    ResumeRequest,
    Stage,
    journey_id,
)
from retention.runtime.settings import get_settings

COMMAND_TIMEOUT = timedelta(seconds=60)
# A running journey takes an event in one workflow task; a loaded worker may take seconds.
EVENT_TIMEOUT = timedelta(seconds=30)
# Temporal lets 10 updates be in flight per run (`history.maxInFlightUpdates`): events take
# at most 8 of them from one process, leaving room for an operator's command.
EVENTS_IN_FLIGHT_PER_JOURNEY = 8
QUERY_TIMEOUT = timedelta(seconds=15)
# A journey refuses events for a moment while it continues as new; senders wait that out.
BUSY_PATIENCE = timedelta(seconds=30)
BUSY_FIRST_PAUSE = 0.05
BUSY_MAX_PAUSE = 2.0
SIGNAL_LIMIT = "exceeded workflow execution limit for signal events"
# Refusals for the moment: a run at Temporal's signal limit; an update in flight when its run
# continued as new (Temporal aborts it; sent again, it reaches the new run); an update while the
# journey's workflow task is failing, e.g. its worker killed mid-task (retried on another).
BUSY_MESSAGES = (
    SIGNAL_LIMIT,
    "workflow update was aborted",
    "update due to Workflow Task in failed state",
)
ERASURE_TIMEOUT = timedelta(seconds=60)  # Temporal deletes a run in the background

# One semaphore per journey that has events on their way; gone once none is waiting.
_TURNS: weakref.WeakValueDictionary[str, asyncio.Semaphore] = weakref.WeakValueDictionary()

Command = Literal["pause", "resume", "cancel", "escalate"]
CommandRequest = PauseRequest | ResumeRequest | CancelRequest | EscalateRequest
StatusFilter = Literal["running", "closed", "all"]


class JourneyBusy(JourneyOperationError):
    """The journey cannot take the event this moment (it is continuing as new, or a run is at
    Temporal's signal limit until it does): the same event sent again shortly is taken."""


class WorkerUnavailable(JourneyOperationError):
    """The server is up but no worker answered for the journey."""


class JourneyAlreadyRunning(JourneyOperationError):
    """A journey for this customer is running; one per customer."""


class JourneyNotFound(JourneyOperationError):
    """No journey was ever started for this customer (or its history is gone)."""


class JourneyClosed(JourneyOperationError):
    """The journey has ended, so it takes no more events or commands."""


class CommandRejected(JourneyOperationError):
    """The journey's update validator refused the command; the message is its answer."""


class JourneyRow(BaseModel):
    """One line of `starter.py list`, read from a journey's search attributes."""

    customer_id: str
    risk_tier: str | None = None
    strategy: str | None = None
    stage: str | None = None
    churn_probability: float | None = None
    health_score: float | None = None
    status: str


# ---- starting --------------------------------------------------------------------------------


async def start_journey(
    client: Client,
    customer: CustomerSnapshot | None,
    customer_id: str | None,
    options: JourneyOptions,
    *,
    known_customer: CustomerSnapshot | None = None,
    task_queue: str | None = None,
    memo: Mapping[str, Any] | None = None,
) -> WorkflowHandle[object, JourneyState]:
    """Start `retention-{customer_id}` from a snapshot, or from an id the worker loads.

    `known_customer` only enriches the UI summary of a journey started by id. Raises
    `JourneyAlreadyRunning` when the customer's journey is running; a closed one may be
    followed by a new journey.
    """
    try:
        request = JourneyRequest(customer=customer, customer_id=customer_id, options=options)
    except ValidationError as exc:
        raise InvalidInput(f"journey request: {describe_validation_error(exc)}") from exc
    target = request.target_customer_id
    profile_from = customer or known_customer
    workflow_id = journey_id(target)
    try:
        return await client.start_workflow(
            search_attributes.WORKFLOW_TYPE,
            request,
            id=workflow_id,
            task_queue=task_queue or get_settings().task_queue,
            result_type=JourneyState,
            id_conflict_policy=WorkflowIDConflictPolicy.FAIL,
            id_reuse_policy=WorkflowIDReusePolicy.ALLOW_DUPLICATE,
            static_summary=journey_summary(target, profile_from),
            static_details=journey_details(target, profile_from),
            search_attributes=_initial_search_attributes(target, profile_from),
            memo=memo,
        )
    except WorkflowAlreadyStartedError as exc:
        raise JourneyAlreadyRunning(
            f"a journey is already running for {target} ({workflow_id})"
        ) from exc
    except RPCError as exc:
        raise _rpc_error(exc, target) from exc


async def start_journey_with_event(
    client: Client,
    customer: CustomerSnapshot,
    event: CustomerEvent,
    options: JourneyOptions,
    *,
    task_queue: str | None = None,
) -> str:
    """Signal-with-start: `event` goes to the customer's running journey, or to a new one
    started by id (the worker loads the customer from the database). Returns the workflow id."""
    customer_id = customer.customer_id
    request = JourneyRequest(customer_id=customer_id, options=options)
    try:
        handle = await client.start_workflow(
            search_attributes.WORKFLOW_TYPE,
            request,
            id=journey_id(customer_id),
            task_queue=task_queue or get_settings().task_queue,
            start_signal="customer_event",
            start_signal_args=[event.model_dump(mode="json")],
            static_summary=journey_summary(customer_id, customer),
            static_details=journey_details(customer_id, customer),
            search_attributes=_initial_search_attributes(customer_id, customer),
        )
    except RPCError as exc:
        raise _rpc_error(exc, customer_id) from exc
    return handle.id


def journey_summary(customer_id: str, customer: CustomerSnapshot | None) -> str:
    if customer is None:
        return f"Retention journey · {customer_id}"
    return f"Retention journey · {customer.profile.company} ({customer_id})"


def journey_details(customer_id: str, customer: CustomerSnapshot | None) -> str:
    """Markdown for the Temporal UI: who the customer is and who looks after them."""
    if customer is None:
        return f"**Customer** {customer_id} (snapshot loaded from the database at start)"
    p = customer.profile
    return "\n\n".join(
        [
            f"**Customer** {p.company} ({customer_id}) · {p.name} <{p.email}>",
            f"**Segment** {p.segment} · plan {p.plan}",
            f"**ACV** ${customer.financial.annual_contract_value:,.0f}",
            f"**CSM** {p.assigned_csm or 'unassigned'}",
        ]
    )


def _initial_search_attributes(
    customer_id: str, customer: CustomerSnapshot | None
) -> TypedSearchAttributes:
    # the first stage too: the journey would otherwise upsert it as its first command
    pairs: list[SearchAttributePair[str]] = [
        SearchAttributePair(search_attributes.CUSTOMER_ID, customer_id),
        SearchAttributePair(search_attributes.JOURNEY_STAGE, FIRST_STAGE),
    ]
    if customer is not None and customer.profile.assigned_csm:
        pairs.append(
            SearchAttributePair(search_attributes.ASSIGNED_CSM, customer.profile.assigned_csm)
        )
    return TypedSearchAttributes(pairs)


# ---- one journey -----------------------------------------------------------------------------


async def send_event(
    client: Client, customer_id: str, event: CustomerEvent, *, request_id: str | None = None
) -> EventReceipt:
    """Record the event in the customer's journey (the `record_event` update), wait until it
    is in the journey's history and return the journey's answer (a closed journey's `outcome`
    is set: it hears the event but does not take it).

    The journey refuses for a moment while it continues as new, and Temporal while too many
    events are in flight: this waits those out, up to `BUSY_PATIENCE`, so a flood of events
    slows its senders instead of growing a run to Temporal's limits. With a `request_id` (e.g.
    an inbox row's), a repeat of the same event to the same run is recorded once, so a sender
    retrying after a crash does not deliver it twice."""
    handle = client.get_workflow_handle(journey_id(customer_id))
    payload = event.model_dump(mode="json")
    update_id = request_id or str(uuid.uuid4())  # one id across this call's own retries
    deadline = time.monotonic() + BUSY_PATIENCE.total_seconds()
    pause = BUSY_FIRST_PAUSE
    while True:
        try:
            async with _in_flight(handle.id):
                with _translated(customer_id):
                    return await _record_event(handle, customer_id, payload, update_id)
        except JourneyBusy:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(pause)
            pause = min(pause * 2, BUSY_MAX_PAUSE)


def _in_flight(workflow_id: str) -> asyncio.Semaphore:
    """This process's turn to send one journey an event: beyond Temporal's in-flight limit,
    senders only trade refusals, and operator commands need a slot of their own."""
    turns = _TURNS.get(workflow_id)
    if turns is None:
        turns = _TURNS[workflow_id] = asyncio.Semaphore(EVENTS_IN_FLIGHT_PER_JOURNEY)
    return turns


async def _record_event(
    handle: WorkflowHandle[Any, Any], customer_id: str, payload: dict[str, Any], update_id: str
) -> EventReceipt:
    try:
        receipt: EventReceipt = await _update_in_time(
            handle,
            "record_event",
            payload,
            EVENT_TIMEOUT,
            f"the journey for {customer_id} did not take the event",
            id=update_id,
            result_type=EventReceipt,
        )
    except WorkflowUpdateFailedError as exc:
        reason = _cause_message(exc)
        if JOURNEY_ROLLING_OVER in reason:
            raise JourneyBusy(f"the journey for {customer_id} is busy: {reason}") from exc
        raise JourneyOperationError(f"the journey refused the event: {reason}") from exc
    return receipt


async def recorded_event(client: Client, entry: HistoryEvent) -> dict[str, Any] | None:
    """The customer event a history entry carries, as sent: a `customer_event` signal or an
    accepted `record_event` update (what `send_event` sends); None for any other entry."""
    if entry.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED:
        signaled = entry.workflow_execution_signaled_event_attributes
        if signaled.signal_name != "customer_event":
            return None
        payloads = signaled.input.payloads
    elif entry.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_ACCEPTED:
        request = entry.workflow_execution_update_accepted_event_attributes.accepted_request
        if request.input.name != "record_event":
            return None
        payloads = request.input.args.payloads
    else:
        return None
    event: dict[str, Any] = (await client.data_converter.decode(list(payloads)))[0]
    return event


async def _update_in_time(
    handle: WorkflowHandle[Any, Any],
    update: str,
    argument: Any,
    timeout: timedelta,
    late: str,
    *,
    id: str | None = None,
    result_type: type | None = None,
) -> Any:
    """The journey's answer to `update`; `WorkerUnavailable` (`late` says what did not happen)
    when no worker gives it in time."""
    try:
        async with asyncio.timeout(timeout.total_seconds()):
            return await handle.execute_update(update, argument, id=id, result_type=result_type)
    except (TimeoutError, WorkflowUpdateRPCTimeoutOrCancelledError) as exc:
        raise WorkerUnavailable(
            f"{late} within {timeout.total_seconds():g} s: is worker.py running?"
        ) from exc


async def journey_state(client: Client, customer_id: str) -> JourneyState:
    """The `state` query of the customer's latest journey run, running or closed."""
    handle = client.get_workflow_handle(journey_id(customer_id))
    with _translated(customer_id):
        return await handle.query("state", result_type=JourneyState, rpc_timeout=QUERY_TIMEOUT)


async def run_command(
    client: Client,
    customer_id: str,
    command: Command,
    request: CommandRequest,
    *,
    update_id: str | None = None,
) -> CommandResult:
    """Execute an operator update; a refusal raises `CommandRejected` with the journey's reason.
    `update_id` names the update in the journey's history (the audit log keeps it, so the
    account timeline shows a command once)."""
    handle = client.get_workflow_handle(journey_id(customer_id))
    with _translated(customer_id):
        try:
            late = f"the journey for {customer_id} did not answer `{command}`"
            return await _update_in_time(
                handle,
                command,
                request,
                COMMAND_TIMEOUT,
                late,
                id=update_id,
                result_type=CommandResult,
            )
        except WorkflowUpdateFailedError as exc:
            raise CommandRejected(f"{command} refused: {_cause_message(exc)}") from exc


# ---- many journeys ---------------------------------------------------------------------------


def journey_query(
    *,
    tier: str | None = None,
    strategy: str | None = None,
    stage: str | None = None,
    status: StatusFilter = "running",
) -> str:
    """A visibility query over journeys, e.g. `WorkflowType="RetentionJourney" AND ...`."""
    clauses = [f'WorkflowType="{search_attributes.WORKFLOW_TYPE}"']
    if stage is not None and stage not in get_args(Stage):
        raise InvalidInput(f"--stage: {stage!r} is not one of {', '.join(get_args(Stage))}")
    for option, key, value in (
        ("--tier", search_attributes.RISK_TIER, tier),
        ("--strategy", search_attributes.STRATEGY, strategy),
        ("--stage", search_attributes.JOURNEY_STAGE, stage),
    ):
        if value is not None:
            clauses.append(f'{key.name}="{_keyword(option, value)}"')
    if status == "running":
        clauses.append('ExecutionStatus="Running"')
    elif status == "closed":
        clauses.append('ExecutionStatus!="Running"')
    elif status != "all":
        raise InvalidInput(f"--status: {status!r} is not one of running, closed, all")
    return " AND ".join(clauses)


async def journey_rows(client: Client, query: str) -> list[JourneyRow]:
    """Journeys matching a visibility query, from their search attributes (no queries)."""
    with _translated(None):
        return [_row(execution) async for execution in client.list_workflows(query)]


def _row(execution: WorkflowExecution) -> JourneyRow:
    found = execution.typed_search_attributes
    customer_id = found.get(search_attributes.CUSTOMER_ID) or execution.id.removeprefix(
        "retention-"
    )
    return JourneyRow(
        customer_id=customer_id,
        risk_tier=found.get(search_attributes.RISK_TIER) or None,
        strategy=found.get(search_attributes.STRATEGY),
        stage=found.get(search_attributes.JOURNEY_STAGE),
        churn_probability=found.get(search_attributes.CHURN_PROBABILITY),
        health_score=found.get(search_attributes.HEALTH_SCORE),
        status=_status_name(execution.status),
    )


def _status_name(status: WorkflowExecutionStatus | None) -> str:
    return status.name.lower() if status is not None else "unknown"


def _keyword(option: str, value: str) -> str:
    if not value or not all(c.isalnum() or c in "_-.:" for c in value):
        raise InvalidInput(f"{option}: {value!r} may hold only letters, digits and _ - . :")
    return value


# ---- Temporal failures as one line -----------------------------------------------------------


@contextmanager
def _translated(customer_id: str | None) -> Iterator[None]:
    try:
        yield
    except RPCError as exc:
        raise _rpc_error(exc, customer_id) from exc


def _rpc_error(exc: RPCError, customer_id: str | None) -> JourneyOperationError:
    message = exc.message
    if exc.status == RPCStatusCode.NOT_FOUND and customer_id is not None:
        if "already completed" in message:
            return JourneyClosed(
                f"the journey for {customer_id} has ended; `starter.py show {customer_id}` "
                "gives its outcome"
            )
        return JourneyNotFound(f"no journey for {customer_id}")
    if exc.status == RPCStatusCode.FAILED_PRECONDITION and "poller" in message:
        return WorkerUnavailable(
            f"no worker is polling {get_settings().task_queue}: start worker.py (or `make run`)"
        )
    if exc.status == RPCStatusCode.RESOURCE_EXHAUSTED or any(m in message for m in BUSY_MESSAGES):
        return JourneyBusy(
            f"the journey for {customer_id or '-'} cannot take it this moment; "
            f"send the event again shortly: {message}"
        )
    if exc.status in (RPCStatusCode.UNAVAILABLE, RPCStatusCode.DEADLINE_EXCEEDED) or (
        exc.status == RPCStatusCode.UNKNOWN and "transport error" in message  # a server restart
    ):
        return TemporalUnreachable(f"the Temporal server did not answer: {message}")
    return JourneyOperationError(f"Temporal refused the call ({exc.status.name}): {message}")


def _cause_message(exc: WorkflowUpdateFailedError) -> str:
    """The validator's own words, without the `ValueError: ` the SDK puts in front."""
    cause = exc.cause
    message = getattr(cause, "message", None) or str(cause or exc)
    kind = getattr(cause, "type", None)
    if kind and message.startswith(f"{kind}: "):
        message = message[len(kind) + 2 :]
    return message


# ---- erasure ---------------------------------------------------------------------------------


async def erase_journeys(client: Client, customer_id: str) -> int:
    """Delete every run of the customer's journey from Temporal (a running one is terminated
    first): their histories hold the customer's snapshot. Returns how many runs went."""
    workflow_id = journey_id(customer_id)
    runs = {
        execution.run_id
        async for execution in client.list_workflows(
            f'WorkflowId = "{_keyword("customer_id", workflow_id)}"'
        )
    }
    handle = client.get_workflow_handle(workflow_id)
    try:  # the newest run, even when visibility has not caught up with it yet
        latest = await handle.describe()
        runs.add(latest.run_id)
        if latest.status == WorkflowExecutionStatus.RUNNING:
            await handle.terminate(reason="customer data erased")
    except RPCError as exc:
        if exc.status != RPCStatusCode.NOT_FOUND:
            raise
    for run_id in runs:
        await client.workflow_service.delete_workflow_execution(
            DeleteWorkflowExecutionRequest(
                namespace=client.namespace,
                workflow_execution=ExecutionRef(workflow_id=workflow_id, run_id=run_id),
            )
        )
    try:
        await _until_deleted(handle)
    except TimeoutError as exc:
        raise RetentionError(
            f"Temporal was asked to delete {workflow_id} but still shows it after "
            f"{ERASURE_TIMEOUT.total_seconds():g} s; run forget again to finish"
        ) from exc
    return len(runs)


async def _until_deleted(handle: WorkflowHandle[Any, Any]) -> None:
    """Temporal deletes in the background: wait (bounded) until the journey is really gone."""
    async with asyncio.timeout(ERASURE_TIMEOUT.total_seconds()):
        while True:
            try:
                await handle.describe()
            except RPCError as exc:
                if exc.status == RPCStatusCode.NOT_FOUND:
                    return
                raise
            await asyncio.sleep(0.2)
