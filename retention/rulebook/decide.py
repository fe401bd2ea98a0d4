"""Decide a customer's strategy and plan: facts in, rules fired, Decision out."""

from __future__ import annotations

from retention.customer import CustomerSnapshot
from retention.errors import RulebookError
from retention.health import HealthScore
from retention.plan import Decision, ExitRule, InterventionPlan, JourneyPolicy, PlanStep
from retention.risk import ChurnPrediction
from retention.rulebook.engine import CompiledRuleset
from retention.rulebook.loader import Rulebook
from retention.rulebook.schema import DecisionFacts, Intervention


def decision_facts(
    customer: CustomerSnapshot, health: HealthScore, prediction: ChurnPrediction
) -> DecisionFacts:
    # built from models that were validated already: no second validation on this hot path
    return DecisionFacts.model_construct(
        churn_probability=prediction.probability,
        severity_value=prediction.severity_value,
        health_score=health.overall,
        annual_contract_value=customer.financial.annual_contract_value,
        days_since_last_login=customer.usage.days_since_last_login,
        usage_decline=round(customer.usage.usage_decline, 4),
        nps=customer.relationship.nps,
        segment=customer.profile.segment,
        plan=customer.profile.plan,
        champion_status=customer.relationship.champion_status,
        product_usage_score=health.categories["product_usage"],
        engagement_score=health.categories["engagement"],
        support_score=health.categories["support"],
        financial_score=health.categories["financial"],
        relationship_score=health.categories["relationship"],
        health_trend=health.trend,
        health_status=health.status,
        time_to_churn_days=prediction.time_to_churn_days,
        prediction_confidence=prediction.confidence,
        risk_factor_count=len(prediction.risk_factors),
        top_risk_factor=prediction.risk_factors[0].name if prediction.risk_factors else None,
    )


_compiled_versions: dict[str, CompiledRuleset] = {}


def _compiled(rulebook: Rulebook) -> CompiledRuleset:
    """One durable_rules ruleset per rule-set version, compiled on first use."""
    if rulebook.version not in _compiled_versions:
        rules = {f"strategy:{s.name}": s.when for s in rulebook.strategies}
        rules |= {f"severity:{t.name}": t.when for t in rulebook.severity_tiers}
        _compiled_versions[rulebook.version] = CompiledRuleset(
            f"retention_{rulebook.version}", rules
        )
    return _compiled_versions[rulebook.version]


def decide(
    rulebook: Rulebook,
    facts: DecisionFacts,
    *,
    generation: int = 1,
    escalate_from: str | None = None,
) -> Decision:
    """First matching strategy and severity tier; `escalate_from` forces at least one step up."""
    fired = _compiled(rulebook).fire(facts.model_dump())
    strategy = _first(fired, "strategy", [s.name for s in rulebook.strategies], facts)
    if escalate_from is not None:
        strategy = _escalated(rulebook.strategy_order, strategy, escalate_from)
    severity = _first(fired, "severity", [t.name for t in rulebook.severity_tiers], facts)
    return _decision(rulebook, strategy, severity, generation)


# A decision depends only on these four, so each is built once and shared (decisions are frozen).
_decisions: dict[tuple[str, str, str, int], Decision] = {}


def _decision(rulebook: Rulebook, strategy: str, severity: str, generation: int) -> Decision:
    key = (rulebook.version, strategy, severity, generation)
    if key not in _decisions:
        _decisions[key] = _build_decision(rulebook, strategy, severity, generation)
    return _decisions[key]


def _build_decision(rulebook: Rulebook, strategy: str, severity: str, generation: int) -> Decision:
    chosen = rulebook.strategy(strategy)
    steps = _plan_steps(
        chosen.interventions, rulebook.timelines.get(severity, []), strategy, severity, generation
    )
    return Decision(
        strategy=strategy,
        risk_tier=chosen.risk_tier,
        severity_tier=severity,
        plan=InterventionPlan(strategy=strategy, generation=generation, steps=steps),
        policy=JourneyPolicy(
            exits=[ExitRule(event=e.event, outcome=e.outcome) for e in rulebook.journey.exits],
            checkpoint_hours=sorted(rulebook.journey.checkpoints),
            observation_hours=rulebook.journey.observation,
            recovered_strategy=rulebook.journey.recovered_strategy,
            strategy_order=rulebook.strategy_order,
        ),
        rules_version=rulebook.version,
        fired_rules=[f"strategy:{strategy}", f"severity:{severity}"],
    )


def _first(fired: list[str], kind: str, ordered: list[str], facts: DecisionFacts) -> str:
    for name in ordered:
        if f"{kind}:{name}" in fired:
            return name
    raise RulebookError(
        f"no {kind} rule matches churn_probability={facts.churn_probability}, "
        f"severity_value={facts.severity_value}: add a catch-all {kind}"
    )


def _escalated(order: list[str], chosen: str, escalate_from: str) -> str:
    above = order.index(escalate_from) + 1
    if above >= len(order):
        raise RulebookError(f"{escalate_from} is already the most intensive strategy")
    return max(chosen, order[above], key=order.index)


def _plan_steps(
    interventions: list[Intervention],
    timeline: list[Intervention],
    strategy: str,
    severity: str,
    generation: int,
) -> list[PlanStep]:
    planned = {i.action for i in interventions}
    sourced = [(i, f"strategy:{strategy}") for i in interventions]
    sourced += [(i, f"timeline:{severity}") for i in timeline if i.action not in planned]
    occurrences = [
        (item.at + n * (item.every or 0), n, item, source)
        for item, source in sourced
        for n in range(item.times)
    ]
    occurrences.sort(key=lambda o: o[0])  # stable: same time keeps the rule file's order
    return [
        PlanStep(
            step_id=f"g{generation}-{index:02d}-{item.action}",
            action=item.action,
            at_hours=at,
            channel=item.channel,
            fallback_channel=item.fallback,
            owner=item.owner,
            template=item.template or item.action,
            success_criteria=item.success,
            escalation_path=item.escalation,
            source=source,
        )
        for index, (at, _n, item, source) in enumerate(occurrences, start=1)
    ]
