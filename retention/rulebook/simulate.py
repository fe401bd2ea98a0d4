"""`rules simulate`: what a rule change would do to a population, before it goes live."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime

from pydantic import BaseModel, Field

from retention.customer import CustomerSnapshot
from retention.rulebook.decide import decide, decision_facts
from retention.rulebook.loader import Rulebook
from retention.rulebook.schema import DecisionFacts
from retention.scoring.assessment import ChurnScorer, assess_customer


class CustomerChange(BaseModel):
    customer_id: str
    churn_probability: float = Field(description="under the new rule set")
    churn_probability_before: float
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


def assessed_facts(
    customer: CustomerSnapshot, rulebook: Rulebook, at: datetime, scorer: ChurnScorer | None
) -> DecisionFacts:
    """The customer scored under one rule set's own scoring files, as facts for its rules."""
    return decision_facts(assess_customer(customer, rulebook, at, scorer=scorer))


def simulate(
    before: Rulebook,
    after: Rulebook,
    customers: list[CustomerSnapshot],
    scorer: ChurnScorer | None = None,
) -> Simulation:
    """Score and decide every customer under each rule set, and compare.

    Each side scores with its own scoring.yaml, so a changed weight or risk threshold shows too.
    """
    now = datetime.now(UTC)
    moves: Counter[tuple[str, str]] = Counter()
    changed = []
    for customer in customers:
        old_facts = assessed_facts(customer, before, now, scorer)
        new_facts = assessed_facts(customer, after, now, scorer)
        old, new = decide(before, old_facts), decide(after, new_facts)
        moves[(old.strategy, new.strategy)] += 1
        if (old.strategy, old.severity_tier) != (new.strategy, new.severity_tier):
            changed.append(
                CustomerChange(
                    customer_id=customer.customer_id,
                    churn_probability=new_facts["churn_probability"],
                    churn_probability_before=old_facts["churn_probability"],
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
