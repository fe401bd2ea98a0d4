"""The service's own Prometheus metrics, exported beside the Temporal SDK's on the worker's
`/metrics` endpoint (RETENTION_METRICS_ADDRESS). Names and labels in one place: dashboards and
alerts depend on them. Labels stay few-valued (strategies, outcomes, channels, versions)."""

from __future__ import annotations

from typing import NamedTuple


class Metric(NamedTuple):
    name: str
    description: str


JOURNEYS_STARTED = Metric(
    "retention_journeys_started", "Journeys started, by strategy and risk tier at start."
)
JOURNEYS_CLOSED = Metric("retention_journeys_closed", "Journeys closed, by outcome.")
SENDS = Metric(
    "retention_sends", "Delivery attempts by channel and status (sent, captured, failed, ...)."
)
RULE_DECISIONS = Metric("retention_rule_decisions", "Rule decisions by strategy and rules version.")
ASSESSMENTS = Metric(
    "retention_assessments", "Customer assessments by the churn model version that scored them."
)


def outcome_label(outcome: str) -> str:
    """`exited:meeting_booked` → `exited`: the reason is in the journey, not in a label."""
    return outcome.split(":", 1)[0]
