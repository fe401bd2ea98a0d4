"""A retention offer for one customer, from the rule set's offer policy."""

from __future__ import annotations

import math

from retention.plan import RetentionOffer
from retention.rulebook.schema import DecisionFacts, Offer


def make_offer(rule: Offer, facts: DecisionFacts) -> RetentionOffer:
    """Value from the contract and the churn probability; expiry from the time to churn."""
    contract = facts["annual_contract_value"]
    terms = rule.value
    value = contract * terms.share_of_contract
    if terms.scale_by_probability:
        value *= facts["churn_probability"]
    value = max(terms.minimum, value)
    if terms.maximum is not None:
        value = min(terms.maximum, value)
    value = round_half_up(value / terms.round_to) * terms.round_to
    return RetentionOffer(
        name=rule.name,
        type=rule.type,
        value=value,
        percent_of_contract=round(value / contract * 100, 2) if contract else 0.0,
        duration_months=rule.duration_months,
        conditions=rule.conditions,
        expires_in_days=_expiry_days(rule, facts["time_to_churn_days"]),
    )


def _expiry_days(rule: Offer, time_to_churn_days: int | None) -> int:
    expiry = rule.expiry
    if time_to_churn_days is None:
        return expiry.max_days
    days = round_half_up(time_to_churn_days * expiry.share_of_time_to_churn)
    return min(expiry.max_days, max(expiry.min_days, days))


def round_half_up(x: float) -> int:
    """Rounded as by hand (8.5 → 9), not to the even neighbour as `round` does (8.5 → 8);
    float noise (8.4999999999) is settled first."""
    return math.floor(round(x, 9) + 0.5)
