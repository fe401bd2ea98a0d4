"""One KPI's value beside its target and definition."""

from __future__ import annotations

from pydantic import BaseModel, Field

from retention.analytics.catalogue import KPI_BY_NAME, Unit
from retention.kpis import KpiTarget, KpiTargets


class KpiValue(BaseModel):
    name: str
    title: str
    unit: Unit
    value: float | None
    reason: str | None = Field(default=None, description="why there is no value, or a caveat")
    target: KpiTarget | None = None
    met: bool | None = Field(description="None: no target, no value, or not conclusive")
    definition: str
    low: float | None = Field(default=None, description="95 % interval, where it has one")
    high: float | None = None


def kpi(
    name: str,
    value: float | None,
    targets: KpiTargets,
    missing: str = "no data",
    *,
    caveat: str | None = None,
    judge: bool = True,
) -> KpiValue:
    """A KPI beside its target. `missing` says why there is no value; `caveat` qualifies one;
    `judge=False` shows the target without calling it met."""
    definition = KPI_BY_NAME[name]
    reason = caveat if value is not None else missing
    target = targets.targets.get(name)  # type: ignore[call-overload]
    met = target.met(value) if target and value is not None and judge else None
    return KpiValue(
        name=name,
        title=definition.title,
        unit=definition.unit,
        value=value,
        reason=reason,
        target=target,
        met=met,
        definition=definition.definition,
    )
