"""Operator commands a journey accepted, in the audit log: who gave which, why, and what the
journey answered (`starter.py pause|resume|escalate|cancel --by`; docs/operators.md)."""

from __future__ import annotations

from pydantic import BaseModel
from sqlalchemy import Engine

from retention.journey import CommandResult, journey_id
from retention.store.db import session
from retention.store.tables import AuditRow

OPERATOR = "operator:"  # an actor who is a person at the CLI: operator:<name>


def record_command(
    engine: Engine,
    customer_id: str,
    command: str,
    by: str,
    request: BaseModel,
    answer: CommandResult,
) -> AuditRow:
    row = AuditRow(
        actor=f"{OPERATOR}{by}",
        action=command,
        journey_id=journey_id(customer_id),
        customer_id=customer_id,
        detail={
            **request.model_dump(mode="json"),  # its reason (resume: its note)
            "answer": answer.message,
            "stage": answer.stage,
            "strategy": answer.strategy,
        },
    )
    with session(engine) as db:
        db.add(row)
    return row
