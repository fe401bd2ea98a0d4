"""The retention KPIs CS leadership steers by, and the targets `rules/kpis.yaml` sets for them."""

from __future__ import annotations

import math
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

KpiName = Literal[
    "gross_retention",
    "net_retention",
    "logo_retention",
    "prevented_churn",
    "false_positive_rate",
    "early_warning_days",
    "coverage",
    "high_risk_response_hours",
    "intervention_success",
    "automation_rate",
    "escalation_rate",
]


class KpiTarget(BaseModel):
    """Exactly one bound: the KPI meets its target when the bound holds."""

    model_config = ConfigDict(extra="forbid")

    at_least: float | None = None
    at_most: float | None = None
    below: float | None = None
    description: str = Field(default="", description="what the KPI measures, for the report")

    @model_validator(mode="after")
    def _one_bound(self) -> KpiTarget:
        bounds = [b for b in (self.at_least, self.at_most, self.below) if b is not None]
        if len(bounds) != 1:
            raise ValueError("give exactly one of at_least, at_most or below")
        if not math.isfinite(bounds[0]):
            raise ValueError("the target must be a finite number")
        return self

    def met(self, value: float) -> bool:
        if self.at_least is not None:
            return value >= self.at_least
        if self.at_most is not None:
            return value <= self.at_most
        assert self.below is not None
        return value < self.below


class KpiTargets(BaseModel):
    """`rules/kpis.yaml`."""

    model_config = ConfigDict(extra="forbid")

    targets: dict[KpiName, KpiTarget] = Field(min_length=1)
    intervention_costs: dict[str, Annotated[float, Field(ge=0, allow_inf_nan=False)]] = Field(
        default_factory=dict,
        description="cost of one intervention by owner (csm, automated, internal): cost per save",
    )
