"""`rules check`: everything wrong with a rule set, each finding at its file:line:column.

Beyond what loading refuses (syntax, unknown fields and facts, wrong types, missing templates),
this finds rules that can never fire, churn-probability bands that overlap or leave a gap,
templates that cannot render (a variable the renderer does not provide, at its line), and steps
that reach nobody at a sample customer (examples/customers/*.json): none of their roles, nor of
the fallback, has an active person with an address for the step's channel or fallback channel.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from retention.customer import CustomerSnapshot
from retention.errors import InvalidInput, RulebookError
from retention.population import read_customers
from retention.recipients import step_recipients
from retention.rulebook.conditions import Condition, comparisons
from retention.rulebook.loader import Rulebook, load_rulebook, locate
from retention.rulebook.schema import (
    CampaignMessage,
    Intervention,
    Offer,
    SeverityTier,
    Strategy,
)
from retention.rulebook.template_check import template_findings

PROBABILITY = "churn_probability"
# Beside rules/ in the checkout, found as `runtime.settings.ROOT` finds it.
SAMPLE_CUSTOMERS = Path(__file__).resolve().parents[2] / "examples" / "customers"


@dataclass(frozen=True)
class Interval:
    """A numeric range with open or closed ends."""

    low: float = float("-inf")
    low_closed: bool = False
    high: float = float("inf")
    high_closed: bool = False

    @property
    def empty(self) -> bool:
        return self.low > self.high or (
            self.low == self.high and not (self.low_closed and self.high_closed)
        )

    def meet(self, other: Interval) -> Interval:
        low = max((self.low, not self.low_closed), (other.low, not other.low_closed))
        high = min((self.high, self.high_closed), (other.high, other.high_closed))
        return Interval(low[0], not low[1], high[0], high[1])

    def within(self, other: Interval) -> bool:
        return self.empty or self.meet(other) == self

    def __str__(self) -> str:
        left, right = "[" if self.low_closed else "(", "]" if self.high_closed else ")"
        return f"{left}{self.low:g}, {self.high:g}{right}"


_BOUNDS = {
    "gt": lambda v: Interval(low=v),
    "gte": lambda v: Interval(low=v, low_closed=True),
    "lt": lambda v: Interval(high=v),
    "lte": lambda v: Interval(high=v, high_closed=True),
    "eq": lambda v: Interval(v, True, v, True),
}


def box(when: Condition) -> dict[str, Interval] | None:
    """The condition as one interval per fact, or None when it is not purely numeric ranges."""
    found = comparisons(when)
    if found is None:
        return None
    ranges: dict[str, Interval] = {}
    for c in found:
        if c.op not in _BOUNDS or not isinstance(c.value, int | float):
            return None
        ranges[c.fact] = ranges.get(c.fact, Interval()).meet(_BOUNDS[c.op](float(c.value)))
    return ranges


def covered_by(inner: dict[str, Interval], outer: dict[str, Interval]) -> bool:
    """Every fact set that satisfies `inner` also satisfies `outer`."""
    return all(inner.get(fact, Interval()).within(bound) for fact, bound in outer.items())


def check(rules_dir: Path, samples: Path = SAMPLE_CUSTOMERS) -> list[str]:
    """Findings as `file:line:column: message`; empty when the rule set is sound. `samples`:
    the customers (a folder of JSON files, or a population file) whose people steps must reach.
    The ingest service's `sources.yaml` is checked by `retention.ingest.sources.sources_findings`
    (ingest sits above the rulebook); `starter.py rules check` runs both."""
    try:
        rulebook = load_rulebook(rules_dir)
    except RulebookError as exc:
        return [str(exc)]
    return (
        _shadowed(rulebook, rules_dir)
        + _probability_bands(rulebook, rules_dir)
        + template_findings(rulebook.templates, rules_dir)
        + _unreachable(rulebook, rules_dir, samples)
    )


_Step = Intervention | CampaignMessage


def _unreachable(rulebook: Rulebook, rules_dir: Path, samples: Path) -> list[str]:
    """Steps that would reach nobody at a sample customer, each step once with its customers."""
    try:
        customers = read_customers(samples) if samples.exists() else []
    except InvalidInput as exc:
        return [f"sample customers: {exc}"]
    findings = []
    for file, loc, label, step in _addressed_steps(rulebook):
        nobody = [c.customer_id for c in customers if _reaches_nobody(step, rulebook, c)]
        if nobody:
            findings.append(
                f"{locate(rules_dir / file, loc)}: {label} reaches nobody at "
                f"{', '.join(nobody)} ({_reach(step, rulebook.journey.fallback_to)})"
            )
    return findings


def _reaches_nobody(step: _Step, rulebook: Rulebook, customer: CustomerSnapshot) -> bool:
    addressing = step.addressing(rulebook.journey.fallback_to)
    return not step_recipients(addressing, step.channel, step.fallback, customer)[1]


def _reach(step: _Step, fallback_to: Sequence[str]) -> str:
    """What was tried, e.g. `to executive_sponsor, then champion, primary; on phone, csm_task`."""
    channels = ", ".join(c for c in (step.channel, step.fallback) if c is not None)
    then = ", ".join(step.fallback_to if step.fallback_to is not None else fallback_to)
    return f"to {', '.join(step.to)}{f', then {then}' if then else ''}; on {channels}"


def _addressed_steps(rulebook: Rulebook) -> Iterator[tuple[str, tuple[str | int, ...], str, _Step]]:
    """Every step a plan can hold, with its file, place in it and a name for it."""
    for i, strategy in enumerate(rulebook.strategies):
        for j, step in enumerate(strategy.interventions):
            yield "strategies.yaml", ("strategies", i, "interventions", j), step.action, step
    for tier, steps in rulebook.timelines.items():
        for j, step in enumerate(steps):
            yield "timelines.yaml", ("timelines", tier, j), step.action, step
    for i, campaign in enumerate(rulebook.campaigns):
        for j, message in enumerate(campaign.messages):
            where = ("campaigns", i, "messages", j)
            yield "campaigns.yaml", where, f"{campaign.name}'s {message.template}", message


def _shadowed(rulebook: Rulebook, rules_dir: Path) -> list[str]:
    findings = []
    first_match: list[tuple[str, str, Sequence[Strategy | SeverityTier | Offer]]] = [
        ("strategies.yaml", "strategies", rulebook.strategies),
        ("timelines.yaml", "severity_tiers", rulebook.severity_tiers),
        ("offers.yaml", "offers", rulebook.offers.offers),
    ]
    for file, key, rules in first_match:
        boxes = [box(rule.when) for rule in rules]
        for i, (rule, mine) in enumerate(zip(rules, boxes, strict=True)):
            if mine is None:
                continue
            if any(v.empty for v in mine.values()):
                where = locate(rules_dir / file, (key, i, "when"))
                findings.append(f"{where}: {rule.name} can never fire: its `when` is impossible")
                continue
            earlier = next(
                (r for r, b in zip(rules[:i], boxes[:i], strict=True) if b and covered_by(mine, b)),
                None,
            )
            if earlier is not None:
                where = locate(rules_dir / file, (key, i, "when"))
                findings.append(
                    f"{where}: {rule.name} can never fire: {earlier.name} above it matches first"
                )
    return findings


def _probability_bands(rulebook: Rulebook, rules_dir: Path) -> list[str]:
    """Strategy bands on churn probability must tile [0, 1]: no overlap, no gap."""
    path = rules_dir / "strategies.yaml"
    bands = []
    for i, strategy in enumerate(rulebook.strategies):
        ranges = box(strategy.when)
        if ranges is None or set(ranges) != {PROBABILITY}:
            continue  # other facts decide too: first match, not bands
        bands.append((ranges[PROBABILITY].meet(Interval(0, True, 1, True)), strategy.name, i))
    bands.sort(key=lambda b: (b[0].low, not b[0].low_closed))
    findings = []
    reach = Interval(high=0, high_closed=False)  # everything below 0 counts as covered
    for band, name, i in bands:
        where = locate(path, ("strategies", i, "when"))
        if (band.low, not band.low_closed) < (reach.high, reach.high_closed):
            findings.append(f"{where}: {name}'s band {band} overlaps the band below it")
        elif (band.low, band.low_closed) != (reach.high, not reach.high_closed):
            gap = Interval(reach.high, not reach.high_closed, band.low, not band.low_closed)
            findings.append(f"{where}: churn probability {gap} matches no strategy")
        if (band.high, band.high_closed) > (reach.high, reach.high_closed):
            reach = band
    if bands and (reach.high, reach.high_closed) < (1, True):
        gap = Interval(reach.high, not reach.high_closed, 1, True)
        findings.append(f"{path}: churn probability {gap} matches no strategy")
    return findings
