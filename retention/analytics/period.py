"""A reporting period and the database rows that fall in it, as plain records."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Literal

from pydantic import BaseModel, model_validator

from retention.store.tables import (
    ChurnPredictionRow,
    CustomerRow,
    HealthScoreRow,
    InterventionRow,
    JourneyRow,
)

Resolution = Literal["retained", "churned"]

# Held-out steps are recorded and never sent; a suppressed one reached nobody.
NOT_DELIVERED = frozenset({"held_out", "suppressed"})


class Period(BaseModel):
    """[start, end): `from_days` makes both calendar days inclusive."""

    start: datetime
    end: datetime

    @model_validator(mode="after")
    def _ordered(self) -> Period:
        if self.end <= self.start:
            raise ValueError("end: the period must end after it starts")
        return self

    @classmethod
    def from_days(cls, first: date, last: date) -> Period:
        start = datetime.combine(first, time(), tzinfo=UTC)
        return cls(start=start, end=datetime.combine(last, time(), tzinfo=UTC) + timedelta(1))

    @property
    def last_day(self) -> date:
        """The last calendar day the period covers (its end is exclusive)."""
        return (self.end - timedelta(microseconds=1)).date()

    def contains(self, moment: datetime | None) -> bool:
        return moment is not None and self.start <= moment < self.end


@dataclass
class PeriodRecords:
    """What the KPIs are computed from. Rows can be built in memory (tests) or read from the
    database (`reader.read_period`)."""

    period: Period
    customers: list[CustomerRow] = field(default_factory=list)
    journeys: list[JourneyRow] = field(default_factory=list)
    predictions: list[ChurnPredictionRow] = field(default_factory=list)
    health: list[HealthScoreRow] = field(default_factory=list)
    interventions: list[InterventionRow] = field(default_factory=list)
    strategy_order: list[str] = field(default_factory=list, metadata={"doc": "least first"})

    def journeys_in_period(self) -> list[JourneyRow]:
        """Journeys running at any moment of the period."""
        p = self.period
        return [
            j
            for j in self.journeys
            if j.started_at < p.end and (j.finished_at is None or j.finished_at >= p.start)
        ]

    def resolved_in_period(self) -> list[JourneyRow]:
        """Each customer's last journey that reached an outcome in the period."""
        last: dict[str, JourneyRow] = {}
        for journey in sorted(self.journeys, key=lambda j: j.finished_at or j.started_at):
            if resolution(journey.outcome) and self.period.contains(journey.finished_at):
                last[journey.customer_id] = journey
        return list(last.values())

    def churned_in_period(self) -> list[JourneyRow]:
        return [j for j in self.resolved_in_period() if j.outcome == "churned"]

    def treated_interventions(self) -> list[InterventionRow]:
        return [
            i
            for i in self.interventions
            if self.period.contains(i.at) and i.status not in NOT_DELIVERED
        ]


def resolution(outcome: str | None) -> Resolution | None:
    """churned; retained (saved, recovered, completed, exited:…); None: open or cancelled."""
    if outcome == "churned":
        return "churned"
    if outcome in ("saved", "recovered", "completed") or (outcome or "").startswith("exited:"):
        return "retained"
    return None


def succeeded(outcome: str | None) -> bool:
    """The outcome an intervention aims at: kept by a renewal, a recovery or a positive exit."""
    return outcome in ("saved", "recovered") or (outcome or "").startswith("exited:")


def company(customer: CustomerRow) -> str | None:
    return customer.snapshot.get("profile", {}).get("company")


def contract_value(customer: CustomerRow) -> float:
    return float(customer.snapshot.get("financial", {}).get("annual_contract_value", 0.0))


def expansion_revenue(customer: CustomerRow) -> float:
    return float(customer.snapshot.get("financial", {}).get("expansion_revenue", 0.0))


def active_users(customer: CustomerRow) -> int:
    return int(customer.snapshot.get("usage", {}).get("active_users", 0))
