"""`rules/sources.yaml`: how each upstream system's webhook becomes a `customer_event`.

Rule authors and ops own the file; it is validated at load and every refusal names
file:line:column, as the other rule files do. Mapping a body never raises anything but a
`MappingError` naming the field of the body at fault.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import threading
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    SkipValidation,
    model_validator,
)
from pydantic import ValidationError as PydanticValidationError

from retention.customer import (
    CUSTOMER_ID_PATTERN,
    CustomerEvent,
    CustomerSnapshot,
    EventType,
    describe_validation_error,
)
from retention.errors import InvalidInput, RulebookError
from retention.ingest.modes import FORWARD, DeliveryRule, DeliverySpec, Mode, mode_of
from retention.ingest.readers import delivery_findings
from retention.nesting import TOO_DEEP, json_too_deep
from retention.rulebook.conditions import AllOf, Compare, Condition, parse_condition
from retention.rulebook.engine import CompiledRuleset
from retention.rulebook.loader import load_yaml_model

log = logging.getLogger(__name__)

SOURCES_FILE = "sources.yaml"
_PATH = r"^[^.\s]+(\.[^.\s]+)*$"
_CUSTOMER_ID = re.compile(CUSTOMER_ID_PATTERN)
MAX_EVENT_ID_CHARS = 200

# What an `opens_journey` rule may read: the customer as the database knows it, before any
# assessment (the service scores nothing itself).
OPENER_FACTS: dict[str, type] = {
    "annual_contract_value": float,
    "segment": str,
    "plan": str,
    "days_since_last_login": int,
    "nps": int,
    "champion_status": str,
    "payment_delays_90d": int,
}


class _Rule(BaseModel):
    model_config = ConfigDict(extra="forbid")


class SignatureRule(_Rule):
    """hex: HMAC-SHA256(secret, body) in hex, after `prefix`; zendesk: base64 of
    HMAC-SHA256(secret, timestamp + body); stripe: `t=<unix>,v1=<hex of HMAC(t.body)>`."""

    scheme: Literal["hex", "zendesk", "stripe"]
    header: str = Field(min_length=1)
    prefix: str = ""
    timestamp_header: str | None = None
    tolerance: float = Field(default=300, gt=0, description="seconds; stripe only")

    @model_validator(mode="after")
    def _timestamp_for_zendesk(self) -> SignatureRule:
        if self.scheme == "zendesk" and not self.timestamp_header:
            raise ValueError("the zendesk scheme needs timestamp_header")
        return self


class FieldRule(_Rule):
    path: str = Field(pattern=_PATH)
    values: dict[str, Any] | None = Field(default=None, description="source value → ours")


def _path_or_rule(raw: object) -> object:
    return {"path": raw} if isinstance(raw, str) else raw


FieldSpec = Annotated[FieldRule, BeforeValidator(_path_or_rule)]


class SourceRule(_Rule):
    signature: SignatureRule
    event_id: FieldSpec
    customer_id: FieldSpec
    kind: FieldSpec
    kind_detail: FieldSpec | None = None
    at: FieldSpec | None = None
    data_from: FieldSpec | None = None
    data: dict[str, FieldSpec] = Field(default_factory=dict)
    kinds: dict[str, EventType] = Field(min_length=1)


OpenerWhen = Annotated[
    SkipValidation[Condition], BeforeValidator(lambda raw: parse_condition(raw, OPENER_FACTS))
]


class JourneyOpener(_Rule):
    event: EventType
    when: OpenerWhen


SourceName = Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]{0,31}$")]


class SourcesFile(_Rule):
    sources: dict[SourceName, SourceRule] = Field(min_length=1)
    opens_journey: list[JourneyOpener] = Field(default_factory=list)
    delivery: dict[EventType, DeliverySpec] = Field(default_factory=dict)


class MappingError(InvalidInput):
    """A body that does not give what its source's mapping needs; `field` is the body's own."""

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"{field}: {problem}")
        self.field = field


@dataclass(frozen=True)
class MappedEvent:
    source_event_id: str
    kind: str
    customer_id: str | None
    event: CustomerEvent | None  # None: a kind the mapping does not take (ignored)


@dataclass(frozen=True)
class Sources:
    file: SourcesFile
    version: str

    def rule(self, source: str) -> SourceRule | None:
        return self.file.sources.get(source)

    def mode(self, event: CustomerEvent | None) -> Mode:
        """How the event travels to its journey (`delivery`; unlisted types: forward)."""
        return mode_of(self.file.delivery.get(event.type)) if event else FORWARD

    def opener(self, event: CustomerEvent, customer: CustomerSnapshot) -> str | None:
        """The `opens_journey` rule (as `opens_journey[i]`) that starts a journey, if any."""
        if not self.file.opens_journey:
            return None
        fired = _openers(self).fire(opener_facts(event, customer))
        return min(fired, key=_rule_index) if fired else None


def load_sources(rules_dir: Path) -> Sources:
    path = rules_dir / SOURCES_FILE
    return parse_sources(path, _read(path))


def parse_sources(path: Path, text: str) -> Sources:
    """The file validated, its `delivery` modes too: none may drop or blur what a rule of the
    rule set beside it reads (retention/ingest/readers.py)."""
    sources = Sources(load_yaml_model(path, SourcesFile, text), _version(text))
    delivery: dict[str, DeliveryRule] = {str(k): v for k, v in sources.file.delivery.items()}
    if findings := delivery_findings(path.parent, delivery):
        raise DeliveryRefused(findings)
    return sources


class DeliveryRefused(RulebookError):
    """`delivery` modes that would drop or blur what a rule reads, one finding each."""

    def __init__(self, findings: list[str]) -> None:
        super().__init__("\n".join(findings))
        self.findings = findings


class SourcesWatch:
    """`sources.yaml` as it is now, so an edit needs no restart: re-read on every call, parsed
    again only when its text changed; a broken edit is logged at file:line and the last good
    version stays (as the worker does with the other rule files)."""

    def __init__(self, rules_dir: Path) -> None:
        self._path = rules_dir / SOURCES_FILE
        self._current = load_sources(rules_dir)  # broken at start: the service does not start
        self._refused: str | None = None
        self._lock = threading.Lock()

    def __call__(self) -> Sources:
        with self._lock:
            try:
                text = _read(self._path)
            except RulebookError as exc:  # e.g. mid-save: keep what works
                log.error("sources file unreadable, keeping %s: %s", self._current.version, exc)
                return self._current
            if _version(text) not in (self._current.version, self._refused):
                try:
                    self._current = parse_sources(self._path, text)
                    log.info("sources %s loaded", self._current.version)
                except RulebookError as exc:
                    self._refused = _version(text)
                    log.error("sources refused, keeping %s: %s", self._current.version, exc)
            return self._current


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise RulebookError(f"{path}: cannot read the sources file ({exc})") from exc


def _version(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def sources_findings(rules_dir: Path) -> list[str]:
    """For `rules check`: what is wrong with sources.yaml (nothing when there is none)."""
    if not (rules_dir / SOURCES_FILE).is_file():
        return []
    try:
        load_sources(rules_dir)
    except DeliveryRefused as exc:
        return exc.findings
    except RulebookError as exc:
        return [str(exc)]
    return []


# ---- mapping a body --------------------------------------------------------------------------


def parse_body(body: bytes) -> Any:
    """A webhook body parsed, decoded as `json.loads` decodes bytes; one nested too deep is
    refused before parsing, which would overflow the stack."""
    try:
        text = body.decode(json.detect_encoding(body), "surrogatepass")
        if (line := json_too_deep(text)) is not None:
            raise MappingError("(body)", f"line {line}: {TOO_DEEP}")
        return json.loads(text)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise MappingError("(body)", f"not valid JSON ({exc})") from exc


def map_payload(rule: SourceRule, payload: Any) -> MappedEvent:
    if not isinstance(payload, dict):
        raise MappingError("(body)", "expected a JSON object")
    event_id = _text(rule.event_id, payload, MAX_EVENT_ID_CHARS)
    kind = _text(rule.kind, payload, MAX_EVENT_ID_CHARS)
    detail = _lookup(payload, rule.kind_detail) if rule.kind_detail else None
    event_type = rule.kinds.get(f"{kind}/{detail}") or rule.kinds.get(kind)
    if event_type is None:
        found = _lookup(payload, rule.customer_id)
        customer_id = found if isinstance(found, str) and _CUSTOMER_ID.match(found) else None
        return MappedEvent(event_id, kind, customer_id, None)
    customer_id = _text(rule.customer_id, payload, 64)
    if not _CUSTOMER_ID.match(customer_id):
        raise MappingError(rule.customer_id.path, f"{customer_id!r} is not a customer id")
    raw = {"type": event_type, "at": _at(rule.at, payload), "data": _data(rule, payload)}
    try:
        event = CustomerEvent.model_validate(raw)
    except PydanticValidationError as exc:
        raise MappingError(_body_field(rule, exc), describe_validation_error(exc)) from exc
    return MappedEvent(event_id, kind, customer_id, event)


_MISSING = object()


def _lookup(payload: Any, rule: FieldRule) -> Any:
    """The value at `rule.path`, translated by `rule.values`; None when absent."""
    node = payload
    for key in rule.path.split("."):
        if isinstance(node, dict):
            node = node.get(key, _MISSING)
        elif isinstance(node, list) and key.isdigit() and int(key) < len(node):
            node = node[int(key)]
        else:
            node = _MISSING
        if node is _MISSING:
            return None
    if rule.values is not None and isinstance(node, str | int) and str(node) in rule.values:
        return rule.values[str(node)]
    return node


def _text(rule: FieldRule, payload: Any, limit: int) -> str:
    value = _lookup(payload, rule)
    if value is None or value == "":
        raise MappingError(rule.path, "missing")
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise MappingError(rule.path, f"expected text, got {type(value).__name__}")
    if len(str(value)) > limit:
        raise MappingError(rule.path, f"longer than {limit} characters")
    return str(value)


def _at(rule: FieldRule | None, payload: Any) -> datetime | None:
    """An ISO 8601 time or a Unix timestamp (Stripe's `created`)."""
    value = _lookup(payload, rule) if rule else None
    if value is None or rule is None:
        return None
    try:
        if isinstance(value, int | float) and not isinstance(value, bool):
            return datetime.fromtimestamp(value, UTC)
        if isinstance(value, str):
            return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except (ValueError, OverflowError, OSError):
        pass
    raise MappingError(rule.path, f"{value!r} is not an ISO 8601 time or a Unix timestamp")


def _data(rule: SourceRule, payload: Any) -> dict[str, Any]:
    data: dict[str, Any] = {}
    if rule.data_from is not None:
        found = _lookup(payload, rule.data_from)
        if found is not None and not isinstance(found, dict):
            raise MappingError(rule.data_from.path, "expected an object")
        data.update(found or {})
    for name, field in rule.data.items():
        if (value := _lookup(payload, field)) is not None:
            data[name] = value
    return data


def _body_field(rule: SourceRule, exc: PydanticValidationError) -> str:
    """The body's own field behind the `data.<name>` an event check complains about."""
    found = re.search(r"data\.(\w+)", describe_validation_error(exc))
    if found is None:
        return "(body)"
    name = found.group(1)
    if name in rule.data:
        return rule.data[name].path
    return f"{rule.data_from.path}.{name}" if rule.data_from else f"data.{name}"


# ---- which events open a journey -------------------------------------------------------------


def _rule_index(name: str) -> int:
    return int(name.removeprefix("opens_journey[").removesuffix("]"))


def opener_facts(event: CustomerEvent, customer: CustomerSnapshot) -> dict[str, Any]:
    return {
        "event": event.type,
        "annual_contract_value": customer.financial.annual_contract_value,
        "segment": customer.profile.segment,
        "plan": customer.profile.plan,
        "days_since_last_login": customer.usage.days_since_last_login,
        "nps": customer.relationship.nps,
        "champion_status": customer.relationship.champion_status,
        "payment_delays_90d": customer.financial.payment_delays_90d,
    }


_compiled: dict[str, CompiledRuleset] = {}


def _openers(sources: Sources) -> CompiledRuleset:
    """The `opens_journey` rules, compiled once per file version by the rulebook's engine (its
    sessions are deleted after every decision)."""
    if sources.version not in _compiled:
        rules: dict[str, Condition] = {
            f"opens_journey[{i}]": AllOf((Compare("event", "eq", rule.event), rule.when))
            for i, rule in enumerate(sources.file.opens_journey)
        }
        _compiled[sources.version] = CompiledRuleset(f"ingest_{sources.version}", rules)
    return _compiled[sources.version]
