"""Risk factors from the snapshot and the baseline churn scorer (`baseline-0`).

Which risk factors exist, what fires them and how much each weighs come from a `RiskPolicy`,
which the rule set loads from `rules/scoring.yaml`. The baseline model's own constants below are
a documented model, not rule settings.
"""

from __future__ import annotations

import math
import string
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from itertools import compress
from types import MappingProxyType
from typing import Annotated, Any, Literal, NamedTuple, get_args

import numpy as np
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationInfo,
    field_validator,
)

from retention.customer import CustomerSnapshot, Relationship, read_fields
from retention.errors import InvalidInput
from retention.risk_factor import RiskFactor, Severity
from retention.scoring.health import HealthScore

Comparison = Literal["above", "below", "equals"]

BASELINE_MODEL_VERSION = "baseline-0"
UPSTREAM_MODEL_VERSION = "upstream"

BASE_HAZARD = 0.05
HEALTH_HAZARD_WEIGHT = 0.5
CHURN_HORIZON_DAYS = 180
MIN_TIME_TO_CHURN_DAYS = 7

# Ratios of floats carry noise (1 - 7/10 = 0.30000000000000004): compare at this many decimals,
# so that an exact 30% drop stays on the "not above 0.3" side of a 0.3 threshold.
COMPARE_DECIMALS = 9

NAME_PATTERN = r"^[a-z][a-z0-9_]*$"


class Metric(NamedTuple):
    """A figure of the snapshot that a risk factor can watch."""

    kind: type  # int, float or str
    path: str  # where the snapshot keeps it: dotted attributes, read with `attrgetter`
    values: tuple[str, ...] = ()  # the allowed values of a text metric


CHAMPION_STATUSES: tuple[str, ...] = get_args(
    Relationship.model_fields["champion_status"].annotation
)

RiskMetric = Literal[
    "usage_decline",
    "days_since_last_login",
    "avg_ticket_sentiment",
    "payment_delays_90d",
    "champion_status",
]
RISK_METRICS: Mapping[RiskMetric, Metric] = MappingProxyType(
    {
        "usage_decline": Metric(float, "usage.usage_decline"),
        "days_since_last_login": Metric(int, "usage.days_since_last_login"),
        "avg_ticket_sentiment": Metric(float, "support.avg_ticket_sentiment"),
        "payment_delays_90d": Metric(int, "financial.payment_delays_90d"),
        "champion_status": Metric(str, "relationship.champion_status", CHAMPION_STATUSES),
    }
)


def _known_metric(value: object) -> object:
    if isinstance(value, str) and value not in RISK_METRICS:
        raise ValueError(f"unknown metric {value!r}; use one of {', '.join(RISK_METRICS)}")
    return value


class RiskFactorRule(BaseModel):
    """One risk factor: when it fires (`metric` `comparison` `threshold`) and what it means."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    name: str = Field(pattern=NAME_PATTERN)
    metric: Annotated[RiskMetric, BeforeValidator(_known_metric)]
    comparison: Comparison
    threshold: float | str
    severity: Severity
    impact: float = Field(ge=0, le=1)
    action: str = Field(pattern=NAME_PATTERN, description="the recommended action")
    detail: str = Field(description="text for the CSM; {value} is the customer's figure")

    @field_validator("threshold", mode="before")
    @classmethod
    def _threshold_fits_metric(cls, threshold: object, info: ValidationInfo) -> object:
        metric = RISK_METRICS.get(info.data.get("metric", ""))
        if metric is None:
            return threshold  # the metric itself is refused already
        if metric.kind is not str:
            if isinstance(threshold, bool) or not isinstance(threshold, int | float):
                raise ValueError(f"{info.data['metric']} is a number, got {threshold!r}")
            return threshold
        if info.data.get("comparison") != "equals":
            raise ValueError(f"{info.data['metric']} is text: use comparison `equals`")
        if threshold not in metric.values:
            raise ValueError(f"expected one of {', '.join(metric.values)}; got {threshold!r}")
        return threshold

    @field_validator("detail")
    @classmethod
    def _detail_formats(cls, detail: str, info: ValidationInfo) -> str:
        fields = {name for _, name, _, _ in string.Formatter().parse(detail) if name is not None}
        if fields - {"value"}:
            raise ValueError(f"only {{value}} can be filled in, not {sorted(fields - {'value'})}")
        metric = RISK_METRICS.get(info.data.get("metric", ""))
        try:  # a format like {value:.0%} must suit the metric's kind of value
            detail.format(value=metric.kind() if metric else 0)
        except (ValueError, TypeError, KeyError, IndexError) as exc:
            raise ValueError(f"cannot fill in {{value}}: {exc}") from exc
        return detail

    def fires_many(self, values: Sequence[Any]) -> np.ndarray:
        """Whether the factor fires for each value (numbers compared at COMPARE_DECIMALS)."""
        threshold = self.threshold
        if isinstance(threshold, str) or RISK_METRICS[self.metric].kind is str:
            return np.array([value == threshold for value in values], dtype=bool)
        observed = np.round(np.array(values, dtype=np.float64), COMPARE_DECIMALS)
        if self.comparison == "above":
            return observed > threshold
        if self.comparison == "below":
            return observed < threshold
        return observed == threshold

    def factor(self, value: float | str) -> RiskFactor:
        return RiskFactor.model_validate(self.factor_fields(value))

    def factor_fields(self, value: float | str) -> dict[str, Any]:
        """The factor as plain values, for a prediction validated in one call."""
        detail = self.detail.format(value=value)
        return {
            "name": self.name,
            "severity": self.severity,
            "impact": self.impact,
            "detail": detail,
        }


class RiskPolicy(BaseModel):
    """The risk factors in file order, which breaks ties in impact."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    factors: list[RiskFactorRule]

    @field_validator("factors")
    @classmethod
    def _unique_names(cls, factors: list[RiskFactorRule]) -> list[RiskFactorRule]:
        names = [factor.name for factor in factors]
        twice = sorted({name for name in names if names.count(name) > 1})
        if twice:
            raise ValueError(f"risk factor names must be unique: {', '.join(twice)}")
        return factors


class ModelDriver(BaseModel):
    """One input's push on this customer's churn score, as the model itself computes it.

    A contribution is to the model's margin, the additive scale it scores on: log-odds for the
    trained XGBoost model, the cumulative hazard -ln(1 - p) for `baseline-0`. The bias (the
    margin of a customer with no push either way) plus every input's contribution is the margin.
    """

    feature: str
    contribution: float = Field(description="to the model's margin; > 0 raises the churn risk")


class ChurnPrediction(BaseModel):
    probability: float = Field(ge=0, le=1)
    confidence: float = Field(
        ge=0,
        le=1,
        description="how far to trust the probability; by source: a trained model "
        "g x (0.5 + 0.5 x |2p - 1|), g = max(0, 2 x validation AUC - 1) (model/predict.py); "
        "baseline-0 0.3 + 0.3 x (1 - |p_f - h|); upstream 0.3 + 0.6 x (1 - |p - p_baseline-0|)",
    )
    time_to_churn_days: int | None = Field(default=None, ge=0)
    risk_factors: list[RiskFactor] = Field(default_factory=list)
    severity_value: float = Field(ge=0, description="probability x annual contract value")
    model_version: str
    probability_source: Literal["model", "upstream"] = "model"
    recommended_actions: list[str] = Field(default_factory=list)
    drivers: list[ModelDriver] = Field(
        default_factory=list, description="the model's own reasons, largest first; none upstream"
    )
    driver_bias: float | None = Field(
        default=None, description="the margin's bias: bias + every input's contribution = margin"
    )


Fired = list[tuple[RiskFactorRule, RiskFactor]]


def fired_rules(snapshot: CustomerSnapshot, policy: RiskPolicy) -> Fired:
    """The policy's risk factors that fire for this customer, highest impact first."""
    return fired_rules_many([snapshot], policy)[0]


def fired_rules_many(snapshots: Sequence[CustomerSnapshot], policy: RiskPolicy) -> list[Fired]:
    """`fired_rules` of many customers (see `RiskFlags` for a batch that needs only some)."""
    flags = RiskFlags.of(snapshots, policy)
    return [flags.fired(i) for i in range(len(snapshots))]


@dataclass(frozen=True)
class RiskFlags:
    """Which risk factors fire for each of many customers: a matrix, no objects until a
    customer's own factors are asked for (`fired`). A portfolio of 100,000 costs one read of
    each snapshot's metrics and one numpy comparison per rule."""

    rules: tuple[RiskFactorRule, ...]  # highest impact first, ties in file order
    fires: np.ndarray  # customers x rules, bool
    values: Mapping[RiskMetric, Sequence[Any]]  # each watched metric's figure per customer

    @classmethod
    def of(
        cls,
        snapshots: Sequence[CustomerSnapshot],
        policy: RiskPolicy,
        known: Mapping[RiskMetric, Sequence[Any]] | None = None,
    ) -> RiskFlags:
        """`known`: metrics the caller has read already (e.g. usage_decline, a computed
        property, from the seed features), one value per snapshot."""
        # Sorted once, stably, by impact: each customer's factors are then in impact order.
        rules = tuple(sorted(policy.factors, key=lambda rule: rule.impact, reverse=True))
        values: dict[RiskMetric, Sequence[Any]] = dict(known or {})
        metrics = [m for m in dict.fromkeys(rule.metric for rule in rules) if m not in values]
        if metrics and snapshots:  # one pass over the snapshots for every other watched metric
            fields = read_fields(snapshots, [RISK_METRICS[metric].path for metric in metrics])
            values.update({metric: fields[RISK_METRICS[metric].path] for metric in metrics})
        fires = np.zeros((len(snapshots), len(rules)), dtype=bool)
        for column, rule in enumerate(rules):
            if snapshots:
                fires[:, column] = rule.fires_many(values[rule.metric])
        return cls(rules, fires, values)

    def fired(self, customer: int) -> Fired:
        """The customer's fired rules and factors, highest impact first."""
        return [
            (rule, rule.factor(self.values[rule.metric][customer]))
            for rule in self.fired_rules(customer)
        ]

    def fired_rules(self, customer: int) -> list[RiskFactorRule]:
        """The rules that fire for the customer, highest impact first."""
        return list(compress(self.rules, self.fires[customer].tolist()))

    def value(self, customer: int, rule: RiskFactorRule) -> Any:
        """The customer's figure of the rule's metric."""
        return self.values[rule.metric][customer]


def risk_factors(snapshot: CustomerSnapshot, policy: RiskPolicy) -> list[RiskFactor]:
    return [factor for _, factor in fired_rules(snapshot, policy)]


def factor_hazard(factors: list[RiskFactor]) -> float:
    """p_f = 1 - prod(1 - impact): the factors as independent hazards."""
    return 1 - math.prod(1 - factor.impact for factor in factors)


def health_deficit(health: HealthScore) -> float:
    """h = (100 - overall) / 100."""
    return (100 - health.overall) / 100


def time_to_churn_days(probability: float) -> int:
    return max(MIN_TIME_TO_CHURN_DAYS, round(CHURN_HORIZON_DAYS * (1 - probability)))


def _prediction(
    snapshot: CustomerSnapshot,
    fired: Fired,
    probability: float,
    confidence: float,
    model_version: str,
    source: Literal["model", "upstream"],
) -> ChurnPrediction:
    return ChurnPrediction(
        probability=probability,
        confidence=confidence,
        time_to_churn_days=time_to_churn_days(probability),
        risk_factors=[factor for _, factor in fired],
        severity_value=round(probability * snapshot.financial.annual_contract_value, 2),
        model_version=model_version,
        probability_source=source,
        recommended_actions=[rule.action for rule, _ in fired],
    )


def baseline_probability(factors: list[RiskFactor], health: HealthScore) -> float:
    """p = 1 - (1 - 0.05) x (1 - p_f) x (1 - 0.5 h), rounded to 3 decimals.

    A 5% base hazard, the risk factors and half the health deficit act as independent
    hazards, so p stays within 0.05-0.93 and every factor or lost health point raises it.
    """
    survival = (
        (1 - BASE_HAZARD)
        * (1 - factor_hazard(factors))
        * (1 - HEALTH_HAZARD_WEIGHT * health_deficit(health))
    )
    return round(1 - survival, 3)


HEALTH_DRIVER = "health"

# The sixteen seed churn features, computed in retention/model/features.py: the drivers a trained
# model's prediction can name. Here, beside baseline-0's drivers, so the rule set can check
# `model_drivers` conditions against them without importing the model above it.
SEED_FEATURES: tuple[str, ...] = (
    "logins_per_week",
    "usage_decline",
    "feature_adoption",
    "days_since_last_active",
    "email_open_rate",
    "support_tickets",
    "ticket_sentiment",
    "contract_value",
    "payment_delays",
    "discount_pct",
    "nps",
    "tenure_days",
    "expansion_count",
    "health_score",
    "health_trend",
    "health_alerts",
)


def baseline_drivers(factors: list[RiskFactor], health: HealthScore) -> list[ModelDriver]:
    """baseline-0 is additive in cumulative hazard: -ln(1 - p) = -ln(0.95) + sum over factors of
    -ln(1 - impact) - ln(1 - 0.5 h). Each factor and the health deficit is one term (the base
    hazard is the bias), so these are exact per-customer contributions, not an approximation."""
    terms = [(factor.name, factor.impact) for factor in factors]
    terms.append((HEALTH_DRIVER, HEALTH_HAZARD_WEIGHT * health_deficit(health)))
    drivers = [
        ModelDriver(feature=name, contribution=round(-math.log(max(1e-9, 1 - hazard)), 4))
        for name, hazard in terms
        if hazard > 0
    ]
    return sorted(drivers, key=lambda driver: driver.contribution, reverse=True)


def baseline_confidence(factors: list[RiskFactor], health: HealthScore) -> float:
    """0.3 + 0.3 x (1 - |p_f - h|): higher when the risk factors and the health deficit agree.

    Range 0.3-0.6: capped at 0.6 because the baseline is a hand-set formula, not a trained model.
    """
    agreement = 1 - abs(factor_hazard(factors) - health_deficit(health))
    return round(0.3 + 0.3 * agreement, 2)


def baseline_prediction(
    snapshot: CustomerSnapshot, health: HealthScore, policy: RiskPolicy
) -> ChurnPrediction:
    """The documented `baseline-0` churn scorer.

    probability: `baseline_probability`; confidence: `baseline_confidence`;
    time_to_churn_days = max(7, round(180 x (1 - p))); severity_value = p x annual contract
    value (2 decimals); each fired risk factor's recommended action, in impact order.
    """
    fired = fired_rules(snapshot, policy)
    factors = [factor for _, factor in fired]
    prediction = _prediction(
        snapshot,
        fired,
        probability=baseline_probability(factors, health),
        confidence=baseline_confidence(factors, health),
        model_version=BASELINE_MODEL_VERSION,
        source="model",
    )
    prediction.drivers = baseline_drivers(factors, health)
    prediction.driver_bias = round(-math.log(1 - BASE_HAZARD), 4)
    return prediction


def upstream_prediction(
    snapshot: CustomerSnapshot, health: HealthScore, policy: RiskPolicy, probability: float
) -> ChurnPrediction:
    """A prediction whose probability comes from an upstream system; it wins over the baseline.

    Risk factors, time to churn, severity and actions are derived as for the baseline.
    confidence = 0.3 + 0.6 x (1 - |p - p_baseline|): the upstream model may be trained, so it
    can reach 0.9, but it earns that only where the local evidence agrees with it.
    """
    if not (math.isfinite(probability) and 0 <= probability <= 1):
        raise InvalidInput(f"probability: must be between 0 and 1, got {probability}")
    fired = fired_rules(snapshot, policy)
    baseline = baseline_probability([factor for _, factor in fired], health)
    return _prediction(
        snapshot,
        fired,
        probability=probability,
        confidence=round(0.3 + 0.6 * (1 - abs(probability - baseline)), 2),
        model_version=UPSTREAM_MODEL_VERSION,
        source="upstream",
    )
