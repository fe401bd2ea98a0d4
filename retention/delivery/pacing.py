"""At most one post a second per Slack channel, from every thread of the process
(docs/delivery.md, "CSM alerts in Slack").

Slack takes about one chat.postMessage a second per channel and answers 429 beyond short
bursts. Posts to one channel take turns: each starts at least `spacing` after the previous one
to that channel ended (its answer came back), so they reach Slack that far apart whatever the
network did. A turn more than `max_wait` away is not waited for: the caller gets the wait
back, to retry after it, rather than holding an activity slot. Other channels are not held up.

Only this process's posts are paced: several worker processes posting to one channel can still
meet Slack's limit, and its 429 (with Retry-After) stays the backstop.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import TypeVar

T = TypeVar("T")

SPACING = 1.0  # seconds between two posts to one channel (Slack: about one a second)
MAX_WAIT = 5.0  # seconds a post may wait for its turn; beyond that it is retried later


@dataclass
class _Channel:
    turn: threading.Lock = field(default_factory=threading.Lock)  # held while one posts
    last: float | None = None  # when the previous post ended, on the pacer's clock
    waiting: int = 0  # posts waiting for the turn


class ChannelPacer:
    def __init__(
        self,
        spacing: float = SPACING,
        max_wait: float = MAX_WAIT,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._spacing = spacing
        self._max_wait = max_wait
        self._clock = clock
        self._sleep = sleep
        self._lock = threading.Lock()
        self._channels: dict[str, _Channel] = {}

    def paced(self, channel: str, post: Callable[[], T]) -> T | timedelta:
        """`post()` in the channel's turn, once `spacing` has passed since the previous post
        there ended; or, without posting, how long until the turn when that is over
        `max_wait` (whole seconds, as a Retry-After)."""
        state, wait = self._queue(channel)
        if wait is not None:
            return wait
        try:
            # A bound on the lock too: a post that hangs past its own timeout must not hold
            # every later one.
            taken = state.turn.acquire(timeout=self._max_wait + self._spacing)
        finally:
            with self._lock:
                state.waiting -= 1
        if not taken:
            return timedelta(seconds=math.ceil(self._max_wait))
        try:
            if state.last is not None:
                self._sleep(max(0.0, state.last + self._spacing - self._clock()))
            return post()
        finally:
            state.last = self._clock()
            state.turn.release()

    def queued(self, channel: str) -> int:
        """Posts waiting for the channel's turn (not the one posting)."""
        with self._lock:
            state = self._channels.get(channel)
            return state.waiting if state is not None else 0

    def _queue(self, channel: str) -> tuple[_Channel, timedelta | None]:
        """The channel, and the wait when it is too long to join the queue."""
        with self._lock:
            state = self._channels.setdefault(channel, _Channel())
            ahead = state.waiting + state.turn.locked()
            since = 0.0 if state.last is None else state.last + self._spacing - self._clock()
            estimate = max(0.0, since) + ahead * self._spacing
            if estimate > self._max_wait:
                return state, timedelta(seconds=math.ceil(estimate))
            state.waiting += 1
        return state, None
