"""Log lines name the journey and customer they are about, in text and in JSON."""

from __future__ import annotations

import json
import logging
import sys

import pytest

from retention.runtime.logs import JsonLines, KeyValueLines, journey_fields


def _record(message: str, **extra: object) -> logging.LogRecord:
    record = logging.LogRecord(
        "workflows.retention_journey", logging.INFO, __file__, 1, message, (), None
    )
    record.__dict__.update(extra)
    return record


ABOUT_A_JOURNEY = {"temporal_workflow": {"workflow_id": "retention-acme-1", "run_id": "r"}}
ABOUT_AN_ACTIVITY = {
    "temporal_activity": {"workflow_id": "retention-acme-1", "activity_type": "deliver"}
}


def test_a_workflow_line_carries_the_journey_and_customer_as_json_fields() -> None:
    line = json.loads(JsonLines().format(_record("journey closed: saved", **ABOUT_A_JOURNEY)))

    assert line["message"] == "journey closed: saved"
    assert (line["journey_id"], line["customer_id"]) == ("retention-acme-1", "acme-1")
    assert line["level"] == "info" and line["at"].endswith("+00:00")


def test_an_activity_line_names_its_activity_in_text() -> None:
    text = KeyValueLines().format(_record("executive_call sent via email", **ABOUT_AN_ACTIVITY))

    assert text.endswith(
        "workflows.retention_journey: executive_call sent via email workflow_id=retention-acme-1 "
        "journey_id=retention-acme-1 customer_id=acme-1 activity=deliver"
    )


@pytest.mark.parametrize("extra", [{}, {"temporal_workflow": {"workflow_id": "portfolio-scan"}}])
def test_a_line_about_no_journey_has_no_customer(extra: dict[str, object]) -> None:
    assert "customer_id" not in journey_fields(_record("worker polling", **extra))


def test_an_error_keeps_its_traceback_in_json() -> None:
    try:
        raise ValueError("boom")
    except ValueError:
        record = _record("failed", **ABOUT_A_JOURNEY)
        record.exc_info = sys.exc_info()

    assert "ValueError: boom" in json.loads(JsonLines().format(record))["error"]
