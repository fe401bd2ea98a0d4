"""Lift: retention of treated customers minus retention of the holdout, with a 95 % interval.

The interval is Newcombe's hybrid score interval (Newcombe 1998, method 10) built from two
Wilson score intervals. A holdout is small by design (10 % of at-risk customers), and its
retention can sit at 0 or 1; the Wald interval collapses to a width of zero there and covers
far below 95 % at small sizes, while Newcombe's keeps close to nominal coverage, never leaves
[-1, 1] and needs no continuity fudge.
"""

from __future__ import annotations

import math

from pydantic import BaseModel, Field

Z_95 = 1.959963984540054
MIN_GROUP_SIZE = 20
"""Fewer resolved customers than this in either group: no conclusion, whatever the interval."""


class GroupRetention(BaseModel):
    customers: int = Field(ge=0, description="customers whose journey reached an outcome")
    retained: int = Field(ge=0)

    @property
    def rate(self) -> float | None:
        return self.retained / self.customers if self.customers else None


class Lift(BaseModel):
    scope: str = Field(description="overall, or the strategy the journeys started with")
    treated: GroupRetention
    holdout: GroupRetention
    difference: float | None = Field(description="treated retention minus holdout retention")
    low: float | None = Field(description="95 % interval, lower end")
    high: float | None = Field(description="95 % interval, upper end")
    conclusive: bool
    verdict: str = Field(description="one sentence a reader can act on")


def wilson_interval(successes: int, trials: int, z: float = Z_95) -> tuple[float, float]:
    """Wilson score interval for one proportion."""
    if trials <= 0:
        raise ValueError("trials must be positive")
    p = successes / trials
    denominator = 1 + z * z / trials
    centre = (p + z * z / (2 * trials)) / denominator
    half = z * math.sqrt(p * (1 - p) / trials + z * z / (4 * trials * trials)) / denominator
    return max(0.0, centre - half), min(1.0, centre + half)


def newcombe_interval(
    treated: GroupRetention, holdout: GroupRetention, z: float = Z_95
) -> tuple[float, float, float]:
    """(difference, low, high) for treated rate minus holdout rate; both groups non-empty."""
    p1, p2 = treated.retained / treated.customers, holdout.retained / holdout.customers
    l1, u1 = wilson_interval(treated.retained, treated.customers, z)
    l2, u2 = wilson_interval(holdout.retained, holdout.customers, z)
    difference = p1 - p2
    low = difference - math.sqrt((p1 - l1) ** 2 + (u2 - p2) ** 2)
    high = difference + math.sqrt((u1 - p1) ** 2 + (p2 - l2) ** 2)
    return difference, low, high


def measure_lift(scope: str, treated: GroupRetention, holdout: GroupRetention) -> Lift:
    groups = {"scope": scope, "treated": treated, "holdout": holdout}
    if not treated.customers or not holdout.customers:
        missing = "holdout" if not holdout.customers else "treated"
        verdict = f"no {missing} customer has an outcome yet: lift cannot be measured"
        return Lift(**groups, difference=None, low=None, high=None, conclusive=False,
                    verdict=verdict)  # fmt: skip
    difference, low, high = newcombe_interval(treated, holdout)
    small = min(treated.customers, holdout.customers) < MIN_GROUP_SIZE
    return Lift(
        **groups, difference=difference, low=low, high=high,
        conclusive=not small and (low > 0 or high < 0),
        verdict=_verdict(difference, low, high, small),
    )  # fmt: skip


def _verdict(difference: float, low: float, high: float, small: bool) -> str:
    span = f"{difference:+.1%} (95 % interval {low:+.1%} to {high:+.1%})"
    if small:
        return (
            f"{span}: too few customers (under {MIN_GROUP_SIZE} in a group) "
            "— the interval is too wide to conclude"
        )
    if low <= 0 <= high:
        return f"{span}: the interval contains 0 — too wide to conclude"
    direction = "keeps more" if difference > 0 else "keeps fewer"
    return f"{span}: treatment {direction} customers than the holdout"
