"""A journey's decisions, one row each, for the account timeline (docs/operators.md).

The rescore activity writes its decision with its assessment (`records.record_assessment`, one
transaction); the older `decide` activity, which scored in an activity of its own, writes it
here. Either way the activity's attempt key makes a retry record nothing twice."""

from __future__ import annotations

from typing import Literal

from sqlalchemy import Engine

from retention.plan import Decision
from retention.store.db import session
from retention.store.statements import insert_new
from retention.store.tables import DecisionRow, utcnow

DecisionReason = Literal["first_plan", "checkpoint", "escalation"]


def decision_row(
    decision: Decision,
    *,
    customer_id: str,
    journey_id: str,
    journey_key: str | None,
    current: str | None,
    escalate_from: str | None,
    key: str | None,
) -> DecisionRow:
    """The row of `decision`, asked by a journey on strategy `current` (None before its first)."""
    generation = decision.plan.generation
    return DecisionRow(
        customer_id=customer_id,
        journey_id=journey_id,
        journey_key=journey_key,
        generation=generation,
        from_strategy=escalate_from or current,
        to_strategy=decision.strategy,
        fired_rules=list(decision.fired_rules),
        rules_version=decision.rules_version,
        reason=_reason(generation, escalate_from),
        decided_at=utcnow(),
        decision_key=key,
    )


def _reason(generation: int, escalate_from: str | None) -> DecisionReason:
    # by generation, not the journey's strategy: histories from before the journey context
    # travelled decode with none at every re-score
    if escalate_from is not None:
        return "escalation"
    return "first_plan" if generation == 1 else "checkpoint"


def record_decision(engine: Engine, row: DecisionRow) -> bool:
    """Write the row unless one under its `decision_key` is there; False when it was."""
    with session(engine) as db:
        return insert_new(db, row, "decision_key")
