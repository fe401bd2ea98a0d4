"""The `when` language: comparisons on facts, combined with `all`, `any` and `not`.

    when: {churn_probability: {gt: 0.6, lte: 0.8}}          # every comparison must hold
    when:
      any:
        - {segment: {in: [enterprise, strategic]}}
        - not: {nps: {present: true}}

A comparison on a fact the customer does not have (e.g. no NPS answer) is false; `not` is
logical negation, so `not: {nps: {gt: 6}}` holds for a customer without an NPS answer.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

ORDERING = ("gt", "gte", "lt", "lte")
OPERATORS = (*ORDERING, "eq", "ne", "in", "not_in", "present")
_NEGATED = {
    "gt": "lte", "gte": "lt", "lt": "gte", "lte": "gt",
    "eq": "ne", "ne": "eq", "in": "not_in", "not_in": "in",
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
    compares = tuple(_compare(key, op, v, facts[key], f"{where}.{op}") for op, v in value.items())
    return compares[0] if len(compares) == 1 else AllOf(compares)


def _compare(fact: str, op: str, value: Any, kind: type, where: str) -> Compare:
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


def as_durable_fact(facts: dict[str, Any]) -> dict[str, Any]:
    """Facts as posted: None values left out, and every fact's absence flag set."""
    posted = {key: value for key, value in facts.items() if value is not None}
    return posted | {absent_flag(key): value is None for key, value in facts.items()}


def comparisons(condition: Condition) -> list[Compare] | None:
    """The comparisons of a plain conjunction (all/nesting of all), else None."""
    match condition:
        case Compare():
            return [condition]
        case AllOf(items):
            found = [comparisons(i) for i in items]
            return None if any(f is None for f in found) else [c for f in found for c in f or []]
    return None
