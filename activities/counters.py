"""Count what the activities do on the worker's metrics endpoint (named in
retention.runtime.metrics).

Outside an activity (a test calling the method directly) there is no meter and nothing counts.
"""

from __future__ import annotations

from temporalio import activity

from retention.runtime.metrics import Metric


def count(metric: Metric, **labels: str) -> None:
    if activity.in_activity():
        activity.metric_meter().create_counter(metric.name, metric.description).add(1, labels)
