"""The simulation's ground truth: how a customer responds to the interventions delivered.

Untreated, a customer churns at a constant daily hazard λ = −ln(1 − p) / 180, where p is the
generator's true probability of churning within 180 days (`retention.model.generator`), so over
D days they churn with probability 1 − (1 − p)^(D/180).

Treated, every delivered intervention removes a share of the remaining hazard, from the first
daily check after its delivery on, for the rest of the simulation: the hazard on a day is
λ × Π (1 − EFFECTS[action]) over the distinct actions delivered to the customer before that day
began. Delivered means a plan step the journey ran with status done (captured or sent), never a
held-out one, and on a channel that reaches the customer (`internal` work reaches nobody). An
action counts once per customer: a second retention offer in a later journey removes nothing
more. An action not in the table (a campaign message, a newsletter) removes DEFAULT_EFFECT.

Common random numbers: each customer draws one threshold E ~ Exponential(1) (seeded; E = −ln U
for a uniform U) and churns on the first day the cumulative hazard reaches it. Treated and
untreated churn days then differ only by the treatment: untreated, the customer churns on day
⌈E / λ⌉.
"""

from __future__ import annotations

import math
from datetime import datetime

from retention.model.generator import HORIZON_DAYS
from retention.plan import Channel

EFFECTS: dict[str, float] = {
    # a senior person on the account
    "executive_call": 0.20,
    "executive_outreach": 0.15,
    # money on the table
    "retention_offer": 0.20,
    # CSM time with the customer
    "success_plan_review": 0.10,
    "csm_checkin": 0.10,
    "value_review": 0.10,
    "feature_training": 0.08,
    "training_session": 0.06,
    "success_plan": 0.06,
    # automated messages with something of value in them
    "value_demonstration": 0.06,
    "feature_recommendation": 0.05,
    "feature_unlock": 0.05,
    "training_webinar": 0.04,
    "email_campaign": 0.04,
    "personalized_email": 0.04,
    "usage_tips": 0.04,
    "resource_sharing": 0.03,
    "peer_success_story": 0.03,
    "webinar_invite": 0.02,
    "success_story": 0.02,
    # internal work: the customer sees none of it
    "alert_csm": 0.0,
    "escalation_review": 0.0,
}
"""The share of the remaining churn hazard each delivered action removes, once per customer."""

DEFAULT_EFFECT = 0.02
"""Any other delivered action: campaign messages (by template), newsletters."""

NO_EFFECT_CHANNELS: frozenset[Channel] = frozenset({"internal"})


def daily_hazard(probability: float) -> float:
    """λ: the constant daily hazard of churning with `probability` within HORIZON_DAYS."""
    return -math.log1p(-min(probability, 1 - 1e-12)) / HORIZON_DAYS


def untreated_churn(probability: float, days: int) -> float:
    """1 − (1 − p)^(days/180): the chance of churning within `days` without any treatment."""
    return 1 - math.exp(-daily_hazard(probability) * days)


def effect_of(action: str) -> float:
    return EFFECTS.get(action, DEFAULT_EFFECT)


class CustomerResponse:
    """One at-risk customer's hazard, the interventions that reached them, and their churn day.

    `expected_churn` accumulates, day by day while the customer stays, the chance of churning
    that day given what they received so far (1 − e^(−hazard)): its expectation is the chance
    of churning over the days run (the compensator of the churn process), so its average over
    treated customers is their expected churn under the interventions they actually got, with
    no guess about what a customer who left would have received afterwards.
    """

    def __init__(self, probability: float, threshold: float) -> None:
        self.probability = probability
        self.hazard = daily_hazard(probability)
        self.threshold = threshold
        self.delivered: dict[str, datetime] = {}
        self.cumulative = 0.0
        self.expected_churn = 0.0
        self.churned_on: int | None = None

    def deliver(self, action: str, channel: Channel | None, at: datetime) -> None:
        """Note a delivered action (the first delivery of each counts)."""
        if channel in NO_EFFECT_CHANNELS:
            return
        if action not in self.delivered or at < self.delivered[action]:
            self.delivered[action] = at

    def multiplier(self, before: datetime) -> float:
        """The share of the untreated hazard left by the actions delivered before `before`."""
        return math.prod(1 - effect_of(a) for a, at in self.delivered.items() if at <= before)

    def live_day(self, day: int, began: datetime) -> bool:
        """Run day `day` (which began at `began`); True if the customer churns on it."""
        if self.churned_on is not None:
            return False
        today = self.hazard * self.multiplier(began)
        self.expected_churn += -math.expm1(-today)
        self.cumulative += today
        if self.cumulative >= self.threshold:
            self.churned_on = day
        return self.churned_on == day

    @property
    def stays(self) -> bool:
        return self.churned_on is None

    def untreated_churn(self, days: int) -> float:
        return untreated_churn(self.probability, days)
