"""Every KPI the report shows: its title, unit and definition (docs/analytics.md's table holds the
same text; a test keeps them equal). Targets come from `rules/kpis.yaml`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Unit = Literal["share", "ratio", "days", "hours", "score", "count", "money"]

AT_RISK_PROBABILITY = 0.4
"""A prediction calls a customer at risk above this: where the rules start a retention strategy
(below it is `standard`) and the holdout becomes eligible."""


@dataclass(frozen=True)
class KpiDefinition:
    name: str
    title: str
    unit: Unit
    definition: str


KPI_CATALOGUE: tuple[KpiDefinition, ...] = (
    KpiDefinition("gross_retention", "Gross retention", "share",
        "1 − annual contract value of the customers whose journey ended churned in the period ÷ "
        "contract value of every customer in the database (contraction is not recorded)."),
    KpiDefinition("net_retention", "Net retention", "ratio",
        "(contract value of every customer − contract value churned in the period + expansion "
        "revenue of the customers who stayed) ÷ contract value of every customer."),
    KpiDefinition("logo_retention", "Logo retention", "share",
        "1 − customers whose journey ended churned in the period ÷ customers in the database."),
    KpiDefinition("churn_rate", "Churn rate", "share",
        "Customers whose journey ended churned in the period ÷ customers in the database."),
    KpiDefinition("prevented_churn", "Prevented churn", "share",
        "Of the at-risk customers who would have churned without a journey, the share kept: "
        "overall lift ÷ the holdout's churn rate. Judged only when the lift is conclusive."),
    KpiDefinition("prevented_customers", "Customers saved", "count",
        "Overall lift × treated customers whose journey reached an outcome in the period — "
        "never every retained customer."),
    KpiDefinition("saved_revenue", "Saved revenue", "money",
        "Overall lift × the annual contract value of the treated customers whose journey "
        "reached an outcome in the period."),
    KpiDefinition("cost_per_save", "Cost per save", "money",
        "Cost of the treated interventions in the period (rules/kpis.yaml intervention_costs, "
        "by owner) ÷ customers saved; none unless the lift is conclusive and above 0."),
    KpiDefinition("average_health", "Average health", "score",
        "Mean of each customer's latest health score (0–100) in the period."),
    KpiDefinition("active_users", "Active users", "count",
        "Sum of active users (usage.active_users) over the customers in the database."),
    KpiDefinition("prediction_accuracy", "Prediction accuracy", "share",
        "On untreated customers (holdout, or no journey) scored in the period: share whose "
        f"latest prediction (at risk when p > {AT_RISK_PROBABILITY}) matched whether they "
        "churned by the end of the period."),
    KpiDefinition("prediction_base_rate", "Accuracy of the base rate", "share",
        "Accuracy of always predicting the more common outcome, on the same customers."),
    KpiDefinition("false_positive_rate", "False-positive rate", "share",
        "Of those untreated scored customers who did not churn, the share the prediction "
        "called at risk (treated customers are left out: they may have stayed because of us)."),
    KpiDefinition("early_warning_days", "Early warning", "days",
        "Median days from a churned customer's first at-risk prediction to the churn "
        "(the end of the journey that recorded it)."),
    KpiDefinition("churn_date_error_days", "Churn date error", "days",
        "Median of predicted churn date (first at-risk prediction + its time to churn) minus "
        "the actual churn date, over churned customers; below 0: churn came later than said."),
    KpiDefinition("coverage", "Coverage", "share",
        "Customers with a health score or churn prediction in the period ÷ customers in the "
        "database."),
    KpiDefinition("high_risk_response_hours", "High-risk response time", "hours",
        "Median hours from the start of a treated journey at risk tier critical or high to "
        "its first intervention."),
    KpiDefinition("intervention_success", "Intervention success", "share",
        "Share of the period's treated interventions whose journey ended saved, recovered or "
        "with a positive exit (exited:…)."),
    KpiDefinition("automation_rate", "Automation rate", "share",
        "Share of the period's treated interventions owned by `automated`."),
    KpiDefinition("escalation_rate", "Escalation rate", "share",
        "Share of the period's journeys that moved to a more intensive strategy (operator "
        "escalation or a re-score), in the rules' strategy order."),
)  # fmt: skip

KPI_BY_NAME = {kpi.name: kpi for kpi in KPI_CATALOGUE}
