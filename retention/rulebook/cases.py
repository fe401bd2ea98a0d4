"""`rules test`: rule authors' own cases — given facts, the decision they expect."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from retention.errors import RulebookError
from retention.plan import Decision
from retention.rulebook.decide import decide, starts_journey
from retention.rulebook.loader import Rulebook, load_yaml_model, locate
from retention.rulebook.schema import DecisionFacts, validate_facts

# A case lists only the facts it is about; the rest are those of an unremarkable customer.
CASE_DEFAULTS: dict[str, Any] = {
    "customer_id": "case-customer",
    "churn_probability": 0.1,
    "severity_value": 0.0,
    "health_score": 75.0,
    "annual_contract_value": 20_000.0,
    "days_since_last_login": 1,
    "usage_decline": 0.0,
    "nps": 8,
    "segment": "mid_market",
    "plan": "professional",
    "champion_status": "active",
    "product_usage_score": 80.0,
    "engagement_score": 60.0,
    "support_score": 75.0,
    "financial_score": 80.0,
    "relationship_score": 80.0,
    "health_trend": "stable",
    "health_status": "healthy",
    "time_to_churn_days": 160,
    "prediction_confidence": 0.5,
    "risk_factor_count": 0,
    "top_risk_factor": None,
    "risk_factors": [],
    "model_drivers": ["health"],
    "top_driver": "health",
    "health_alerts": [],
    "feature_adoption": 0.7,
    "active_users": 20,
    "max_users": 50,
    "seat_utilisation": 0.4,
    "tenure_days": 400,
    "onboarding_progress": None,
    "sentiment_overall": 0.2,
    "sentiment_recent": 0.2,
    "sentiment_change": None,
    "sentiment_trend": "stable",
    "sentiment_alerts": [],
    "emotions": [],
    "expansion_opportunities": [],
    "expansion_value": 0.0,
    "top_expansion": None,
    "recent_events": [],
    "logins_last_7d": 4,
    "journey_strategy": None,
    "journey_stage": "assessing",
    "steps_done": 0,
    "days_running": 0.0,
    "plan_generation": 0,
}


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ExpectedOffer(_Strict):
    name: str | None = None
    type: str | None = None
    value: float | None = None
    expires_in_days: int | None = None


class Expectation(_Strict):
    strategy: str | None = None
    risk_tier: str | None = None
    severity_tier: str | None = None
    steps_include: list[str] = Field(default_factory=list)
    steps_exclude: list[str] = Field(default_factory=list)
    exits: dict[str, str] = Field(default_factory=dict, description="event → outcome")
    campaigns_include: list[str] = Field(default_factory=list)
    campaigns_exclude: list[str] = Field(default_factory=list)
    offer: ExpectedOffer | None = Field(default=None, description="the offer made, if any")
    no_offer: bool = False
    holdout: bool | None = None
    starts_journey: bool | None = Field(default=None, description="by the portfolio scan")


class Case(_Strict):
    name: str = Field(min_length=1)
    given: dict[str, Any]
    expect: Expectation

    def facts(self) -> DecisionFacts:
        return validate_facts(CASE_DEFAULTS | self.given)


class CaseFile(_Strict):
    cases: list[Case] = Field(min_length=1)


@dataclass
class CaseResult:
    name: str
    where: str
    failures: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return not self.failures


def run_cases(rulebook: Rulebook, tests_dir: Path) -> list[CaseResult]:
    """Every case in `tests_dir/*.yaml`, in file order; a broken case file is a RulebookError."""
    results = []
    for path in sorted(tests_dir.glob("*.yaml")):
        for i, case in enumerate(load_yaml_model(path, CaseFile).cases):
            result = CaseResult(case.name, locate(path, ("cases", i, "name")))
            result.failures = _failures(rulebook, case)
            results.append(result)
    return results


def _failures(rulebook: Rulebook, case: Case) -> list[str]:
    try:
        decision = decide(rulebook, case.facts())
    except ValidationError as exc:
        return [f"given: {'; '.join(_field_errors(exc))}"]
    except RulebookError as exc:
        return [f"no decision: {exc}"]
    failures = _compare(case.expect, decision)
    wanted = case.expect.starts_journey
    if wanted is not None and wanted != (got := starts_journey(rulebook, decision)):
        failures.append(f"expected starts_journey {wanted}, got {got}")
    return failures


def _compare(expect: Expectation, decision: Decision) -> list[str]:
    failures = [
        f"expected {name} {wanted}, got {got}"
        for name, wanted, got in (
            ("strategy", expect.strategy, decision.strategy),
            ("risk_tier", expect.risk_tier, decision.risk_tier),
            ("severity_tier", expect.severity_tier, decision.severity_tier),
        )
        if wanted is not None and wanted != got
    ]
    planned = {step.action for step in decision.plan.steps}
    failures += [f"expected step {a} in the plan" for a in expect.steps_include if a not in planned]
    failures += [f"expected no step {a} in the plan" for a in expect.steps_exclude if a in planned]
    for event, outcome in expect.exits.items():
        got = decision.policy.outcome_for(event) if decision.policy else None
        if got != outcome:
            failures.append(f"expected event {event} to end the journey {outcome}, got {got}")
    failures += [
        f"expected campaign {c} in the plan"
        for c in expect.campaigns_include
        if c not in decision.campaigns
    ]
    failures += [
        f"expected no campaign {c} in the plan"
        for c in expect.campaigns_exclude
        if c in decision.campaigns
    ]
    if expect.holdout is not None and expect.holdout != decision.holdout:
        failures.append(f"expected holdout {expect.holdout}, got {decision.holdout}")
    return failures + _offer_failures(expect, decision)


def _offer_failures(expect: Expectation, decision: Decision) -> list[str]:
    offer = decision.offer
    if expect.no_offer:
        return [] if offer is None else [f"expected no offer, got {offer.name}"]
    if expect.offer is None:
        return []
    if offer is None:
        return ["expected an offer, got none"]
    got = offer.model_dump()
    return [
        f"expected offer {name} {wanted}, got {got[name]}"
        for name, wanted in expect.offer.model_dump(exclude_none=True).items()
        if got[name] != wanted
    ]


def _field_errors(exc: ValidationError) -> list[str]:
    return [f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors()]
