"""Journey time: a journey may run `time_scale` times faster than real time (a demo, a
simulation); its plan, checkpoints and guard rails are all judged on this one clock, so a
sped-up journey keeps them in proportion. Pure arithmetic, safe in workflow code."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

_SECOND = timedelta(seconds=1)


@dataclass(frozen=True)
class JourneyClock:
    """Journey time runs `scale` times faster than real time from `started_at`; guard rails
    (quiet hours, cap windows) are judged on it so a sped-up demo keeps them, in proportion."""

    started_at: datetime
    scale: float

    def journey(self, real: datetime) -> datetime:
        return self.started_at + (real - self.started_at) * self.scale

    def span(self, journey_hours: float) -> timedelta:
        """How long `journey_hours` of journey time take in real time."""
        return timedelta(hours=journey_hours / self.scale)

    def hours_at(self, real: datetime) -> float:
        """Journey hours gone by at the real time `real`."""
        return (real - self.started_at).total_seconds() / 3600 * self.scale

    def real(self, journey: datetime) -> datetime:
        """Rounded up to the whole second, so a hold never ends a rounding error early."""
        exact = self.started_at + (journey - self.started_at) / self.scale
        return exact if not exact.microsecond else exact.replace(microsecond=0) + _SECOND
