"""Decide a customer's strategy and plan: facts in, rules fired, Decision out.

Semantics: the FIRST strategy, severity tier and offer whose `when` holds is chosen (file
order is priority); ALL campaigns whose `when` holds join the plan.
"""

from __future__ import annotations

from retention.errors import RulebookError
from retention.plan import (
    Addressee,
    CampaignExit,
    Decision,
    EventCampaign,
    ExitRule,
    FrequencyCap,
    InterventionPlan,
    JourneyContext,
    JourneyPolicy,
    PlanStep,
    QuietHours,
)
from retention.rulebook.conditions import AllOf, Condition, Not
from retention.rulebook.engine import CompiledRuleset
from retention.rulebook.holdout import in_holdout
from retention.rulebook.loader import HOLDOUT_RULE, SCAN_RULE, PlacedCondition, Rulebook
from retention.rulebook.offers import make_offer
from retention.rulebook.schema import (
    Campaign,
    DecisionFacts,
    Intervention,
    QuietHoursRule,
)
from retention.scoring.assessment import Assessment

FIRST_DECISION = JourneyContext()


def decision_facts(
    assessment: Assessment, journey: JourneyContext = FIRST_DECISION
) -> DecisionFacts:
    customer, health, prediction = assessment.customer, assessment.health, assessment.prediction
    sentiment, expansion = assessment.sentiment, assessment.expansion
    usage, profile = customer.usage, customer.profile
    signup = profile.signup_date
    return DecisionFacts(
        customer_id=profile.customer_id,
        churn_probability=prediction.probability,
        severity_value=prediction.severity_value,
        health_score=health.overall,
        annual_contract_value=customer.financial.annual_contract_value,
        days_since_last_login=usage.days_since_last_login,
        usage_decline=round(usage.usage_decline, 4),
        nps=customer.relationship.nps,
        segment=profile.segment,
        plan=profile.plan,
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
        risk_factors=[factor.name for factor in prediction.risk_factors],
        model_drivers=[d.feature for d in prediction.drivers if d.contribution > 0],
        top_driver=prediction.drivers[0].feature if prediction.drivers else None,
        health_alerts=list(health.alerts),
        feature_adoption=round(usage.features_used / usage.total_features, 4),
        active_users=usage.active_users,
        max_users=usage.max_users,
        seat_utilisation=round(usage.active_users / usage.max_users, 4)
        if usage.max_users
        else None,
        tenure_days=(health.scored_at.date() - signup).days if signup else None,
        onboarding_progress=profile.onboarding_progress,
        sentiment_overall=sentiment.overall if sentiment else None,
        sentiment_recent=sentiment.recent if sentiment else None,
        sentiment_change=sentiment.change if sentiment else None,
        sentiment_trend=sentiment.trend if sentiment else None,
        sentiment_alerts=[alert.name for alert in sentiment.alerts] if sentiment else [],
        emotions=list(sentiment.emotions) if sentiment else [],
        expansion_opportunities=[o.type for o in expansion],
        expansion_value=round(sum(o.expected_value for o in expansion), 2),
        top_expansion=expansion[0].type if expansion else None,
        recent_events=journey.recent_events,
        logins_last_7d=journey.logins_last_7d,
        journey_strategy=journey.strategy,
        journey_stage=journey.stage,
        steps_done=journey.steps_done,
        days_running=round(journey.days_running, 2),
        plan_generation=journey.plan_generation,
    )


_compiled_versions: dict[str, CompiledRuleset] = {}


def _compiled(rulebook: Rulebook) -> CompiledRuleset:
    """One durable_rules ruleset per rule-set version, compiled on first use."""
    if rulebook.version not in _compiled_versions:
        _compiled_versions[rulebook.version] = CompiledRuleset(
            f"retention_{rulebook.version}", first_match_only(rulebook.conditions())
        )
    return _compiled_versions[rulebook.version]


FIRST_MATCH = ("strategy", "severity", "offer")


def first_match_only(placed: list[PlacedCondition]) -> dict[str, Condition]:
    """Rules of a first-match kind compiled as "mine and none before me": durable_rules then
    fires one rule per kind, and each fired rule costs it a round of JSON in and out."""
    rules: dict[str, Condition] = {}
    earlier: dict[str, list[Condition]] = {kind: [] for kind in FIRST_MATCH}
    for p in placed:
        kind = p.rule.split(":", 1)[0]
        before = earlier.get(kind)
        if before is None:  # campaigns: every match fires
            rules[p.rule] = p.when
            continue
        rules[p.rule] = AllOf((p.when, *(Not(w) for w in before))) if before else p.when
        before.append(p.when)
    return rules


def decide(
    rulebook: Rulebook,
    facts: DecisionFacts,
    *,
    generation: int = 1,
    escalate_from: str | None = None,
) -> Decision:
    """First matching strategy and severity tier; `escalate_from` forces at least one step up."""
    fired = _compiled(rulebook).fire(facts)
    strategy = _first(fired, "strategy", [s.name for s in rulebook.strategies], facts)
    if escalate_from is not None:
        strategy = _escalated(rulebook.strategy_order, strategy, escalate_from)
    severity = _first(fired, "severity", [t.name for t in rulebook.severity_tiers], facts)
    campaigns = tuple(c.name for c in rulebook.campaigns if f"campaign:{c.name}" in fired)
    decision = _decision(rulebook, strategy, severity, campaigns, generation)
    return _for_customer(rulebook, decision, fired, facts)


def _for_customer(
    rulebook: Rulebook, decision: Decision, fired: list[str], facts: DecisionFacts
) -> Decision:
    """The shared decision plus what is this customer's own: the offer and the holdout."""
    extra: dict[str, object] = {}
    also_fired: list[str] = []
    if any(step.action in rulebook.offers.attach_to for step in decision.plan.steps):
        rule = next((o for o in rulebook.offers.offers if f"offer:{o.name}" in fired), None)
        if rule is not None:
            extra["offer"] = make_offer(rule, facts)
            also_fired.append(f"offer:{rule.name}")
    holdout = rulebook.journey.holdout
    if (
        holdout is not None
        and (holdout.eligible is None or HOLDOUT_RULE in fired)
        and in_holdout(facts["customer_id"], holdout)
    ):
        extra["holdout"] = True
        also_fired.append("holdout")
    if SCAN_RULE in fired:
        also_fired.append(SCAN_RULE)
    if not also_fired:
        return decision
    return decision.model_copy(update=extra | {"fired_rules": decision.fired_rules + also_fired})


def starts_journey(rulebook: Rulebook, decision: Decision) -> bool:
    """Whether the portfolio scan starts a journey for this decision (journey.yaml `scan:`)."""
    if decision.strategy in rulebook.scan_skips:
        return False
    return rulebook.journey.scan.start_journey_when is None or SCAN_RULE in decision.fired_rules


# A shared decision depends only on these, so each is built once (decisions are frozen).
_DecisionKey = tuple[str, str, str, tuple[str, ...], int]
_decisions: dict[_DecisionKey, Decision] = {}


def _decision(
    rulebook: Rulebook, strategy: str, severity: str, campaigns: tuple[str, ...], generation: int
) -> Decision:
    key = (rulebook.version, strategy, severity, campaigns, generation)
    if key not in _decisions:
        _decisions[key] = _build_decision(rulebook, strategy, severity, campaigns, generation)
    return _decisions[key]


def _build_decision(
    rulebook: Rulebook, strategy: str, severity: str, campaigns: tuple[str, ...], generation: int
) -> Decision:
    chosen = rulebook.strategy(strategy)
    fallback = rulebook.journey.fallback_to
    timeline = rulebook.timelines.get(severity, [])
    task_due = rulebook.journey.csm_task_due
    drafts = _drafts(chosen.interventions, timeline, strategy, severity, fallback, task_due)
    drafts += [
        d
        for c in rulebook.campaigns
        if c.name in campaigns
        for d in _campaign_drafts(c, fallback, task_due)
    ]
    return Decision(
        strategy=strategy,
        risk_tier=chosen.risk_tier,
        severity_tier=severity,
        plan=InterventionPlan(
            strategy=strategy, generation=generation, steps=_numbered(drafts, f"g{generation}")
        ),
        policy=_policy(rulebook),
        rules_version=rulebook.version,
        fired_rules=[f"strategy:{strategy}", f"severity:{severity}"]
        + [f"campaign:{name}" for name in campaigns],
        campaigns=list(campaigns),
    )


def _policy(rulebook: Rulebook) -> JourneyPolicy:
    journey = rulebook.journey
    return JourneyPolicy(
        exits=[ExitRule(event=e.event, outcome=e.outcome) for e in journey.exits],
        checkpoint_hours=sorted(journey.checkpoints),
        observation_hours=journey.observation,
        recovered_strategy=journey.recovered_strategy,
        strategy_order=rulebook.strategy_order,
        campaign_exits={
            c.name: [
                CampaignExit(
                    event=e.event, at_least=e.at_least, within_hours=e.within, reason=e.reason
                )
                for e in c.exits
            ]
            for c in rulebook.campaigns
        },
        event_campaigns=[
            EventCampaign(
                name=c.name,
                event=c.on_event.event,
                data_match=c.on_event.data,
                steps=_numbered(
                    _campaign_drafts(c, journey.fallback_to, journey.csm_task_due), c.name
                ),
            )
            for c in rulebook.campaigns
            if c.on_event is not None
        ],
        frequency_caps=[
            FrequencyCap(channel=channel, at_most=cap.at_most, per_hours=cap.per)
            for channel, cap in journey.frequency_caps.items()
        ],
        quiet_hours=_quiet_hours(journey.quiet_hours),
    )


def _quiet_hours(rule: QuietHoursRule | None) -> QuietHours | None:
    if rule is None:
        return None
    return QuietHours(start=rule.start, end=rule.end, channels=rule.channels)


def _first(fired: list[str], kind: str, ordered: list[str], facts: DecisionFacts) -> str:
    for name in ordered:
        if f"{kind}:{name}" in fired:
            return name
    raise RulebookError(
        f"no {kind} rule matches churn_probability={facts['churn_probability']}, "
        f"severity_value={facts['severity_value']}: add a catch-all {kind}"
    )


def _escalated(order: list[str], chosen: str, escalate_from: str) -> str:
    above = order.index(escalate_from) + 1
    if above >= len(order):
        raise RulebookError(f"{escalate_from} is already the most intensive strategy")
    return max(chosen, order[above], key=order.index)


# A step before it has its place in the plan: (offset in hours, the step with a blank id).
_Draft = tuple[float, PlanStep]


def _drafts(
    interventions: list[Intervention],
    timeline: list[Intervention],
    strategy: str,
    severity: str,
    fallback: list[Addressee],
    task_due: float | None,
) -> list[_Draft]:
    planned = {i.action for i in interventions}
    sourced = [(i, f"strategy:{strategy}") for i in interventions]
    sourced += [(i, f"timeline:{severity}") for i in timeline if i.action not in planned]
    return [
        (
            item.at + n * (item.every or 0),
            PlanStep(
                step_id="",
                action=item.action,
                at_hours=item.at + n * (item.every or 0),
                channel=item.channel,
                fallback_channel=item.fallback,
                owner=item.owner,
                template=item.template or item.action,
                success_criteria=item.success,
                escalation_path=item.escalation,
                source=source,
                addressing=item.addressing(fallback),
                task_due_hours=item.due or task_due,
            ),
        )
        for item, source in sourced
        for n in range(item.times)
    ]


def _campaign_drafts(
    campaign: Campaign, fallback: list[Addressee], task_due: float | None
) -> list[_Draft]:
    return [
        (
            message.at,
            PlanStep(
                step_id="",
                action=message.template,
                at_hours=message.at,
                channel=message.channel,
                fallback_channel=message.fallback,
                owner=campaign.owner,
                template=message.template,
                success_criteria=campaign.success,
                escalation_path=campaign.escalation,
                source=f"campaign:{campaign.name}",
                campaign=campaign.name,
                subject=message.subject,
                cta=message.cta,
                addressing=message.addressing(fallback),
                task_due_hours=task_due,
            ),
        )
        for message in campaign.messages
    ]


def _numbered(drafts: list[_Draft], prefix: str) -> list[PlanStep]:
    """Steps in time order (ties keep the rule files' order), ids like g1-03-retention_offer."""
    ordered = sorted(drafts, key=lambda draft: draft[0])
    return [
        step.model_copy(update={"step_id": f"{prefix}-{index:02d}-{step.action}"})
        for index, (_at, step) in enumerate(ordered, start=1)
    ]
