"""Guard rails around sending: suppressions, frequency caps and quiet hours.

Pure and deterministic, so the journey workflow calls it directly: the time-zone database is
data (`zoneinfo` reads it once per zone and caches it), not a clock or the network.
Times here are on the journey's clock (retention/journey_clock.py), which is the real clock
unless the journey runs with a `time_scale`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, tzinfo
from typing import Protocol
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from retention.plan import FrequencyCap, QuietHours


class Rails(Protocol):
    """The journey's policy, or the guard rails the deliver activity is given."""

    @property
    def frequency_caps(self) -> Sequence[FrequencyCap]: ...

    @property
    def quiet_hours(self) -> QuietHours | None: ...


@dataclass(frozen=True)
class Hold:
    """A step may not go before `until` (journey clock), and why."""

    until: datetime
    why: str


def hold_for(
    policy: Rails,
    channel: str,
    now: datetime,
    sent: Sequence[datetime],
    timezone: str,
) -> Hold | None:
    """When a message on `channel` may go at the earliest, if not `now`: after the frequency
    cap's window has room (given the `sent` times on that channel) and outside quiet hours."""
    cap = next((c for c in policy.frequency_caps if c.channel == channel), None)
    quiet = policy.quiet_hours
    if quiet is not None and channel not in quiet.channels:
        quiet = None
    at, why = now, []
    for _ in range(3):  # a later time only empties the cap window: settles in two rounds
        moved = False
        if cap is not None and (room := _cap_room(cap, at, sent)) > at:
            at, moved = room, True
            why.append(f"{channel} cap of {cap.at_most} per {_hours(cap.per_hours)}")
        if quiet is not None and (end := quiet_hours_end(quiet, at, timezone)) is not None:
            at, moved = end, True
            why.append(f"quiet hours {quiet.start:%H:%M}-{quiet.end:%H:%M} {timezone}")
        if not moved:
            break
    if at == now:
        return None
    return Hold(at, "waited for the " + " and ".join(dict.fromkeys(why)))


def _cap_room(cap: FrequencyCap, at: datetime, sent: Sequence[datetime]) -> datetime:
    """The first moment from `at` when fewer than `at_most` sends lie in the window before it."""
    window = timedelta(hours=cap.per_hours)
    recent = sorted(t for t in sent if at - window < t <= at)
    if len(recent) < cap.at_most:
        return at
    return recent[len(recent) - cap.at_most] + window


def quiet_hours_end(quiet: QuietHours, at: datetime, timezone: str) -> datetime | None:
    """When the quiet hours that `at` falls in end (UTC), or None outside quiet hours."""
    local = at.astimezone(customer_zone(timezone))
    now = local.time().replace(tzinfo=None)
    if quiet.start < quiet.end:
        inside = quiet.start <= now < quiet.end
    else:  # spans midnight
        inside = now >= quiet.start or now < quiet.end
    if not inside:
        return None
    end = local.replace(
        hour=quiet.end.hour, minute=quiet.end.minute, second=0, microsecond=0, fold=0
    )
    if end <= local:
        end += timedelta(days=1)  # aware arithmetic in one zone keeps the wall-clock time
    return end.astimezone(UTC)


def customer_zone(name: str) -> tzinfo:
    """The customer's IANA zone; UTC for a name the time-zone database does not know."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        return UTC


def _hours(hours: float) -> str:
    return f"{hours / 24:g}d" if hours % 24 == 0 else f"{hours:g}h"
