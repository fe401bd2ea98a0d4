"""Deliver one plan step through the outbox (capture mode): exactly once per journey step."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import Engine
from temporalio import activity
from temporalio.exceptions import ApplicationError

from retention.delivery.outbox import DeliverRequest, DeliveryReceipt, deliver_captured
from retention.errors import InvalidInput


class DeliverActivities:
    def __init__(self, engine: Engine, outbox_dir: Path, templates_dir: Path) -> None:
        self._engine = engine
        self._outbox_dir = outbox_dir
        self._templates_dir = templates_dir

    @activity.defn(name="deliver")
    def deliver(self, request: DeliverRequest) -> DeliveryReceipt:
        try:
            return deliver_captured(self._engine, self._outbox_dir, self._templates_dir, request)
        except InvalidInput as exc:
            raise ApplicationError(str(exc), type="InvalidInput", non_retryable=True) from exc
