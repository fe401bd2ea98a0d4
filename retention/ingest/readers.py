"""Which event types the rule set and the journey read, and where: what `delivery` in
sources.yaml may not drop (`record`) or blur (`coalesce`). `rules check` reports every refusal
and the ingest service refuses to start with one, or to take up an edit that has one.

The rule files are read as YAML, not loaded as a rule book: a refusal here must not wait for
(or hide behind) a mistake elsewhere, which `rules check` reports on its own.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import yaml

from retention import events
from retention.errors import RulebookError
from retention.ingest.modes import CoalesceRule, DeliveryRule
from retention.rulebook.loader import compose, locate

SOURCES_FILE = "sources.yaml"

# Types whose every event carries data of its own; one signal standing for several would keep
# only the newest's (retention/customer.py, CustomerEvent).
PER_EVENT_DATA = {
    "nps_response": "each answer's score",
    "unsubscribed": "the channel and person each unsubscribe names",
    "contact_changed": "the person each change names",
    "milestone_reached": "which milestone each one is",
    "task_completed": "which CSM task each one completes",
    "payment_failed": "the invoice each one names",
    "payment_succeeded": "the invoice each one names",
}


@dataclass(frozen=True)
class Reader:
    """A place that reads an event type: `where` is file:line:column (or a file)."""

    event: str
    where: str
    what: str
    ends_journey: bool = False
    reads_data: bool = False


def readers(rules_dir: Path) -> list[Reader]:
    found = _journey_exits(rules_dir) + _campaigns(rules_dir) + _conditions(rules_dir)
    return found + _openers(rules_dir) + _code_readers()


def delivery_findings(rules_dir: Path, delivery: dict[str, DeliveryRule]) -> list[str]:
    """`file:line:column: ...` for each `delivery` entry that drops or blurs what is read."""
    if not delivery:
        return []
    path = rules_dir / SOURCES_FILE
    by_event: dict[str, list[Reader]] = {}
    for reader in readers(rules_dir):
        by_event.setdefault(reader.event, []).append(reader)
    findings = []
    for event, rule in delivery.items():
        problem = _problem(event, rule, by_event.get(event, []))
        if problem:
            findings.append(f"{locate(path, ('delivery', event))}: delivery {event}: {problem}")
    return findings


def _problem(event: str, rule: DeliveryRule, read_by: list[Reader]) -> str | None:
    if rule == "record" and read_by:
        first = read_by[0]
        return f"`record` never signals it, but {first.what} reads it ({first.where})"
    if not isinstance(rule, CoalesceRule):
        return None
    if event in PER_EVENT_DATA:
        return f"`coalesce` would merge {PER_EVENT_DATA[event]}; forward it"
    for reader in read_by:
        if reader.ends_journey or reader.reads_data:
            how = "ends the journey on it" if reader.ends_journey else "reads each one's data"
            return f"`coalesce` would delay or merge it, and {reader.what} {how} ({reader.where})"
    return None


# ---- the rule files, as YAML with line numbers -----------------------------------------------


def _journey_exits(rules_dir: Path) -> list[Reader]:
    path = rules_dir / "journey.yaml"
    found = []
    for i, exit_ in enumerate(_items(_child(_compose(path), "exits"))):
        if (event := _scalar(_child(exit_, "event"))) is not None:
            what = f"journey exit exits[{i}]"
            found.append(Reader(event, _mark(path, exit_), what, ends_journey=True))
    return found


def _campaigns(rules_dir: Path) -> list[Reader]:
    path = rules_dir / "campaigns.yaml"
    found = []
    for campaign in _items(_child(_compose(path), "campaigns")):
        name = _scalar(_child(campaign, "name")) or "?"
        trigger = _child(campaign, "on_event")
        if (event := _scalar(_child(trigger, "event"))) is not None:
            matches_data = _child(trigger, "data") is not None
            what = f"campaign {name}'s on_event"
            found.append(Reader(event, _mark(path, trigger), what, reads_data=matches_data))
        for exit_ in _items(_child(campaign, "exits")):
            if (event := _scalar(_child(exit_, "event"))) is not None:
                found.append(Reader(event, _mark(path, exit_), f"campaign {name}'s exit"))
    return found


def _conditions(rules_dir: Path) -> list[Reader]:
    """`recent_events: {contains: X}` or `{excludes: [X, Y]}` in any rule file's condition."""
    found = []
    for path in sorted(rules_dir.glob("*.yaml")):
        if path.name == SOURCES_FILE:
            continue
        for key, value in _entries(_compose(path)):
            if key.value != "recent_events":
                continue
            for op, operand in _entries(value):
                for event in _scalars(operand):
                    what = f"a condition `recent_events: {{{op.value}: {event}}}`"
                    found.append(Reader(event, _mark(path, key), what))
    return found


def _openers(rules_dir: Path) -> list[Reader]:
    path = rules_dir / SOURCES_FILE
    found = []
    for i, rule in enumerate(_items(_child(_compose(path), "opens_journey"))):
        if (event := _scalar(_child(rule, "event"))) is not None:
            found.append(Reader(event, _mark(path, rule), f"opens_journey[{i}]"))
    return found


def _code_readers() -> list[Reader]:
    """The journey's own code: re-score effects (retention/events.py) and unsubscribes."""
    source = Path(events.__file__)
    lines = source.read_text(encoding="utf-8").splitlines()
    shown = "retention/events.py"
    found = [
        Reader(name, f"{shown}:{_line_of(lines, repr(name))}", "the re-score effect (EFFECTS)")
        for name in events.EFFECTS
    ]
    journey = "workflows/retention_journey.py"
    what = "the journey's unsubscribe handling (it puts the channel on the suppression list)"
    return [*found, Reader("unsubscribed", journey, what, reads_data=True)]


def _line_of(lines: list[str], needle: str) -> int:
    start = next((n for n, line in enumerate(lines) if line.startswith("EFFECTS")), 0)
    quoted = {needle, needle.replace("'", '"')}
    return next(
        (n + 1 for n, line in enumerate(lines) if n >= start and any(q in line for q in quoted)),
        1,
    )


def _compose(path: Path) -> yaml.Node | None:
    try:
        return compose(path, path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError, RulebookError):
        return None  # missing, broken or too deep: its own loader reports it


def _child(node: yaml.Node | None, key: str) -> yaml.Node | None:
    if isinstance(node, yaml.MappingNode):
        return next((v for k, v in node.value if k.value == key), None)
    return None


def _items(node: yaml.Node | None) -> list[yaml.Node]:
    return list(node.value) if isinstance(node, yaml.SequenceNode) else []


def _scalar(node: yaml.Node | None) -> str | None:
    return str(node.value) if isinstance(node, yaml.ScalarNode) else None


def _scalars(node: yaml.Node) -> list[str]:
    if isinstance(node, yaml.ScalarNode):
        return [str(node.value)]
    return [s for item in _items(node) if (s := _scalar(item)) is not None]


def _entries(node: yaml.Node | None) -> Iterator[tuple[yaml.ScalarNode, yaml.Node]]:
    """Every mapping entry under `node`, depth first."""
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            if isinstance(key, yaml.ScalarNode):
                yield key, value
            yield from _entries(value)
    elif isinstance(node, yaml.SequenceNode):
        for item in node.value:
            yield from _entries(item)


def _mark(path: Path, node: yaml.Node | None) -> str:
    if node is None:
        return str(path)
    return f"{path}:{node.start_mark.line + 1}:{node.start_mark.column + 1}"
