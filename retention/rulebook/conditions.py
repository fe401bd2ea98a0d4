"""The `when` language: comparisons on facts, combined with `all`, `any` and `not`.

    when: {churn_probability: {gt: 0.6, lte: 0.8}}          # every comparison must hold
    when:
      any:
        - {segment: {in: [enterprise, strategic]}}
        - not: {nps: {present: true}}

A comparison on a fact the customer does not have (e.g. no NPS answer) is false; `not` is
logical negation, so `not: {nps: {gt: 6}}` holds for a customer without an NPS answer.

List facts (health alerts, risk factors, recent events, ...) take `contains` and `excludes`:

    when: {risk_factors: {contains: champion_risk}, recent_events: {excludes: login}}
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

ORDERING = ("gt", "gte", "lt", "lte")
OPERATORS = (*ORDERING, "eq", "ne", "in", "not_in", "present")
LIST_OPERATORS = ("contains", "excludes")
_NEGATED = {
    "gt": "lte", "gte": "lt", "lt": "gte", "lte": "gt",
    "eq": "ne", "ne": "eq", "in": "not_in", "not_in": "in",
    "contains": "excludes", "excludes": "contains",
}  # fmt: skip
_DURABLE = {"gt": "$gt", "gte": "$gte", "lt": "$lt", "lte": "$lte", "ne": "$neq"}


@dataclass(frozen=True)
class Compare:
    fact: str
    op: str
    value: Any


@dataclass(frozen=True)
class AllOf:
    items: tuple[Condition, ...]


@dataclass(frozen=True)
class AnyOf:
    items: tuple[Condition, ...]


@dataclass(frozen=True)
class Not:
    item: Condition


Condition = Compare | AllOf | AnyOf | Not


def parse_condition(raw: Any, facts: dict[str, type], where: str = "when") -> Condition:
    """A rule author's `when` as a condition tree; a ValueError names the place and the fact."""
    if not isinstance(raw, dict) or not raw:
        raise ValueError(f"{where}: expected a mapping of facts, all, any or not")
    parts = [_part(key, value, facts, f"{where}.{key}") for key, value in raw.items()]
    return parts[0] if len(parts) == 1 else AllOf(tuple(parts))


def _part(key: str, value: Any, facts: dict[str, type], where: str) -> Condition:
    if key in ("all", "any"):
        if not isinstance(value, list) or not value:
            raise ValueError(f"{where}: expected a list of conditions")
        items = tuple(parse_condition(v, facts, f"{where}[{i}]") for i, v in enumerate(value))
        return AllOf(items) if key == "all" else AnyOf(items)
    if key == "not":
        return Not(parse_condition(value, facts, where))
    if key not in facts:
        raise ValueError(f"{where}: unknown fact {key!r} (known: {', '.join(facts)})")
    if not isinstance(value, dict) or not value:
        raise ValueError(f"{where}: expected comparisons such as {{gt: 0.5}}")
    compares = tuple(_compare(key, op, v, facts, f"{where}.{op}") for op, v in value.items())
    return compares[0] if len(compares) == 1 else AllOf(compares)


def _compare(fact: str, op: str, value: Any, facts: dict[str, type], where: str) -> Compare:
    kind = facts[fact]
    if kind is list:
        return _list_compare(fact, op, value, where)
    if op in LIST_OPERATORS:
        lists = ", ".join(name for name, k in facts.items() if k is list)
        raise ValueError(f"{where}: {fact} is not a list; {op} works on {lists}")
    if op not in OPERATORS:
        raise ValueError(f"{where}: unknown comparison (use {', '.join(OPERATORS)})")
    if op == "present":
        if not isinstance(value, bool):
            raise ValueError(f"{where}: expected true or false")
        return Compare(fact, op, value)
    values = value if op in ("in", "not_in") else [value]
    if op in ("in", "not_in") and (not isinstance(value, list) or not value):
        raise ValueError(f"{where}: expected a list of values")
    for item in values:
        _check_type(item, kind, where, ordering=op in ORDERING)
    return Compare(fact, op, tuple(value) if op in ("in", "not_in") else value)


def _list_compare(fact: str, op: str, value: Any, where: str) -> Compare:
    if op not in LIST_OPERATORS:
        raise ValueError(f"{where}: {fact} is a list; use {' or '.join(LIST_OPERATORS)}")
    if not isinstance(value, str) or not value:
        raise ValueError(f"{where}: needs one name, not {value!r}")
    return Compare(fact, op, value)


def _check_type(value: Any, kind: type, where: str, ordering: bool) -> None:
    number = isinstance(value, int | float) and not isinstance(value, bool)
    if kind in (int, float) and not number:
        raise ValueError(f"{where}: needs a number, not {value!r}")
    if kind is str and (ordering or not isinstance(value, str)):
        raise ValueError(f"{where}: needs {'a number' if ordering else 'text'}, not {value!r}")


def negate(condition: Condition) -> Condition:
    """Push `not` down to comparisons (durable_rules has no negation of its own)."""
    match condition:
        case Not(item):
            return item
        case AllOf(items):
            return AnyOf(tuple(negate(i) for i in items))
        case AnyOf(items):
            return AllOf(tuple(negate(i) for i in items))
        case Compare(fact, "present", value):
            return Compare(fact, "present", not value)
        case Compare(fact, "contains" | "excludes" as op, value):  # a list is never absent
            return Compare(fact, _NEGATED[op], value)
        case Compare(fact, op, value):  # false when absent, so its negation also holds then
            return AnyOf((Compare(fact, _NEGATED[op], value), Compare(fact, "present", False)))
    raise TypeError(condition)


def to_durable(condition: Condition) -> dict[str, Any]:
    """The condition in durable_rules' JSON ruleset language."""
    match condition:
        case Not(item):
            return to_durable(negate(item))
        case AllOf(items):
            return {"$and": [to_durable(i) for i in items]}
        case AnyOf(items):
            return {"$or": [to_durable(i) for i in items]}
        case Compare(fact, "present", value):
            return {absent_flag(fact): not value}
        case Compare(fact, "contains" | "excludes" as op, value):
            return {member_flag(fact, value): op == "contains"}
        case Compare(fact, "eq", value):
            return {fact: value}
        case Compare(fact, "in", values):
            return {"$or": [{fact: v} for v in values]}
        case Compare(fact, "not_in", values):
            return {"$and": [{"$neq": {fact: v}} for v in values]}
        case Compare(fact, op, value):
            return {_DURABLE[op]: {fact: value}}
    raise TypeError(condition)


def absent_flag(fact: str) -> str:
    """The boolean fact that says `fact` has no value.

    durable_rules has `$nex` for absence, but a `$nex` inside `$or` hangs its engine (seen here
    with durable-rules 2.0.28), so absence is posted as a fact of its own and compared by equality.
    """
    return f"{fact}__absent"


def member_flag(fact: str, value: str) -> str:
    """The boolean fact that says list `fact` holds `value` (durable_rules has no negated
    membership, so each name a rule asks about is posted as true or false)."""
    return f"{fact}__has__{value}"


def _compares(condition: Condition) -> list[Compare]:
    match condition:
        case Not(item):
            return _compares(item)
        case AllOf(items) | AnyOf(items):
            return [c for item in items for c in _compares(item)]
        case Compare():
            return [condition]
    raise TypeError(condition)


@dataclass(frozen=True)
class PostedFacts:
    """What a set of conditions reads, and so what is posted to durable_rules: only those
    facts (its cost grows with every fact posted), their absence flags, and one membership
    flag per (list fact, name) asked about."""

    scalars: frozenset[str]
    members: frozenset[tuple[str, str]]

    @classmethod
    def of(cls, conditions: Iterable[Condition]) -> PostedFacts:
        compares = [c for condition in conditions for c in _compares(condition)]
        listed = ("contains", "excludes")
        return cls(
            scalars=frozenset(c.fact for c in compares if c.op not in listed),
            members=frozenset((c.fact, c.value) for c in compares if c.op in listed),
        )

    def post(self, facts: Mapping[str, Any]) -> dict[str, Any]:
        posted: dict[str, Any] = {}
        for name in self.scalars:
            value = facts[name]
            if value is not None:
                posted[name] = value
            posted[absent_flag(name)] = value is None
        for fact, name in self.members:
            posted[member_flag(fact, name)] = name in facts[fact]
        return posted


def comparisons(condition: Condition) -> list[Compare] | None:
    """The comparisons of a plain conjunction (all/nesting of all), else None."""
    match condition:
        case Compare():
            return [condition]
        case AllOf(items):
            found = [comparisons(i) for i in items]
            return None if any(f is None for f in found) else [c for f in found for c in f or []]
    return None
