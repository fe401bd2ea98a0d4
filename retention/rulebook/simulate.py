"""`rules simulate`: what a rule change would do to a population, before it goes live."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime

from pydantic import BaseModel

from retention.customer import CustomerSnapshot
from retention.health import score_health
from retention.risk import baseline_prediction
from retention.rulebook.decide import decide, decision_facts
from retention.rulebook.loader import Rulebook


class CustomerChange(BaseModel):
    customer_id: str
    churn_probability: float
    before: str
    after: str
    severity_before: str
    severity_after: str


class Simulation(BaseModel):
    before_version: str
    after_version: str
    customers: int
    moves: dict[str, dict[str, int]]  # strategy before → strategy after → customers
    changed: list[CustomerChange]


def simulate(before: Rulebook, after: Rulebook, customers: list[CustomerSnapshot]) -> Simulation:
    """Decide every customer under both rule sets (same assessment) and compare."""
    now = datetime.now(UTC)
    moves: Counter[tuple[str, str]] = Counter()
    changed = []
    for customer in customers:
        health = score_health(customer, now)
        facts = decision_facts(customer, health, baseline_prediction(customer, health))
        old, new = decide(before, facts), decide(after, facts)
        moves[(old.strategy, new.strategy)] += 1
        if (old.strategy, old.severity_tier) != (new.strategy, new.severity_tier):
            changed.append(
                CustomerChange(
                    customer_id=customer.customer_id,
                    churn_probability=facts.churn_probability,
                    before=old.strategy,
                    after=new.strategy,
                    severity_before=old.severity_tier,
                    severity_after=new.severity_tier,
                )
            )
    table: dict[str, dict[str, int]] = {}
    for (old_strategy, new_strategy), count in sorted(moves.items()):
        table.setdefault(old_strategy, {})[new_strategy] = count
    return Simulation(
        before_version=before.version,
        after_version=after.version,
        customers=len(customers),
        moves=table,
        changed=changed,
    )
