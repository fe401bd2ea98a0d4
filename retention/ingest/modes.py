"""How each of our event types travels from the inbox to its journey: `delivery` in
`rules/sources.yaml` (README: "Event ingestion"). Fixed on the inbox row when it is received, so
an edit applies to events received after it."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from retention.rulebook.schema import Hours

DeliveryName = Literal["forward", "coalesce", "record"]
MAX_COALESCE_HOURS = 24.0


class CoalesceRule(BaseModel):
    """`{coalesce: 60s}`: at most one signal per customer and type per interval."""

    model_config = ConfigDict(extra="forbid")

    coalesce: Annotated[Hours, Field(gt=0, le=MAX_COALESCE_HOURS)]


DeliveryRule = Literal["forward", "record"] | CoalesceRule


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
