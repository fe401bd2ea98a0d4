"""Inbox → journeys: the service's background task that signals each pending event.

A row is settled once: `forwarded` (signalled into the running journey, or a journey it opens
started with signal-with-start), `no_journey` (kept: nobody runs a journey for the customer and
no rule opens one), or `failed` (Temporal or the stored customer refused it, so retrying would
not help; the note says why). While Temporal cannot be reached rows stay pending and the
forwarder retries with backoff.

A forwarder that dies between the signal and `settle` leaves the row to be claimed again when
its lease ends; the signal carries the row's request id, so Temporal drops the repeat. (Not for
signal-with-start, whose request id the SDK draws itself: see the README.)
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from uuid import uuid4

from sqlalchemy import Engine
from temporalio.client import Client

from retention.customer import CustomerEvent
from retention.errors import CustomerNotFound, RetentionError
from retention.ingest import inbox
from retention.ingest.sources import Sources
from retention.journey import JourneyOptions, journey_id
from retention.operations import (
    JourneyClosed,
    JourneyNotFound,
    TemporalUnreachable,
    send_event,
    start_journey_with_event,
)
from retention.store.records import load_customer
from retention.store.tables import InboxRow

log = logging.getLogger(__name__)

FIRST_BACKOFF = 1.0
MAX_BACKOFF = 30.0
IDLE_POLL = 2.0  # rows written by another process, or a claim whose lease ran out


class Forwarder:
    def __init__(
        self,
        engine: Engine,
        sources: Callable[[], Sources],
        connect: Callable[[], Awaitable[Client]],
        journey_options: JourneyOptions | None = None,
        task_queue: str | None = None,
    ) -> None:
        self.engine = engine
        self.sources = sources
        self.name = f"forwarder-{uuid4().hex[:8]}"
        self.connected = False
        self._connect = connect
        self._client: Client | None = None
        self._options = journey_options or JourneyOptions()
        self._task_queue = task_queue  # None: the settings' queue
        self._wake = asyncio.Event()

    def wake(self) -> None:
        """A new row is in the inbox: forward it now rather than at the next poll."""
        self._wake.set()

    async def run(self) -> None:
        """Forward until cancelled; Temporal being away only delays the rows."""
        backoff = FIRST_BACKOFF
        while True:
            try:
                await self.drain()
            except TemporalUnreachable as exc:
                self.connected = False
                self._client = None
                log.warning("Temporal unreachable, retrying in %.0f s: %s", backoff, exc)
            except Exception:  # e.g. the database away: the task must outlive it
                log.exception("forwarding failed, retrying in %.0f s", backoff)
            else:
                backoff = FIRST_BACKOFF
                await self._idle(IDLE_POLL)
                continue
            await self._idle(backoff)
            backoff = min(backoff * 2, MAX_BACKOFF)

    async def drain(self) -> int:
        """Forward every claimable row, oldest first; returns how many were settled."""
        client = await self._client_or_connect()
        settled = 0
        while (row := await self._claim()) is not None:
            try:
                await self._forward(client, row)
            except BaseException as exc:  # unsettled (also on shutdown): pending again at once
                await asyncio.to_thread(inbox.release, self.engine, _id(row), str(exc) or repr(exc))
                raise
            settled += 1
        return settled

    async def _claim(self) -> InboxRow | None:
        return await asyncio.to_thread(inbox.claim_next, self.engine, self.name)

    async def _client_or_connect(self) -> Client:
        if self._client is None:
            self._client = await self._connect()
            self.connected = True
        return self._client

    async def _idle(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), seconds)
        self._wake.clear()

    async def _forward(self, client: Client, row: InboxRow) -> None:
        try:
            await self._deliver(client, row, CustomerEvent.model_validate(row.event))
        except TemporalUnreachable:
            raise
        except RetentionError as exc:  # Temporal or the stored customer refused it: final
            await self._settle(row, "failed", note=str(exc))

    async def _deliver(self, client: Client, row: InboxRow, event: CustomerEvent) -> None:
        customer_id = str(row.customer_id)
        try:
            await send_event(client, customer_id, event, request_id=_request_id(row))
        except (JourneyNotFound, JourneyClosed):
            await self._without_journey(client, row, event)
            return
        await self._settle(row, "forwarded", workflow_id=journey_id(customer_id))

    async def _without_journey(self, client: Client, row: InboxRow, event: CustomerEvent) -> None:
        customer_id = str(row.customer_id)
        try:
            customer = await asyncio.to_thread(load_customer, self.engine, customer_id)
        except CustomerNotFound:
            await self._settle(row, "no_journey", note="no running journey; customer unknown")
            return
        rule = await asyncio.to_thread(self.sources().opener, event, customer)
        if rule is None:
            await self._settle(row, "no_journey", note="no running journey; no rule opens one")
            return
        workflow_id = await start_journey_with_event(
            client, customer, event, self._options, task_queue=self._task_queue
        )
        note = f"journey started by sources.yaml {rule}"
        log.info("inbox %s: %s for %s", row.id, note, customer_id)
        await self._settle(row, "forwarded", workflow_id=workflow_id, started=True, note=note)

    async def _settle(
        self,
        row: InboxRow,
        status: inbox.Settled,
        *,
        workflow_id: str | None = None,
        started: bool = False,
        note: str | None = None,
    ) -> None:
        await asyncio.to_thread(
            inbox.settle,
            self.engine,
            _id(row),
            status,
            workflow_id=workflow_id,
            started_journey=started,
            note=note,
        )


def _request_id(row: InboxRow) -> str:
    """The same for every attempt at a row: Temporal drops a repeated signal to a run."""
    return f"inbox:{row.source}:{row.source_event_id}"


def _id(row: InboxRow) -> int:
    assert row.id is not None  # a claimed row was read back from the table
    return row.id
