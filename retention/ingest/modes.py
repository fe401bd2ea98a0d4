"""How each of our event types travels from the inbox to its journey: `delivery` in
`rules/sources.yaml` (docs/ingestion.md). Fixed on the inbox row when it is received, so
an edit applies to events received after it."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Annotated, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, SkipValidation

from retention.rulebook.schema import Hours, parse_hours

DeliveryName = Literal["forward", "coalesce", "record"]
MAX_COALESCE_HOURS = 24.0


class CoalesceRule(BaseModel):
    """`{coalesce: 60s}`: at most one signal per customer and type per interval."""

    model_config = ConfigDict(extra="forbid")

    coalesce: Annotated[Hours, Field(gt=0, le=MAX_COALESCE_HOURS)]


DeliveryRule = Literal["forward", "record"] | CoalesceRule


def parse_delivery(raw: object) -> DeliveryRule:
    """`forward`, `record` or `{coalesce: <interval>}`, refused with what was expected."""
    if raw == "forward" or raw == "record":
        return raw
    if isinstance(raw, dict) and list(raw) == ["coalesce"]:
        hours = parse_hours(raw["coalesce"])
        if not 0 < hours <= MAX_COALESCE_HOURS:
            raise ValueError("a coalescing interval must be above 0 and at most 24h")
        return CoalesceRule(coalesce=hours)
    raise ValueError(
        f"expected forward, record or {{coalesce: <interval>}} such as {{coalesce: 60s}}; "
        f"got {raw!r}"
    )


DeliverySpec = Annotated[SkipValidation[DeliveryRule], BeforeValidator(parse_delivery)]


@dataclass(frozen=True)
class Mode:
    name: DeliveryName
    interval: timedelta = timedelta(0)

    @property
    def status(self) -> str:
        """The row's first status: a recorded event is settled as it is written."""
        return "recorded" if self.name == "record" else "pending"


FORWARD = Mode("forward")


def mode_of(rule: DeliveryRule | None) -> Mode:
    if rule is None or rule == "forward":
        return FORWARD
    if rule == "record":
        return Mode("record")
    assert isinstance(rule, CoalesceRule)
    return Mode("coalesce", timedelta(hours=rule.coalesce))
