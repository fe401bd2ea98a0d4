"""The `model_versions` table: every retrain decision, and the champion it leaves in force."""

from __future__ import annotations

from sqlalchemy import Engine
from sqlmodel import col, select

from retention.store.db import session
from retention.store.tables import ModelVersionRow


def record_model_decision(engine: Engine, row: ModelVersionRow) -> ModelVersionRow:
    """Store a decision once: a retried activity gets the row its first attempt wrote."""
    with session(engine) as db:
        found = db.exec(
            select(ModelVersionRow).where(ModelVersionRow.retrain_id == row.retrain_id)
        ).first()
        if found is not None:
            return found
        db.add(row)
        db.flush()
        db.refresh(row)
        return row


def promoted_model(engine: Engine) -> ModelVersionRow | None:
    """The newest promoted challenger: the champion, unless nothing was ever promoted."""
    with session(engine) as db:
        return db.exec(
            select(ModelVersionRow)
            .where(ModelVersionRow.decision == "promoted")
            .order_by(col(ModelVersionRow.id).desc())
            .limit(1)
        ).first()


def model_decisions(engine: Engine) -> list[ModelVersionRow]:
    """Every decision, oldest first."""
    with session(engine) as db:
        return list(db.exec(select(ModelVersionRow).order_by(col(ModelVersionRow.id))).all())
