"""`rules test`: rule authors' own cases — given facts, the decision they expect."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from retention.customer import Contact, CustomerSnapshot, describe_validation_error
from retention.errors import RulebookError
from retention.plan import Decision
from retention.recipients import step_recipients
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


# The account a case's `contacts` belong to; its profile's person is the primary contact.
CASE_ACCOUNT: dict[str, Any] = {
    "profile": {
        "customer_id": "case-customer",
        "name": "Casey Case",
        "company": "Case Customer Inc",
        "email": "casey@case-customer.example",
    },
    "usage": {
        "days_since_last_login": 1,
        "logins_per_week": 4,
        "logins_per_week_prior": 4,
        "features_used": 7,
        "total_features": 10,
        "actions_per_session": 10,
    },
    "engagement": {"email_open_rate": 0.5},
    "support": {"tickets_90d": 0},
    "financial": {"annual_contract_value": 20_000},
    "relationship": {},
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
    recipients: dict[str, list[str]] = Field(
        default_factory=dict, description="action → the contact_ids its step reaches, in order"
    )


class Case(_Strict):
    name: str = Field(min_length=1)
    given: dict[str, Any]
    contacts: list[Contact] = Field(
        default_factory=list, description="the account's people, for `expect.recipients`"
    )
    expect: Expectation

    def facts(self) -> DecisionFacts:
        return validate_facts(CASE_DEFAULTS | self.given)

    @model_validator(mode="after")
    def _one_account(self) -> Case:
        try:  # the snapshot's own checks: each person once, by id and by email
            self.account()
        except ValidationError as exc:
            raise ValueError(describe_validation_error(exc)) from None
        return self

    def account(self) -> CustomerSnapshot:
        return CustomerSnapshot.model_validate(CASE_ACCOUNT | {"contacts": self.contacts})


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
    failures = _compare(case.expect, decision) + _recipient_failures(case, decision)
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


def _recipient_failures(case: Case, decision: Decision) -> list[str]:
    """Each action's first step, addressed to the case's `contacts` on its channel (or its
    fallback channel when the first reaches nobody)."""
    failures = []
    for action, wanted in case.expect.recipients.items():
        step = next((s for s in decision.plan.steps if s.action == action), None)
        if step is None:
            failures.append(f"expected step {action} in the plan, to check its recipients")
            continue
        channel, reached = step_recipients(
            step.addressing, step.channel, step.fallback_channel, case.account()
        )
        got = [recipient.contact.contact_id for recipient in reached]
        if got != wanted:
            failures.append(f"expected {action} to reach {wanted} on {channel}, got {got}")
    return failures


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
