"""Simulated customers living through their real journeys, day by day, on the time-skipping
server: the journeys deliver (captured), the ground truth (`response.py`) decides who churns,
and a churn goes to the journey as the real `churned` event.

On day 0 the real PortfolioScan workflow scores the portfolio and starts a journey for each
customer it calls at risk. A journey closes on its own after its plan and the rules'
observation window (three to five weeks): the customer's next one starts the next day, as the
daily scan would start it (a simulated customer's stored snapshot never changes, so the scan
would pick the same customers again), so that every at-risk customer is followed for all the
days run. At the end, journeys still running hear `renewed` (outcome `saved`).

Each day has two moments half a day apart: journeys start at one (`restart_closed`), the
checks and the events happen at the other (`live_day`). A journey's timers fall on whole days
after its start, so they never fire while an event is being handled: on the time-skipping test
server a timer firing during that workflow task makes the journey's cancel of it refused, and
the journey never gets another task (temporalio/sdk-java #2606, #3088); the simulated clock
also runs on in real time between the sleeps, so without the half day every journey started
late in one check would have its timers fire during a later one.

The interventions a customer got are read from their journeys' `state` (each delivered step
with its workflow time), never from the database's wall-clock timestamps: on the time-skipping
server those are real time, not simulated time.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, TypeVar

from sqlalchemy import Engine
from sqlmodel import col, select
from temporalio.client import WorkflowHandle
from temporalio.testing import WorkflowEnvironment

from retention.analytics.response import CustomerResponse
from retention.customer import CustomerEvent, CustomerSnapshot
from retention.errors import RetentionError
from retention.journey_state import JourneyOptions, JourneyState, journey_id
from retention.runtime.operations import (
    QUERY_TIMEOUT,
    send_event,
    start_journey,
    start_journey_with_event,
)
from retention.scan.requests import ScanRequest
from retention.scan.schedule import start_scan
from retention.store.db import session
from retention.store.tables import JourneyRow

JOURNEYS_RECORDED_WITHIN = timedelta(minutes=10)
CONCURRENT_CALLS = 16  # hundreds of queries at once queue in the worker past their timeout
CLOSED_WITHIN = timedelta(minutes=5)
POLL_SECONDS = 0.2
T = TypeVar("T")


@dataclass
class _Account:
    """One at-risk customer: the ground truth, and their current journey."""

    customer: CustomerSnapshot
    response: CustomerResponse
    journey_key: str
    handle: WorkflowHandle[Any, JourneyState]
    open: bool = True
    holdout: bool = False


class SimulatedPortfolio:
    def __init__(
        self,
        env: WorkflowEnvironment,
        task_queue: str,
        engine: Engine,
        customers: dict[str, tuple[CustomerSnapshot, CustomerResponse]],
    ) -> None:
        """`customers`: every generated customer by id, with their ground truth."""
        self._env = env
        self._client = env.client
        self._task_queue = task_queue
        self._engine = engine
        self._customers = customers
        self.accounts: dict[str, _Account] = {}
        self._checked_at: datetime | None = None

    async def scan(self) -> None:
        """Day 0: the real portfolio scan starts the at-risk customers' journeys."""
        scan = await start_scan(self._client, self._task_queue, ScanRequest())
        result = await scan.result()
        if result.failed:
            raise RetentionError(f"the portfolio scan failed for {result.failed} customers")
        for customer_id, key in await self._recorded_journeys(result.started):
            customer, response = self._customers[customer_id]
            handle = self._client.get_workflow_handle(
                journey_id(customer_id), result_type=JourneyState
            )
            self.accounts[customer_id] = _Account(customer, response, key, handle)

    async def begin(self) -> None:
        """The first day begins now (half a day after the scan started the journeys)."""
        self._checked_at = await self._env.get_current_time()

    async def live_day(self, day: int) -> None:
        """At the end of day `day`: read what each journey delivered, let the ground truth say
        who churned that day, and tell their journeys."""
        assert self._checked_at is not None, "begin first"
        began, self._checked_at = self._checked_at, await self._env.get_current_time()
        await self._follow_journeys()
        leaving = [a for a in self.accounts.values() if a.response.live_day(day, began)]
        await _each(self._churn, leaving)

    async def restart_closed(self) -> None:
        """The next journey of each customer still with us whose journey has closed."""
        closed = [a for a in self.accounts.values() if not a.open and a.response.stays]
        await _each(self._restart, closed)

    async def finish(self) -> None:
        """Journeys still running at the end hear `renewed`; wait until every journey closed."""
        staying = [a for a in self.accounts.values() if a.open]
        renewed = CustomerEvent(type="renewed", at=await self._env.get_current_time())
        await _each(lambda a: send_event(self._client, a.customer.customer_id, renewed), staying)
        await self._final_states(list(self.accounts.values()))

    async def _follow_journeys(self) -> None:
        """Every open journey's deliveries so far; a journey that has closed is read to its end
        and marked closed (its customer gets a new one)."""
        finished = self._finished_keys()
        open_ = [a for a in self.accounts.values() if a.open]
        ended = [a for a in open_ if a.journey_key in finished]
        running = [a for a in open_ if a.journey_key not in finished]
        states = await _each(self._state, running)
        for account, state in zip(running, states, strict=True):
            if state.outcome is None:
                self._note(account, state)
            else:  # closing: read it once it has closed
                ended.append(account)
        for account, state in zip(ended, await self._final_states(ended), strict=True):
            self._note(account, state)
            account.open = False

    async def _final_states(self, closing: list[_Account]) -> list[JourneyState]:
        """Each journey's result: it has its outcome, so only recording is left to do."""
        try:
            async with asyncio.timeout(CLOSED_WITHIN.total_seconds()):
                return await _each(lambda account: account.handle.result(), closing)
        except TimeoutError as exc:
            raise RetentionError(
                f"journeys did not close within {CLOSED_WITHIN.total_seconds():g} s of their "
                "outcome: is the time-skipping server stuck?"
            ) from exc

    def _note(self, account: _Account, state: JourneyState) -> None:
        account.holdout = state.holdout
        if state.holdout:
            return
        for step in state.steps:
            if step.status == "done" and step.done_at is not None:
                account.response.deliver(step.step.action, step.channel_used, step.done_at)

    async def _churn(self, account: _Account) -> None:
        """The `churned` event, to the running journey or, between two journeys, to a new one
        (signal-with-start, as event ingestion does)."""
        churned = CustomerEvent(type="churned", at=self._checked_at)
        await start_journey_with_event(
            self._client, account.customer, churned, JourneyOptions(), task_queue=self._task_queue
        )
        account.handle = self._client.get_workflow_handle(
            journey_id(account.customer.customer_id), result_type=JourneyState
        )
        account.open = False

    async def _restart(self, account: _Account) -> None:
        handle = await start_journey(
            self._client,
            None,
            account.customer.customer_id,
            JourneyOptions(),
            known_customer=account.customer,
            task_queue=self._task_queue,
        )
        account.handle = handle
        account.journey_key = f"{handle.id}/{handle.first_execution_run_id}"
        account.open = True

    async def _state(self, account: _Account) -> JourneyState:
        return await account.handle.query(
            "state", result_type=JourneyState, rpc_timeout=QUERY_TIMEOUT
        )

    def _finished_keys(self) -> set[str]:
        query = select(JourneyRow.journey_key).where(col(JourneyRow.finished_at).is_not(None))
        with session(self._engine) as db:
            return set(db.exec(query).all())

    async def _recorded_journeys(self, started: int) -> list[tuple[str, str]]:
        """(customer id, journey key) of the journeys the scan started, once each has recorded
        its start (after its first assessment and decision)."""
        query = select(JourneyRow.customer_id, JourneyRow.journey_key)
        deadline = asyncio.get_running_loop().time() + JOURNEYS_RECORDED_WITHIN.total_seconds()
        while True:
            with session(self._engine) as db:
                rows = [(customer_id, key) for customer_id, key in db.exec(query).all()]
            if len(rows) >= started:
                return rows
            if asyncio.get_running_loop().time() > deadline:
                raise RetentionError(f"{len(rows)} of {started} journeys recorded their start")
            await asyncio.sleep(POLL_SECONDS)


async def _each(call: Callable[[_Account], Awaitable[T]], accounts: list[_Account]) -> list[T]:
    """`call` for every account, CONCURRENT_CALLS at a time, in order."""
    limit = asyncio.Semaphore(CONCURRENT_CALLS)

    async def one(account: _Account) -> T:
        async with limit:
            return await call(account)

    return await asyncio.gather(*(one(account) for account in accounts))
