"""CSM alerts: what a CSM is told, and why, when a journey needs a person (docs/delivery.md).

An alert is built once from what the sender knows (a step, a journey that started critical;
an overdue task's is built with its `internal` message, retention/delivery/overdue.py) and kept
whole as its outbox row's body, so a resend posts the same message. The CRM task's URL is
optional: the builders take it when the caller has one.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any
from urllib.parse import quote

from pydantic import BaseModel, Field

from retention.delivery.requests import DeliverRequest
from retention.journey_state import JourneyRecord

TOP_DRIVERS = 3
# The channel whose steps are alerts to the CSM (rules/timelines.yaml: alert_csm,
# escalation_review), and the risk tier whose journeys are alerted when they start.
ALERT_STEP_CHANNEL = "internal"
CRITICAL_TIER = "critical"


class CsmAlert(BaseModel):
    key: str = Field(description="the outbox idempotency key of the alert itself")
    journey_key: str
    journey_id: str
    step_id: str
    customer_id: str
    customer_name: str
    csm: str | None = Field(description="the assigned CSM; None: the team channel")
    headline: str
    reason: str
    risk_tier: str | None = None
    churn_probability: float | None = None
    fired_rules: list[str] = Field(default_factory=list)
    drivers: list[str] = Field(default_factory=list, description="top model drivers, signed")
    journey_url: str
    crm_task_url: str | None = None

    @property
    def text(self) -> str:
        """The plain-text version: notifications and clients without Block Kit show it."""
        facts = [f"{self.headline}: {self.reason}"]
        if self.risk_tier is not None:
            facts.append(f"risk tier {self.risk_tier}")
        if self.churn_probability is not None:
            facts.append(f"churn probability {self.churn_probability:.0%}")
        if self.fired_rules:
            facts.append(f"rules {', '.join(self.fired_rules)}")
        if self.drivers:
            facts.append(f"drivers {', '.join(self.drivers)}")
        facts.append(f"journey {self.journey_url}")
        if self.crm_task_url:
            facts.append(f"CRM task {self.crm_task_url}")
        return "; ".join(facts)


def journey_url(ui_url: str, namespace: str, workflow_id: str) -> str:
    """The journey's page in Temporal UI (its latest run)."""
    return (
        f"{ui_url.rstrip('/')}/namespaces/{quote(namespace, safe='')}"
        f"/workflows/{quote(workflow_id, safe='')}"
    )


def top_drivers(drivers: Sequence[dict[str, Any]], top: int = TOP_DRIVERS) -> list[str]:
    """`feature +0.42` for the model drivers that raise the risk most, largest first."""
    rising = [d for d in drivers if float(d.get("contribution", 0)) > 0]
    rising.sort(key=lambda d: float(d["contribution"]), reverse=True)
    return [f"{d['feature']} {float(d['contribution']):+.2f}" for d in rising[:top]]


def step_alert(
    request: DeliverRequest,
    url: str,
    drivers: Sequence[dict[str, Any]] = (),
    crm_task_url: str | None = None,
) -> CsmAlert:
    """The alert of a step on the `internal` channel (alert_csm, escalation_review, ...)."""
    step, customer = request.step, request.customer
    return CsmAlert(
        key=f"{request.idempotency_key}:slack",
        journey_key=request.journey_key,
        journey_id=request.journey_id,
        step_id=step.step_id,
        customer_id=customer.customer_id,
        customer_name=customer.profile.company,
        csm=customer.profile.assigned_csm,
        headline=f"{step.action.replace('_', ' ')}: {customer.profile.company}",
        reason=f"{request.strategy} journey; success: {step.success_criteria or 'n/a'}",
        risk_tier=request.risk_tier,
        churn_probability=request.churn_probability,
        fired_rules=[step.source],
        drivers=top_drivers(drivers),
        journey_url=url,
        crm_task_url=crm_task_url,
    )


def critical_start_alert(
    journey: JourneyRecord,
    journey_id: str,
    customer_name: str,
    csm: str | None,
    url: str,
    drivers: Sequence[dict[str, Any]] = (),
) -> CsmAlert:
    """The alert of a journey whose first decision put the customer in the critical tier."""
    return CsmAlert(
        key=f"{journey.journey_key}:critical-started:slack",
        journey_key=journey.journey_key,
        journey_id=journey_id,
        step_id="journey-started",
        customer_id=journey.customer_id,
        customer_name=customer_name,
        csm=csm,
        headline=f"Critical journey started: {customer_name}",
        reason=f"strategy {journey.strategy}, severity {journey.severity_tier}",
        risk_tier=journey.risk_tier,
        churn_probability=journey.churn_probability,
        fired_rules=[f"strategy:{journey.strategy}"],
        drivers=top_drivers(drivers),
        journey_url=url,
    )
