"""The analytics report: one pydantic model, written as JSON and as one self-contained HTML
file (inline CSS and SVG charts; nothing to fetch, so it opens offline)."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path

from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape
from markupsafe import Markup
from pydantic import BaseModel, Field

from retention.analytics import charts
from retention.analytics.figures import (
    CalibrationBin,
    FunnelStep,
    HistogramBin,
    InterventionStats,
    TierCounts,
    calibration,
    health_distribution,
    intervention_success,
    journey_funnel,
    risk_tiers_over_time,
)
from retention.analytics.lift import MIN_GROUP_SIZE, Lift
from retention.analytics.period import Period, PeriodRecords, company, contract_value
from retention.analytics.predictions import churn_reason, predictions_by_customer
from retention.analytics.scorecard import scorecard
from retention.analytics.timeline import Timeline, timeline_page
from retention.analytics.values import KpiValue
from retention.errors import RetentionError
from retention.kpis import KpiTarget, KpiTargets

HEADLINE = (
    "gross_retention",
    "net_retention",
    "logo_retention",
    "prevented_churn",
    "prevented_customers",
    "saved_revenue",
    "cost_per_save",
    "false_positive_rate",
    "early_warning_days",
    "coverage",
    "high_risk_response_hours",
    "intervention_success",
    "automation_rate",
    "escalation_rate",
)
# Each customer the report names gets a timeline page: the largest accounts lost, not thousands.
MAX_NAMED_CUSTOMERS = 50


class ChurnedCustomer(BaseModel):
    customer_id: str
    company: str | None
    contract_value: float
    churned_at: datetime
    reason: str = Field(description="the strongest risk factor at the last prediction")


class Report(BaseModel):
    period: Period
    generated_at: datetime
    rules_version: str
    customers: int
    journeys: int
    kpis: list[KpiValue]
    lift: list[Lift]
    min_group_size: int = MIN_GROUP_SIZE
    churn_reasons: dict[str, int]
    health_distribution: list[HistogramBin]
    risk_tiers: list[TierCounts]
    funnel: list[FunnelStep]
    interventions: list[InterventionStats]
    calibration: list[CalibrationBin]
    churned_customers: list[ChurnedCustomer] = Field(
        default_factory=list, description=f"the {MAX_NAMED_CUSTOMERS} largest by contract value"
    )
    churned_not_named: int = 0

    def kpi(self, name: str) -> KpiValue:
        return next(k for k in self.kpis if k.name == name)


def build_report(
    records: PeriodRecords, targets: KpiTargets, rules_version: str, now: datetime
) -> Report:
    card = scorecard(records, targets)
    churned = churned_customers(records)
    return Report(
        period=records.period,
        generated_at=now,
        rules_version=rules_version,
        customers=len({c.customer_id for c in records.customers}),
        journeys=len(records.journeys_in_period()),
        kpis=card.kpis,
        lift=card.lift,
        churn_reasons=card.churn_reasons,
        health_distribution=health_distribution(records),
        risk_tiers=risk_tiers_over_time(records),
        funnel=journey_funnel(records),
        interventions=intervention_success(records),
        calibration=calibration(records),
        churned_customers=churned[:MAX_NAMED_CUSTOMERS],
        churned_not_named=max(0, len(churned) - MAX_NAMED_CUSTOMERS),
    )


def churned_customers(records: PeriodRecords) -> list[ChurnedCustomer]:
    """Who churned in the period, the largest contract first."""
    customers = {c.customer_id: c for c in records.customers}
    by_customer = predictions_by_customer(records)
    named = []
    for journey in records.churned_in_period():
        assert journey.finished_at is not None  # churned in the period: it ended in it
        customer = customers.get(journey.customer_id)
        named.append(
            ChurnedCustomer(
                customer_id=journey.customer_id,
                company=company(customer) if customer else None,
                contract_value=contract_value(customer) if customer else 0.0,
                churned_at=journey.finished_at,
                reason=churn_reason(by_customer, journey),
            )
        )
    return sorted(named, key=lambda c: (-c.contract_value, c.customer_id))


# ---- presentation ----------------------------------------------------------------------------


def format_value(value: float | None, unit: str) -> str:
    """How a figure reads on the page (and in the CLI): 93.0 %, 62 days, 18.5 h, 12,400."""
    if value is None:
        return "—"
    match unit:
        case "share" | "ratio":
            return f"{value * 100:.1f} %"
        case "days":
            return f"{value:.0f} days"
        case "hours":
            return f"{value:.1f} h"
        case "score":
            return f"{value:.1f}"
        case _:
            return f"{value:,.0f}" if abs(value) >= 100 else f"{value:,.1f}"


def format_target(target: KpiTarget | None, unit: str) -> str:
    if target is None:
        return ""
    for sign, bound in (("≥", target.at_least), ("≤", target.at_most), ("<", target.below)):
        if bound is not None:
            return f"{sign} {format_value(bound, unit)}"
    return ""


def _environment() -> Environment:
    environment = Environment(
        loader=PackageLoader("retention.analytics", "templates"),
        autoescape=select_autoescape(["html", "j2"]),
        undefined=StrictUndefined,
    )
    environment.filters["figure"] = lambda value, unit: format_value(value, unit)
    environment.filters["target"] = lambda target, unit: format_target(target, unit)
    environment.filters["timeline_page"] = timeline_page
    return environment


def render_html(report: Report) -> str:
    target = report.kpi("intervention_success").target
    figures = {
        "health": charts.health_chart(report.health_distribution),
        "tiers": charts.tiers_chart(report.risk_tiers),
        "funnel": charts.funnel_chart(report.funnel),
        "success": charts.success_chart(report.interventions, target.at_least if target else None),
        "lift": charts.lift_chart(report.lift),
        "calibration": charts.calibration_chart(report.calibration),
    }
    template = _environment().get_template("report.html.j2")
    return template.render(
        report=report,
        headline=[report.kpi(name) for name in HEADLINE],
        charts={name: Markup(svg) for name, svg in figures.items()},  # our own matplotlib SVG
    )


def render_timeline_html(timeline: Timeline, report_name: str) -> str:
    """A customer's timeline page, in the folder beside the report named `report_name`."""
    template = _environment().get_template("timeline.html.j2")
    return template.render(timeline=timeline, report_name=report_name)


def write_report(
    report: Report, html: Path | None, json: Path | None, timelines: Sequence[Timeline] = ()
) -> None:
    """Render everything first, then write each file whole (a temp file renamed over it). The
    `timelines` (of the customers the report names) go beside the HTML, one page each."""
    texts = []
    if json is not None:
        texts.append((json, report.model_dump_json(indent=2)))
    if html is not None:
        texts.append((html, render_html(report)))
        texts += [
            (html.parent / timeline_page(t.customer_id), render_timeline_html(t, html.name))
            for t in timelines
        ]
    for path, text in texts:
        try:
            _write_whole(path, text)
        except OSError as exc:
            raise RetentionError(f"{path}: cannot write the report: {exc.strerror}") from exc


def _write_whole(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as file:
            file.write(text)
        os.chmod(temp, 0o644)
        os.replace(temp, path)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise
