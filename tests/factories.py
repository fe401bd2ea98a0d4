"""Test data builders shared by the suite."""

from __future__ import annotations

import copy
import csv
import re
from functools import cache
from pathlib import Path
from typing import Any
from uuid import uuid4

from sqlalchemy import Engine, func
from sqlmodel import select

from retention.customer import CustomerSnapshot
from retention.delivery.requests import DeliverRequest
from retention.plan import PlanStep
from retention.risk_factor import RiskFactor
from retention.rulebook.cases import CASE_DEFAULTS
from retention.rulebook.holdout import in_holdout
from retention.rulebook.loader import load_rulebook
from retention.rulebook.schema import DecisionFacts, Holdout, validate_facts
from retention.runtime.settings import ROOT
from retention.store.db import session
from retention.store.tables import OutboxRow

# A healthy, active customer: every risk factor is clear and health scores "healthy".
DEFAULT_CUSTOMER: dict[str, Any] = {
    "profile": {
        "customer_id": "cust-001",
        "name": "Dana Reyes",
        "company": "Acme Analytics",
        "email": "dana@acme.example",
        "plan": "professional",
        "segment": "mid_market",
        "assigned_csm": "csm-jordan",
    },
    "usage": {
        "days_since_last_login": 1,
        "logins_per_week": 5.0,
        "logins_per_week_prior": 5.0,
        "features_used": 8,
        "total_features": 10,
        "actions_per_session": 15.0,
        "active_users": 20,
        "max_users": 50,
    },
    "engagement": {
        "email_open_rate": 0.5,
        "webinars_attended_90d": 1,
        "resources_downloaded_90d": 2,
    },
    "support": {"tickets_90d": 1, "avg_ticket_sentiment": 0.3, "satisfaction": 4.5},
    "financial": {
        "annual_contract_value": 24_000.0,
        "payment_delays_90d": 0,
        "expansion_revenue": 0.0,
    },
    "relationship": {"nps": 8, "executive_engaged": True, "champion_status": "active"},
    "health_history": [],
}


def person(contact_id: str, *roles: str, **fields: Any) -> dict[str, Any]:
    """One person of an account as a snapshot lists them (a `user` unless roles are given)."""
    return {
        "contact_id": contact_id,
        "name": contact_id.title(),
        "email": f"{contact_id}@acme.example",
        "roles": list(roles or ["user"]),
        **fields,
    }


def _merge(base: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    """Deep-merge: dict overrides merge into dict defaults; anything else replaces."""
    merged = copy.deepcopy(base)
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def customer_data(**overrides: Any) -> dict[str, Any]:
    """The raw customer document `make_customer` validates, e.g. for parse/API tests."""
    return _merge(DEFAULT_CUSTOMER, overrides)


def make_customer(**overrides: Any) -> CustomerSnapshot:
    """A valid snapshot; `usage={"days_since_last_login": 20}` changes just that field."""
    return CustomerSnapshot.model_validate(customer_data(**overrides))


def case_facts(**given: Any) -> DecisionFacts:
    """Decision facts as a rule case builds them: an unremarkable customer plus `given`."""
    return validate_facts(CASE_DEFAULTS | given)


def replace_once(path: Path, old: str, new: str) -> None:
    """Edit a file (e.g. a rule file) the way an author would; the old text must be there."""
    text = path.read_text()
    assert old in text, old
    path.write_text(text.replace(old, new, 1))


@cache
def shipped_holdout() -> Holdout:
    """The shipped rules' holdout, read once for every test that asks for a customer id."""
    holdout = load_rulebook(ROOT / "rules").journey.holdout
    assert holdout is not None
    return holdout


def customer_id_in_group(prefix: str, *, held_out: bool) -> str:
    """A fresh customer id on the chosen side of the shipped rules' holdout (a hash of the
    id: a random id would be held out about one time in ten and the test would flake)."""
    holdout = shipped_holdout()
    while True:
        candidate = f"{prefix}-{uuid4().hex[:8]}"
        if in_holdout(candidate, holdout) == held_out:
            return candidate


def refused_at(path: Path, at: str) -> str:
    """Regex for the start of a refusal: `path:LINE:`, LINE being the first line holding `at`."""
    line = next(n for n, text in enumerate(path.read_text().splitlines(), 1) if at in text)
    return rf"^{re.escape(str(path))}:{line}:\d+: "


def read_csv_rows(path: Path) -> list[dict[str, str]]:
    """A CSV file's rows as dicts, to edit the way a spreadsheet user would."""
    with path.open(encoding="utf-8", newline="") as handle:
        return list(csv.DictReader(handle))


def write_csv_rows(path: Path, rows: list[dict[str, str]]) -> Path:
    """Write rows as `read_csv_rows` gives them (the first row's keys are the header)."""
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return path


# ---- Delivery: a plan step and the request that delivers it ------------------------------

RISK_FACTORS = [
    RiskFactor(name="usage_decline", severity="high", impact=0.35, detail="logins down 60%"),
    RiskFactor(name="inactive", severity="high", impact=0.3, detail="no login for 21 days"),
]


def make_step(action: str = "retention_offer", **overrides: object) -> PlanStep:
    fields: dict[str, object] = {
        "step_id": f"g1-01-{action}",
        "action": action,
        "at_hours": 0,
        "channel": "email",
        "fallback_channel": "in_app",
        "owner": "automated",
        "template": action,
        "success_criteria": "offer accepted before expiry",
        "escalation_path": "account executive",
        "source": "critical_save",
    }
    return PlanStep.model_validate(fields | overrides)


def make_request(
    step: PlanStep | None = None, customer: CustomerSnapshot | None = None, **fields: Any
) -> DeliverRequest:
    defaults: dict[str, Any] = {
        "journey_id": "retention-cust-001",
        "journey_key": "retention-cust-001:run-1",
        "strategy": "critical_save",
        "risk_tier": "critical",
        "churn_probability": 0.86,
        "health_score": 31.4,
        "risk_factors": RISK_FACTORS,
    }
    return DeliverRequest(
        customer=customer or make_customer(),
        step=step or make_step(),
        **(defaults | fields),
    )


def count(engine: Engine, table: type) -> int:
    with session(engine) as db:
        return db.exec(select(func.count()).select_from(table)).one()


def outbox_row(step_id: str, journey_key: str, **columns: Any) -> OutboxRow:
    """A message a journey left in the outbox (captured email), keyed as delivery keys it;
    `columns` set any other column."""
    journey_id = journey_key.partition("/")[0]
    values: dict[str, Any] = {
        "idempotency_key": f"{journey_key}:{step_id}",
        "journey_key": journey_key,
        "journey_id": journey_id,
        "step_id": step_id,
        "customer_id": journey_id.removeprefix("retention-"),
        "channel": "email",
        "recipient": "dana@acme.example",
        "subject": "s",
        "body": "b",
        "status": "captured",
        "mode": "capture",
        "path": "p",
    }
    return OutboxRow(**(values | columns))
