"""Load `rules/*.yaml` into a validated Rulebook; every refusal names file:line:column."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, TypeVar, get_args

import yaml
from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails

from retention.customer import EventType
from retention.delivery.templates import TemplateSet
from retention.errors import RulebookError
from retention.kpis import KpiTargets
from retention.nesting import TOO_DEEP, too_deep
from retention.rulebook.conditions import Condition, PostedFacts
from retention.rulebook.schema import (
    Campaign,
    CampaignsFile,
    Intervention,
    JourneyFile,
    Offer,
    OffersFile,
    ScoringFile,
    SeverityTier,
    StrategiesFile,
    Strategy,
    TimelinesFile,
)
from retention.scoring.expansion import ExpansionPolicy
from retention.scoring.health import HEALTH_ALERTS
from retention.scoring.risk import HEALTH_DRIVER, SEED_FEATURES
from retention.scoring.sentiment import AlertName as SentimentAlertName
from retention.scoring.sentiment import SentimentPolicy

RULE_FILES = (
    "strategies.yaml",
    "timelines.yaml",
    "journey.yaml",
    "scoring.yaml",
    "offers.yaml",
    "campaigns.yaml",
    "sentiment.yaml",
    "expansion.yaml",
    "kpis.yaml",
)
MAX_RULE_FILE_BYTES = 1_000_000
HOLDOUT_RULE = "holdout:eligible"
SCAN_RULE = "scan:start_journey"
_Model = TypeVar("_Model", bound=BaseModel)


class _Mark(Protocol):  # PyYAML's, from its Python or its libyaml parser
    line: int
    column: int


@dataclass(frozen=True)
class PlacedCondition:
    """A rule's `when`, its name as fired (e.g. `strategy:nurture`) and where it is written."""

    rule: str
    file: str
    loc: tuple[str | int, ...]
    when: Condition


@dataclass(frozen=True)
class Rulebook:
    """A validated rule set. `version` is a content hash of the rule files and templates."""

    strategies: list[Strategy]
    severity_tiers: list[SeverityTier]
    timelines: dict[str, list[Intervention]]
    journey: JourneyFile
    offers: OffersFile
    campaigns: list[Campaign]
    scoring: ScoringFile
    sentiment: SentimentPolicy
    expansion: ExpansionPolicy
    kpis: KpiTargets
    files: RuleFiles

    @property
    def version(self) -> str:
        return self.files.version

    @property
    def templates(self) -> TemplateSet:
        return self.files.templates

    @property
    def templates_dir(self) -> Path:
        return self.templates.folder

    def strategy(self, name: str) -> Strategy:
        return next(s for s in self.strategies if s.name == name)

    @property
    def strategy_order(self) -> list[str]:
        """Least to most intensive (the file lists them highest priority first)."""
        return [s.name for s in reversed(self.strategies)]

    def conditions(self) -> list[PlacedCondition]:
        """Every `when` of the rule set: strategies, tiers, campaigns, offers, the holdout."""
        groups: list[tuple[str, str, str, Sequence[Strategy | SeverityTier | Campaign | Offer]]]
        groups = [
            ("strategy", "strategies.yaml", "strategies", self.strategies),
            ("severity", "timelines.yaml", "severity_tiers", self.severity_tiers),
            ("campaign", "campaigns.yaml", "campaigns", self.campaigns),
            ("offer", "offers.yaml", "offers", self.offers.offers),
        ]
        placed = [
            PlacedCondition(f"{kind}:{rule.name}", file, (key, i, "when"), rule.when)
            for kind, file, key, rules in groups
            for i, rule in enumerate(rules)
            if rule.when is not None
        ]
        eligible = self.journey.holdout.eligible if self.journey.holdout else None
        if eligible is not None:
            placed.append(
                PlacedCondition(HOLDOUT_RULE, "journey.yaml", ("holdout", "eligible"), eligible)
            )
        if (scan := self.journey.scan.start_journey_when) is not None:
            placed.append(
                PlacedCondition(SCAN_RULE, "journey.yaml", ("scan", "start_journey_when"), scan)
            )
        return placed

    @property
    def scan_skips(self) -> list[str]:
        """Strategies the portfolio scan starts no journey for (default: the least intensive)."""
        skipped = self.journey.scan.skip_strategies
        return self.strategy_order[:1] if skipped is None else skipped


@dataclass(frozen=True)
class RuleFiles:
    """A rule set's files, each read once: the version hashes the very text that is parsed, so
    an edit landing mid-load cannot give a rule set another set's version."""

    folder: Path
    texts: Mapping[str, str]  # rule file name → text, for the files that exist
    templates: TemplateSet
    version: str

    def model(self, name: str, model: type[_Model], optional: bool = False) -> _Model:
        if name not in self.texts and optional:
            return model()  # e.g. a rule set without offers or campaigns
        return load_yaml_model(self.folder / name, model, self.texts.get(name))


def read_rule_files(rules_dir: Path) -> RuleFiles:
    digest = hashlib.sha256()
    texts: dict[str, str] = {}
    for name in RULE_FILES:
        if (rules_dir / name).is_file():
            texts[name] = _read_rule_file(rules_dir / name)
    folder = rules_dir / "templates"
    sources = {p.name: _read_rule_file(p) for p in sorted(folder.glob("*.j2"))}
    for name, text in [*texts.items(), *sources.items()]:
        digest.update(name.encode() + b"\0" + text.encode() + b"\0")
    return RuleFiles(rules_dir, texts, TemplateSet(folder, sources), digest.hexdigest()[:12])


def load_rulebook(rules_dir: Path) -> Rulebook:
    return parse_rulebook(read_rule_files(rules_dir))


def parse_rulebook(files: RuleFiles) -> Rulebook:
    timelines = files.model("timelines.yaml", TimelinesFile)
    rulebook = Rulebook(
        strategies=files.model("strategies.yaml", StrategiesFile).strategies,
        severity_tiers=timelines.severity_tiers,
        timelines=timelines.timelines,
        journey=files.model("journey.yaml", JourneyFile),
        offers=files.model("offers.yaml", OffersFile, optional=True),
        campaigns=files.model("campaigns.yaml", CampaignsFile, optional=True).campaigns,
        scoring=files.model("scoring.yaml", ScoringFile),
        sentiment=files.model("sentiment.yaml", SentimentPolicy),
        expansion=files.model("expansion.yaml", ExpansionPolicy),
        kpis=files.model("kpis.yaml", KpiTargets),
        files=files,
    )
    _check_references(rulebook, files.folder)
    return rulebook


def load_yaml_model(path: Path, model: type[_Model], text: str | None = None) -> _Model:
    """One YAML file (read now, or its `text` as read) validated as `model`; errors name
    file:line:column and the field."""
    text = _read_rule_file(path) if text is None else text
    try:
        root = compose(path, text)
        data = yaml.safe_load(text)
    except yaml.MarkedYAMLError as exc:
        raise RulebookError(
            f"{_at(path, exc.problem_mark)}: YAML syntax error: {exc.problem}"
        ) from exc
    except yaml.reader.ReaderError as exc:  # a control character: no mark, only a position
        line = text.count("\n", 0, exc.position) + 1
        column = exc.position - (text.rfind("\n", 0, exc.position) + 1) + 1
        raise RulebookError(f"{path}:{line}:{column}: YAML syntax error: {exc.reason}") from exc
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        first = _most_telling(exc.errors())
        field = ".".join(str(part) for part in first["loc"]) or "(file)"
        raise RulebookError(f"{_where(path, root, first['loc'])}: {field}: {first['msg']}") from exc


def _most_telling(errors: list[ErrorDetails]) -> ErrorDetails:
    """A misspelt key is both unknown and, under its right name, missing: name the typo."""
    return next((e for e in errors if e["type"] == "extra_forbidden"), errors[0])


def _read_rule_file(path: Path) -> str:
    try:
        if path.stat().st_size > MAX_RULE_FILE_BYTES:
            raise RulebookError(
                f"{path}: {path.stat().st_size:,} bytes is more than a rule file may hold "
                f"({MAX_RULE_FILE_BYTES:,})"
            )
        return path.read_text(encoding="utf-8")
    except OSError as exc:
        raise RulebookError(f"{path}: cannot read rule file ({exc.strerror})") from exc
    except UnicodeDecodeError as exc:
        raise RulebookError(f"{path}: not UTF-8 text (byte {exc.start})") from exc


def compose(path: Path, text: str) -> yaml.Node | None:
    """The node tree, once one pass over the events has found no alias and nothing too deep:
    composing recurses, so a deep file would overflow the stack."""
    deep = too_deep(_nesting_steps(path, text))
    if deep is not None:
        raise RulebookError(f"{_at(path, deep.start_mark)}: {TOO_DEEP}")
    return yaml.compose(text)


def _nesting_steps(path: Path, text: str) -> Iterator[tuple[int, yaml.Event]]:
    """+1 for each mapping or list opened, -1 for each closed; aliases (`*name`) can expand a
    small file into billions of nodes, so one is refused on the way."""
    for event in yaml.parse(text):
        if isinstance(event, yaml.AliasEvent):
            raise RulebookError(
                f"{_at(path, event.start_mark)}: YAML aliases (*{event.anchor}) are not allowed "
                "in rule files; write the values out"
            )
        if isinstance(event, yaml.CollectionStartEvent | yaml.CollectionEndEvent):
            yield (1 if isinstance(event, yaml.CollectionStartEvent) else -1), event


def _at(path: Path, mark: _Mark | None) -> str:
    return f"{path}:{mark.line + 1}:{mark.column + 1}" if mark else str(path)


def locate(path: Path, loc: tuple[Any, ...]) -> str:
    """file:line:column of a place in a rule file, e.g. ("strategies", 0, "when")."""
    try:
        return _where(path, compose(path, path.read_text(encoding="utf-8")), loc)
    except (OSError, yaml.YAMLError, RulebookError):
        return str(path)


def _where(path: Path, root: yaml.Node | None, loc: tuple[Any, ...]) -> str:
    """file:line:column of the deepest YAML node along a pydantic error location."""
    node, mark = root, root.start_mark if root else None
    for key in loc:
        if isinstance(node, yaml.MappingNode):
            match = next(((k, v) for k, v in node.value if k.value == str(key)), None)
            if match is None:
                break
            mark, node = match[0].start_mark, match[1]
        elif isinstance(node, yaml.SequenceNode) and isinstance(key, int) and key < len(node.value):
            node = node.value[key]
            mark = node.start_mark
        else:
            break
    # no node at all: an empty file (or only comments), so its first line is at fault
    return f"{path}:{mark.line + 1}:{mark.column + 1}" if mark else f"{path}:1:1"


def _check_references(rulebook: Rulebook, rules_dir: Path) -> None:
    """Names that point across files must exist: tiers, strategies, events, templates."""
    timelines, journey = rules_dir / "timelines.yaml", rules_dir / "journey.yaml"
    tiers = {t.name for t in rulebook.severity_tiers}
    names = [s.name for s in rulebook.strategies]
    problems = [
        f"{locate(timelines, ('timelines', t))}: timeline {t!r} has no severity tier of that name"
        for t in rulebook.timelines
        if t not in tiers
    ]
    problems += [
        f"{locate(rules_dir / 'strategies.yaml', ('strategies', i, 'name'))}: "
        f"strategy {name!r} is defined twice"
        for i, name in enumerate(names)
        if name in names[:i]
    ]
    recovered = rulebook.journey.recovered_strategy
    if recovered and recovered not in names:
        where = locate(journey, ("recovered_strategy",))
        problems.append(f"{where}: recovered_strategy {recovered!r} is not a strategy")
    problems += [
        f"{locate(journey, ('scan', 'skip_strategies', i))}: {name!r} is not a strategy"
        for i, name in enumerate(rulebook.journey.scan.skip_strategies or [])
        if name not in names
    ]
    events = set(get_args(EventType))
    problems += [
        f"{locate(journey, ('exits', i, 'event'))}: exit event {e.event!r} is not a customer event"
        for i, e in enumerate(rulebook.journey.exits)
        if e.event not in events
    ]
    problems += _campaign_problems(rulebook, rules_dir, events)
    problems += _offer_problems(rulebook, rules_dir)
    problems += _membership_problems(rulebook, rules_dir)
    problems += _missing_templates(rulebook, rules_dir)
    if problems:
        raise RulebookError("\n".join(problems))


def _campaign_problems(rulebook: Rulebook, rules_dir: Path, events: set[str]) -> list[str]:
    path = rules_dir / "campaigns.yaml"
    names = [c.name for c in rulebook.campaigns]
    problems = [
        f"{locate(path, ('campaigns', i, 'name'))}: campaign {name!r} is defined twice"
        for i, name in enumerate(names)
        if name in names[:i]
    ]
    for i, campaign in enumerate(rulebook.campaigns):
        used: list[tuple[tuple[str | int, ...], str]] = [
            (("exits", j, "event"), e.event) for j, e in enumerate(campaign.exits)
        ]
        if campaign.on_event is not None:
            used.append((("on_event", "event"), campaign.on_event.event))
        problems += [
            f"{locate(path, ('campaigns', i, *loc))}: {event!r} is not a customer event"
            for loc, event in used
            if event not in events
        ]
        problems += [
            f"{locate(path, ('campaigns', i, 'messages', j, 'template'))}: template "
            f"{m.template!r} not found in {rulebook.templates_dir}"
            for j, m in enumerate(campaign.messages)
            if m.template not in rulebook.templates
        ]
    return problems


def _offer_problems(rulebook: Rulebook, rules_dir: Path) -> list[str]:
    planned = {i.action for s in rulebook.strategies for i in s.interventions}
    planned |= {i.action for steps in rulebook.timelines.values() for i in steps}
    return [
        f"{locate(rules_dir / 'offers.yaml', ('attach_to', i))}: no strategy or timeline plans "
        f"{action!r}, so no offer would ever be made"
        for i, action in enumerate(rulebook.offers.attach_to)
        if action not in planned
    ]


def _membership_problems(rulebook: Rulebook, rules_dir: Path) -> list[str]:
    """`contains`/`excludes` must name something the list can hold: a typo would never match."""
    known = {
        "risk_factors": [factor.name for factor in rulebook.scoring.risk.factors],
        # baseline-0's drivers, then a trained model's: the seed features
        "model_drivers": [factor.name for factor in rulebook.scoring.risk.factors]
        + [HEALTH_DRIVER, *SEED_FEATURES],
        "health_alerts": list(HEALTH_ALERTS),
        "recent_events": list(get_args(EventType)),
        "sentiment_alerts": list(get_args(SentimentAlertName)),
        "emotions": list(rulebook.sentiment.emotions),
        "expansion_opportunities": list(ExpansionPolicy.model_fields),
    }
    return [
        f"{locate(rules_dir / placed.file, placed.loc)}: {fact} never holds {name!r} "
        f"(it holds: {', '.join(known[fact])})"
        for placed in rulebook.conditions()
        for fact, name in sorted(PostedFacts.of([placed.when]).members)
        if name not in known[fact]
    ]


def _missing_templates(rulebook: Rulebook, rules_dir: Path) -> list[str]:
    plans = [
        ("strategies.yaml", ("strategies", i, "interventions"), s.interventions)
        for i, s in enumerate(rulebook.strategies)
    ] + [
        ("timelines.yaml", ("timelines", name), steps) for name, steps in rulebook.timelines.items()
    ]
    return [
        f"{locate(rules_dir / file, (*loc, j, 'action'))}: template "
        f"{step.template or step.action!r} not found in {rulebook.templates_dir}"
        for file, loc, steps in plans
        for j, step in enumerate(steps)
        if (step.template or step.action) not in rulebook.templates
    ]
