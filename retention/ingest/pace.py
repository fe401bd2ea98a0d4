"""A token bucket: the forwarder's signals per second (`RETENTION_INGEST_FORWARD_RATE`), so a
backlog drains at a pace Temporal and the worker keep up with."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

_EPSILON = 1e-9


class Pace:
    def __init__(
        self,
        per_second: float,
        burst: float | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self._rate = per_second
        self._burst = burst if burst is not None else max(1.0, per_second / 10)
        self._tokens = self._burst
        self._clock, self._sleep = clock, sleep
        self._last = clock()
        self._lock = asyncio.Lock()

    async def take(self) -> None:
        """Wait until one more signal fits the rate."""
        async with self._lock:  # first come, first served
            while True:
                now = self._clock()
                self._tokens = min(self._burst, self._tokens + (now - self._last) * self._rate)
                self._last = now
                if self._tokens >= 1 - _EPSILON:  # not a float's rounding short of a token
                    self._tokens -= 1
                    return
                await self._sleep((1 - self._tokens) / self._rate)
