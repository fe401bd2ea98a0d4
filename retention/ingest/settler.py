"""Settling forwarded batches a few at a time: every signal's rows are written within
`EVERY` seconds, many batches in one transaction, so a busy forwarder costs the inbox one write
a tick rather than one per signal (on SQLite, every write waits for the one before).

A batch whose settlement is lost (the process dies first) is still `forwarding`; its lease
runs out and it is re-sent under the same request id, which Temporal drops (docs/ingestion.md).
"""

from __future__ import annotations

import asyncio
from concurrent.futures import Executor

from sqlalchemy import Engine

from retention.ingest import inbox
from retention.ingest.inbox import Settlement

EVERY = 0.05  # seconds


class Settler:
    def __init__(self, engine: Engine, executor: Executor) -> None:
        self._engine = engine
        self._executor = executor
        self._queue: list[tuple[Settlement, asyncio.Future[None]]] = []
        self._flushing: asyncio.Task[None] | None = None

    def settle(self, settlement: Settlement) -> asyncio.Future[None]:
        """Done once the rows are written (or failed, with the database's error)."""
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._queue.append((settlement, done))
        if self._flushing is None or self._flushing.done():
            self._flushing = asyncio.create_task(self._flush_soon())
        return done

    async def flush(self) -> None:
        """Write what waits now (at shutdown: nothing settled stays unwritten needlessly)."""
        while self._queue:
            queued, self._queue = self._queue, []
            await self._write(queued)

    async def _flush_soon(self) -> None:
        await asyncio.sleep(EVERY)
        await self.flush()

    async def _write(self, queued: list[tuple[Settlement, asyncio.Future[None]]]) -> None:
        settlements = [s for s, _ in queued]
        loop = asyncio.get_running_loop()
        try:
            await loop.run_in_executor(self._executor, inbox.settle_all, self._engine, settlements)
        except BaseException as exc:  # each waiting customer task hears of it
            _resolve(queued, exc)
            raise
        else:
            _resolve(queued, None)


def _resolve(
    queued: list[tuple[Settlement, asyncio.Future[None]]], exc: BaseException | None
) -> None:
    for _, done in queued:
        if done.done():
            continue
        if exc is None:
            done.set_result(None)
        else:
            done.set_exception(exc)
