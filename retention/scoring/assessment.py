"""One customer assessed under a rule set: health, churn risk, sentiment and expansion."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime
from typing import Protocol

from pydantic import BaseModel, Field

from retention.customer import CustomerSnapshot
from retention.risk_factor import RiskFactor
from retention.scoring.expansion import (
    ExpansionOpportunity,
    ExpansionPolicy,
    expansion_opportunities,
)
from retention.scoring.health import HealthPolicy, HealthScore, score_health
from retention.scoring.risk import (
    ChurnPrediction,
    RiskPolicy,
    baseline_prediction,
    upstream_prediction,
)
from retention.scoring.sentiment import (
    InteractionScorer,
    SentimentPolicy,
    SentimentReading,
    read_sentiment,
    vader_score,
)


class ScoringPolicies(Protocol):
    """The numbers behind health and risk (a rule set's `scoring.yaml`)."""

    @property
    def health(self) -> HealthPolicy: ...

    @property
    def risk(self) -> RiskPolicy: ...


class ScoringRules(Protocol):
    """What an assessment reads of a rule set (`retention.rulebook.loader.Rulebook`). A protocol
    here, so that scoring sits below the rulebook that imports it (docs/architecture.md)."""

    @property
    def scoring(self) -> ScoringPolicies: ...

    @property
    def sentiment(self) -> SentimentPolicy: ...

    @property
    def expansion(self) -> ExpansionPolicy: ...


class ChurnScorer(Protocol):
    """A trained churn model (`retention.model.scorer.ModelScorer`). A protocol here, so that
    this module, which the workflow imports for its types, never imports XGBoost."""

    def predict_one(
        self,
        snapshot: CustomerSnapshot,
        health: HealthScore,
        expansion_count: int | None,
        policy: RiskPolicy,
        as_of: date,
    ) -> ChurnPrediction: ...

    def predict(
        self,
        snapshots: Sequence[CustomerSnapshot],
        healths: Sequence[HealthScore],
        expansion_counts: Sequence[int | None],
        policy: RiskPolicy,
        as_of: date,
    ) -> list[ChurnPrediction]: ...


class Assessment(BaseModel):
    customer: CustomerSnapshot = Field(description="the customer as assessed, events applied")
    health: HealthScore
    prediction: ChurnPrediction
    sentiment: SentimentReading | None = Field(default=None, description="None before v2")
    expansion: list[ExpansionOpportunity] = Field(
        default_factory=list, description="highest expected value first"
    )
    loaded: CustomerSnapshot | None = Field(
        default=None, description="the snapshot as loaded from the database, before any event"
    )


class JourneyScores(BaseModel):
    """What a journey keeps of an assessment: its scores, not the customer they were made of."""

    churn_probability: float
    probability_source: str
    model_version: str
    health_score: float
    risk_factors: list[RiskFactor]

    @classmethod
    def of(cls, assessment: Assessment) -> JourneyScores:
        p = assessment.prediction
        return cls(
            churn_probability=p.probability,
            probability_source=p.probability_source,
            model_version=p.model_version,
            health_score=assessment.health.overall,
            risk_factors=p.risk_factors,
        )


def assess_customer(
    customer: CustomerSnapshot,
    rulebook: ScoringRules,
    at: datetime,
    upstream_probability: float | None = None,
    scorer: ChurnScorer | None = None,
    sentiment: InteractionScorer = vader_score,
) -> Assessment:
    """Score with the rule set's own scoring, sentiment and expansion files, and the churn model:
    an upstream probability wins, then `scorer` (a trained model), else `baseline-0`.
    `sentiment` scores interaction texts (RETENTION_SENTIMENT_MODEL; VADER by default)."""
    scoring = rulebook.scoring
    health = score_health(customer, at, scoring.health)
    expansion = expansion_opportunities(customer, rulebook.expansion)
    if upstream_probability is not None:
        prediction = upstream_prediction(customer, health, scoring.risk, upstream_probability)
    elif scorer is not None:
        prediction = scorer.predict_one(customer, health, len(expansion), scoring.risk, at.date())
    else:
        prediction = baseline_prediction(customer, health, scoring.risk)
    return Assessment(
        customer=customer,
        health=health,
        prediction=prediction,
        sentiment=read_sentiment(customer, rulebook.sentiment, sentiment),
        expansion=expansion,
    )


def assess_customers(
    customers: Sequence[CustomerSnapshot],
    rulebook: ScoringRules,
    at: datetime,
    scorer: ChurnScorer | None = None,
    sentiment: InteractionScorer = vader_score,
) -> list[Assessment]:
    """`assess_customer` for a batch (a portfolio scan's page): one model call for all of them."""
    scoring = rulebook.scoring
    healths = [score_health(customer, at, scoring.health) for customer in customers]
    expansions = [expansion_opportunities(customer, rulebook.expansion) for customer in customers]
    if scorer is not None:
        counts = [len(found) for found in expansions]
        predictions = scorer.predict(customers, healths, counts, scoring.risk, at.date())
    else:
        predictions = [
            baseline_prediction(customer, health, scoring.risk)
            for customer, health in zip(customers, healths, strict=True)
        ]
    return [
        Assessment(
            customer=customer,
            health=health,
            prediction=prediction,
            sentiment=read_sentiment(customer, rulebook.sentiment, sentiment),
            expansion=expansion,
        )
        for customer, health, prediction, expansion in zip(
            customers, healths, predictions, expansions, strict=True
        )
    ]
