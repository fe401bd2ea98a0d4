"""Inbox → journeys: the service's background task that signals pending events.

Rows are claimed many at once (`claims.claim`); each claimed customer's batches go out in
order, one customer per task, up to `concurrency` customers at a time, all of them within
`rate` signals a second. A batch is settled once: `forwarded` (signalled into the running
journey, or a journey it opens started with signal-with-start; a coalesced batch's rows all
name the same workflow and batch), `no_journey` (kept: nobody runs a journey for the customer
and no rule opens one), or `failed` (Temporal or the stored customer refused it, so retrying
would not help; the note says why). While Temporal cannot be reached the rows go back to
pending, keeping their batch, and the forwarder retries with backoff.

A forwarder that dies between the signal and `settle` leaves the rows to be claimed again when
the lease ends (a live one renews its claims); the signal carries the batch's request id, so
Temporal drops the repeat. (Not for signal-with-start, whose request id the SDK draws itself:
see docs/ingestion.md.) `stop()` ends it gracefully: no new claims, each customer's signal in
flight finishes, the rest of its claims goes back to pending for another instance.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from typing import Any, TypeVar
from uuid import uuid4

from pydantic import ValidationError
from sqlalchemy import Engine
from temporalio.client import Client

from retention.customer import CustomerEvent
from retention.errors import CustomerNotFound, RetentionError
from retention.ingest import inbox
from retention.ingest.claims import Batch, Claim, claim
from retention.ingest.inbox import CLAIM_LEASE
from retention.ingest.pace import Pace
from retention.ingest.settler import Settler
from retention.ingest.sources import Sources
from retention.journey_state import JourneyOptions, journey_id
from retention.runtime.operations import (
    JourneyBusy,
    JourneyClosed,
    JourneyNotFound,
    TemporalUnreachable,
    WorkerUnavailable,
    send_event,
    start_journey_with_event,
)
from retention.store.records import load_customer

log = logging.getLogger(__name__)
T = TypeVar("T")

FIRST_BACKOFF = 1.0
MAX_BACKOFF = 30.0
IDLE_POLL = 1.0  # rows written by another process, a coalesced row coming due, a lease ended
MIN_PAUSE = 0.05  # between passes that found nothing: a burst of wakes is one claim
DEFAULT_RATE = 200.0
DEFAULT_CONCURRENCY = 32


class Forwarder:
    def __init__(
        self,
        engine: Engine,
        sources: Callable[[], Sources],
        connect: Callable[[], Awaitable[Client]],
        journey_options: JourneyOptions | None = None,
        task_queue: str | None = None,
        *,
        rate: float = DEFAULT_RATE,
        concurrency: int = DEFAULT_CONCURRENCY,
        lease: timedelta = CLAIM_LEASE,
    ) -> None:
        self.engine = engine
        self.sources = sources
        self.name = f"forwarder-{uuid4().hex[:8]}"
        self.connected = False
        # Set by the first claim: Temporal and the database both answered, it is forwarding.
        self.working = asyncio.Event()
        self._connect = connect
        self._client: Client | None = None
        self._options = journey_options or JourneyOptions()
        self._task_queue = task_queue  # None: the settings' queue
        self._wake = asyncio.Event()
        self._pace = Pace(rate)
        self._concurrency = concurrency
        self._lease = lease
        self._stopping = False
        self._unreachable: TemporalUnreachable | None = None
        # its own threads: the HTTP side's writes never hold up a claim or a settlement
        self._executor = ThreadPoolExecutor(max_workers=2, thread_name_prefix=self.name)
        self._settler = Settler(engine, self._executor)

    def wake(self) -> None:
        """A new row is in the inbox: forward it now rather than at the next poll."""
        self._wake.set()

    def stop(self) -> None:
        """Claim nothing more; `run` returns once each customer's signal in flight is done and
        the rest of the claims is released."""
        self._stopping = True
        self._wake.set()

    @property
    def client(self) -> Client | None:
        """The connected client; None while Temporal is away."""
        return self._client

    async def run(self) -> None:
        """Forward until stopped or cancelled; Temporal being away only delays the rows."""
        log.info("%s forwarding (claim lease %.0f s)", self.name, self._lease.total_seconds())
        backoff = FIRST_BACKOFF
        while not self._stopping:
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
                await asyncio.sleep(MIN_PAUSE)
                await self._idle(IDLE_POLL)
                continue
            await self._idle(backoff)
            backoff = min(backoff * 2, MAX_BACKOFF)

    async def drain(self) -> int:
        """Forward every row due now; returns how many rows were settled. Raises
        TemporalUnreachable (after putting back what it held) when Temporal is away."""
        client = await self._client_or_connect()
        self._unreachable = None
        active: set[asyncio.Task[int]] = set()
        settled = 0
        renewing = asyncio.create_task(self._renew_claims())
        try:
            while True:
                free = self._concurrency - len(active)
                if self._claiming and (not active or free >= self._refill):
                    for work in await self._db(self._claim, free):
                        active.add(asyncio.create_task(self._customer(client, work)))
                    self.working.set()
                if not active:
                    break
                done, active = await asyncio.wait(active, return_when=asyncio.FIRST_COMPLETED)
                settled += sum(task.result() for task in done)
        finally:
            await _cancel({*active, renewing})  # shutdown: each task puts its rows back
            await self._settler.flush()
        if self._unreachable is not None:
            raise self._unreachable
        return settled

    @property
    def _claiming(self) -> bool:
        return self._unreachable is None and not self._stopping

    async def _renew_claims(self) -> None:
        """Keep this forwarder's claims while it works through them, however long that takes."""
        while True:
            await asyncio.sleep(self._lease.total_seconds() / 3)
            try:
                await self._db(inbox.renew, self.engine, self.name)
            except Exception:  # the database away: the claims may lapse, nothing worse
                log.exception("renewing %s's claims failed", self.name)

    @property
    def _refill(self) -> int:
        """Claim again once this many slots are free: fewer, larger claims."""
        return max(1, self._concurrency // 4)

    def _claim(self, customers: int) -> list[Claim]:
        return claim(self.engine, self.name, customers=customers, lease=self._lease)

    async def _db(self, call: Callable[..., T], *args: object) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._executor, call, *args)

    async def _client_or_connect(self) -> Client:
        if self._client is None:
            self._client = await self._connect()
            self.connected = True
        return self._client

    async def _idle(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), seconds)
        self._wake.clear()

    async def _customer(self, client: Client, work: Claim) -> int:
        """One customer's batches in order; what is not settled goes back to pending."""
        left = list(work.batches)
        written: list[asyncio.Future[None]] = []
        try:
            while left and self._claiming:
                written.append(await self._forward(client, work.customer_id, left[0]))
                left.pop(0)
            await asyncio.gather(*written)
        except TemporalUnreachable as exc:
            self._unreachable = exc
        except (JourneyBusy, WorkerUnavailable) as exc:  # its rows wait for the next pass
            log.warning("%s", exc)
            await self._release(left, str(exc))
            left = []
        except Exception as exc:  # a bug or the database: the rows wait, the others go on
            log.exception("forwarding %s's events failed", work.customer_id)
            await self._release(left, repr(exc))
            left = []
        finally:
            if left:
                await self._release(left, repr(self._unreachable or "forwarder stopped"))
        return len(work.ids) - sum(len(b.rows) for b in left)

    async def _release(self, batches: list[Batch], note: str) -> None:
        ids = [i for batch in batches for i in batch.ids]
        await self._db(inbox.release, self.engine, ids, note)

    async def _forward(
        self, client: Client, customer_id: str, batch: Batch
    ) -> asyncio.Future[None]:
        """Signal the batch; done when its rows are settled."""
        try:
            event = batch.event()
        except ValidationError as exc:  # written by an older version, no longer valid
            return self._settle(batch, "failed", note=f"stored event refused: {exc}")
        await self._pace.take()
        try:
            return await self._deliver(client, customer_id, batch, event)
        except (TemporalUnreachable, JourneyBusy, WorkerUnavailable):
            raise
        except RetentionError as exc:  # Temporal or the stored customer refused it: final
            return self._settle(batch, "failed", note=str(exc))

    async def _deliver(
        self, client: Client, customer_id: str, batch: Batch, event: CustomerEvent
    ) -> asyncio.Future[None]:
        try:
            await send_event(client, customer_id, event, request_id=batch.request_id)
        except (JourneyNotFound, JourneyClosed):
            return await self._without_journey(client, customer_id, batch, event)
        return self._settle(batch, "forwarded", workflow_id=journey_id(customer_id))

    async def _without_journey(
        self, client: Client, customer_id: str, batch: Batch, event: CustomerEvent
    ) -> asyncio.Future[None]:
        try:
            customer = await self._db(load_customer, self.engine, customer_id)
        except CustomerNotFound:
            return self._settle(batch, "no_journey", note="no running journey; customer unknown")
        rule = await self._db(self.sources().opener, event, customer)
        if rule is None:
            return self._settle(batch, "no_journey", note="no running journey; no rule opens one")
        workflow_id = await start_journey_with_event(
            client, customer, event, self._options, task_queue=self._task_queue
        )
        note = f"journey started by sources.yaml {rule}"
        log.info("inbox %s: %s for %s", batch.name, note, customer_id)
        return self._settle(batch, "forwarded", workflow_id=workflow_id, started=True, note=note)

    def _settle(
        self,
        batch: Batch,
        status: inbox.Settled,
        *,
        workflow_id: str | None = None,
        started: bool = False,
        note: str | None = None,
    ) -> asyncio.Future[None]:
        if batch.coalesced:
            count = f"one signal for {len(batch.rows)} rows, batch {batch.name}"
            note = f"{note}; {count}" if note else count
        return self._settler.settle(inbox.Settlement(batch.ids, status, workflow_id, started, note))


async def _cancel(tasks: Iterable[asyncio.Task[Any]]) -> None:
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
