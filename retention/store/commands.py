"""Operator commands a journey accepted, in the audit log: who gave which, why, what the journey
answered and the update's id in its history (`starter.py pause|resume|escalate|cancel --by`;
docs/operators.md)."""

from __future__ import annotations

from pydantic import BaseModel
from sqlalchemy import Engine

from retention.journey_state import CommandResult, journey_id
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
    *,
    update_id: str | None = None,
) -> AuditRow:
    """`update_id`: the update's id in the journey's history, by which the account timeline
    knows the command it reads there is this one."""
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
            **({"update_id": update_id} if update_id else {}),
        },
    )
    with session(engine) as db:
        db.add(row)
    return row
