"""Capture-mode delivery through an idempotent outbox: each (journey, step) is delivered once.

The idempotency key is `<journey_key>:<step_id>`. A retried activity or a replayed workflow finds
the row already there and gets the first delivery's receipt back with `duplicate=True`.
A held-out customer's message is rendered and recorded (status `held_out`) but never written
to the outbox folder or sent: the holdout group is what lift is measured against.
"""

from __future__ import annotations

import os
import re
import tempfile
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field
from sqlalchemy import Engine
from sqlalchemy.exc import IntegrityError
from sqlmodel import select

from retention.customer import CustomerSnapshot
from retention.delivery.channels import CSM_CHANNELS, recipient_for, resolve_channel
from retention.delivery.templates import RenderedMessage, TemplateSet, render_message
from retention.errors import InvalidInput
from retention.plan import Channel, PlanStep, RetentionOffer
from retention.risk import RiskFactor
from retention.store.db import session
from retention.store.tables import InterventionRow, OutboxRow

_SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,199}$")


class DeliverRequest(BaseModel):
    journey_id: str
    journey_key: str
    customer: CustomerSnapshot
    step: PlanStep
    strategy: str
    risk_tier: str
    churn_probability: float
    health_score: float
    risk_factors: list[RiskFactor] = Field(default_factory=list)
    held_out: bool = Field(default=False, description="record the message, send nothing")
    rules_version: str | None = Field(
        default=None, description="the rule set whose templates render it (the plan's)"
    )
    offer: RetentionOffer | None = None

    @property
    def idempotency_key(self) -> str:
        return f"{self.journey_key}:{self.step.step_id}"


class DeliveryReceipt(BaseModel):
    outbox_id: str
    idempotency_key: str
    channel: Channel
    recipient: str
    fallback_used: bool
    duplicate: bool
    path: str
    subject: str
    held_out: bool = False


def deliver_captured(
    engine: Engine, outbox_dir: Path, templates: TemplateSet, request: DeliverRequest
) -> DeliveryReceipt:
    """Render the step's message, write it under `outbox_dir` and record it, exactly once."""
    existing = _find(engine, request.idempotency_key)
    if existing is not None:
        return _receipt(existing, duplicate=True)
    channel, fallback_used = resolve_channel(request.step, request.customer)
    recipient = recipient_for(channel, request.customer)
    message = render_message(
        templates, request.step.template, message_context(request, channel, recipient)
    )
    path = _message_path(outbox_dir, request)
    if not request.held_out:
        # File first: a row always has its file. A racing loser rewrites the same bytes.
        _write_atomic(path, _file_text(recipient, channel, message))
    row = OutboxRow(
        idempotency_key=request.idempotency_key,
        journey_key=request.journey_key,
        journey_id=request.journey_id,
        step_id=request.step.step_id,
        customer_id=request.customer.customer_id,
        channel=channel,
        fallback_used=fallback_used,
        recipient=recipient,
        subject=message.subject,
        body=message.body,
        status="held_out" if request.held_out else "captured",
        mode="capture",
        path="" if request.held_out else str(path),
    )
    try:
        with session(engine) as db:
            db.add(row)
            db.add(_intervention(request, row))
    except IntegrityError:
        winner = _find(engine, request.idempotency_key)
        if winner is None:
            raise
        return _receipt(winner, duplicate=True)
    return _receipt(row, duplicate=False)


def message_context(request: DeliverRequest, channel: Channel, recipient: str) -> dict[str, Any]:
    """What a template sees: `customer`, `step`, `journey`, `offer` (or None) and `delivery`."""
    return {
        "customer": request.customer.model_dump(mode="json"),
        "step": request.step.model_dump(mode="json"),
        "journey": {
            "journey_id": request.journey_id,
            "strategy": request.strategy,
            "risk_tier": request.risk_tier,
            "churn_probability": request.churn_probability,
            "health_score": request.health_score,
            "risk_factors": [factor.model_dump(mode="json") for factor in request.risk_factors],
        },
        "offer": request.offer.model_dump(mode="json") if request.offer else None,
        "delivery": {
            "channel": channel,
            "recipient": recipient,
            "to_csm": channel in CSM_CHANNELS,
        },
    }


def _find(engine: Engine, idempotency_key: str) -> OutboxRow | None:
    with session(engine) as db:
        query = select(OutboxRow).where(OutboxRow.idempotency_key == idempotency_key)
        return db.exec(query).first()


def _intervention(request: DeliverRequest, row: OutboxRow) -> InterventionRow:
    return InterventionRow(
        journey_key=request.journey_key,
        customer_id=request.customer.customer_id,
        step_id=request.step.step_id,
        action=request.step.action,
        channel=row.channel,
        owner=request.step.owner,
        status=row.status,
        outbox_id=row.id,
        at=row.created_at,
    )


def _receipt(row: OutboxRow, *, duplicate: bool) -> DeliveryReceipt:
    return DeliveryReceipt.model_validate(
        {
            "outbox_id": row.id,
            "idempotency_key": row.idempotency_key,
            "channel": row.channel,
            "recipient": row.recipient,
            "fallback_used": row.fallback_used,
            "duplicate": duplicate,
            "path": row.path,
            "subject": row.subject,
            "held_out": row.status == "held_out",
        }
    )


def _message_path(outbox_dir: Path, request: DeliverRequest) -> Path:
    for field, value in (
        ("journey_id", request.journey_id),
        ("step.step_id", request.step.step_id),
    ):
        if not _SAFE_NAME.match(value):
            raise InvalidInput(f"{field}: {value!r} is not usable as a file name")
    return outbox_dir / request.journey_id / f"{request.step.step_id}.txt"


def _file_text(recipient: str, channel: Channel, message: RenderedMessage) -> str:
    return f"To: {recipient}\nChannel: {channel}\nSubject: {message.subject}\n\n{message.body}"


def _write_atomic(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as file:
            file.write(text)
        os.replace(temp, path)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise
