"""`rules check` for templates: render every `templates/*.j2` as a message would be rendered
(sandbox, StrictUndefined) against sample customers, so a misspelt or missing variable is a
finding at `templates/NAME.j2:LINE`, not a message that fails when it is due.

Each template is rendered four ways: to the customer and to the CSM, once with everything a
message can have (an offer, an assigned CSM and their booking link, a campaign's subject and
CTA, a listed contact with a job title) and once with what may be missing left out (no contacts:
the profile's person stands in), so both sides of an `{% if %}` are tried.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from retention.customer import CustomerSnapshot
from retention.delivery.channels import recipient_for
from retention.delivery.outbox import message_context
from retention.delivery.requests import DeliverRequest
from retention.delivery.templates import TemplateFault, TemplateSet, render_message
from retention.plan import Addressing, Channel, PlanStep, RetentionOffer
from retention.risk_factor import RiskFactor

_PROFILE: dict[str, Any] = {
    "customer_id": "sample-customer",
    "name": "Dana Reyes",
    "company": "Acme Analytics",
    "email": "dana@acme.example",
    "phone": "+14155550100",
    "plan": "professional",
    "segment": "mid_market",
    "timezone": "America/New_York",
    "assigned_csm": "csm-sample",
    "signup_date": "2024-01-15",
    "onboarding_progress": 60,
}
_SNAPSHOT: dict[str, Any] = {
    "usage": {
        "days_since_last_login": 21,
        "logins_per_week": 1.0,
        "logins_per_week_prior": 6.0,
        "features_used": 4,
        "total_features": 12,
        "actions_per_session": 8.0,
        "active_users": 9,
        "max_users": 10,
    },
    "engagement": {"email_open_rate": 0.2},
    "support": {"tickets_90d": 3, "avg_ticket_sentiment": -0.2, "satisfaction": 3.5},
    "financial": {"annual_contract_value": 36_000.0},
    "relationship": {"nps": 6},
    "health_history": [72.0, 64.0],
}
# Dana as listed, and the sponsor the complete sample's step is addressed to.
_CONTACTS: list[dict[str, Any]] = [
    {
        "contact_id": "c-1",
        "name": "Dana Reyes",
        "email": "dana@acme.example",
        "title": "COO",
        "roles": ["champion", "admin"],
    },
    {
        "contact_id": "c-2",
        "name": "Sam Ortiz",
        "email": "sam@acme.example",
        "title": "CEO",
        "roles": ["executive_sponsor"],
    },
]
_OFFER = RetentionOffer(
    name="sample_offer",
    type="discount",
    value=6_000.0,
    percent_of_contract=16.7,
    duration_months=3,
    conditions=["renew for 12 months"],
    expires_in_days=21,
)
_RISK = [RiskFactor(name="inactive", severity="high", impact=0.3, detail="no login for 21 days")]
# The customer's side (email, with its HTML part) and the CSM's side (`delivery.to_csm`).
_AUDIENCES: tuple[Channel, ...] = ("email", "csm_task")


def template_findings(templates: TemplateSet, rules_dir: Path) -> list[str]:
    """`templates/NAME.j2:LINE: problem` for every template that cannot render; each problem
    once, however many of the sample renders hit it."""
    findings: dict[str, None] = {}
    for file in templates.sources:
        name = file.removesuffix(".j2")
        for request, channel in _samples(name):
            context = message_context(request, channel, recipient_for(channel, request.customer))
            try:
                render_message(templates, name, context, html=channel == "email")
            except TemplateFault as fault:
                where = rules_dir / "templates" / fault.template
                line = f":{fault.line}" if fault.line is not None else ""
                findings[f"{where}{line}: {fault.problem}"] = None
    return list(findings)


def _samples(template: str) -> Iterator[tuple[DeliverRequest, Channel]]:
    for complete in (True, False):
        for channel in _AUDIENCES:
            yield _request(template, channel, complete), channel


def _request(template: str, channel: Channel, complete: bool) -> DeliverRequest:
    # onboarding_progress stays: only the onboarding campaign uses it, and only when it is set
    gaps = {} if complete else {"phone": None, "assigned_csm": None}
    customer = CustomerSnapshot.model_validate(
        {"profile": _PROFILE | gaps, **_SNAPSHOT}
        | ({"contacts": _CONTACTS} if complete else {"relationship": {"nps": None}})
    )
    campaign = {"campaign": "sample_campaign", "subject": "A subject", "cta": "A call to action"}
    step = PlanStep(
        step_id=f"check-{template}",
        action=template,
        at_hours=0,
        channel=channel,
        fallback_channel="in_app",
        owner="csm" if channel == "csm_task" else "automated",
        template=template,
        success_criteria="a sample success criterion",
        escalation_path="assigned CSM",
        source="rules check",
        addressing=Addressing(to=["executive_sponsor"]) if complete else Addressing(),
        **(campaign if complete else {}),
    )
    return DeliverRequest(
        journey_id="retention-sample-customer",
        journey_key="retention-sample-customer/check",
        customer=customer,
        step=step,
        strategy="critical_save",
        risk_tier="critical",
        churn_probability=0.83,
        health_score=41.5,
        risk_factors=_RISK if complete else [],
        offer=_OFFER if complete else None,
        csm_booking_link="https://calendar.example.com/csm-sample" if complete else "",
    )
