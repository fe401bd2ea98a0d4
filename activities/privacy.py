"""Data protection's I/O: delete what is older than the settings keep."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from pydantic import BaseModel, Field
from sqlalchemy import Engine
from temporalio import activity

from retention.store.purge import Purge, RetentionPeriods, purge_expired


class PurgeRequest(BaseModel):
    dry_run: bool = Field(default=False, description="count what is due, delete nothing")


class PrivacyActivities:
    def __init__(self, engine: Engine, outbox_dir: Path, periods: RetentionPeriods) -> None:
        self._engine = engine
        self._outbox_dir = outbox_dir
        self._periods = periods

    @activity.defn(name="purge_expired")
    def purge(self, request: PurgeRequest) -> Purge:
        return purge_expired(
            self._engine, self._outbox_dir, self._periods, datetime.now(UTC), request.dry_run
        )
