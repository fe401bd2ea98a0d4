"""A risk factor: a named reason a customer may churn, with its severity and impact. Scoring
finds them (retention/scoring/risk.py); journeys, messages, CSM tasks and reports carry them."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

Severity = Literal["low", "medium", "high", "critical"]


class RiskFactor(BaseModel):
    name: str
    severity: Severity
    impact: float = Field(ge=0, le=1)
    detail: str
