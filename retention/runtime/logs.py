"""Log lines an operator can search: every line carries the journey and customer it is about.

Temporal's workflow and activity loggers attach the workflow id to each record; a journey's id
is `retention-{customer_id}`, so both ids come from it. `text` is logfmt-like, `json` one object
per line (RETENTION_LOG_FORMAT).
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from typing import Any, Literal

from retention.journey_state import journey_id

LogFormat = Literal["text", "json"]
JOURNEY_PREFIX = journey_id("")


def configure_logging(fmt: LogFormat = "text", level: int = logging.INFO) -> None:
    handler = logging.StreamHandler()
    handler.setFormatter(JsonLines() if fmt == "json" else KeyValueLines())
    logging.basicConfig(level=level, handlers=[handler], force=True)


def journey_fields(record: logging.LogRecord) -> dict[str, str]:
    """journey_id, customer_id, workflow type/activity when the record is about a workflow."""
    about: dict[str, Any] = (
        getattr(record, "temporal_workflow", None) or getattr(record, "temporal_activity", None)
    ) or {}
    fields: dict[str, str] = {}
    workflow_id = about.get("workflow_id")
    if workflow_id:
        fields["workflow_id"] = str(workflow_id)
        if str(workflow_id).startswith(JOURNEY_PREFIX):
            fields["journey_id"] = str(workflow_id)
            fields["customer_id"] = str(workflow_id)[len(JOURNEY_PREFIX) :]
    if about.get("activity_type"):
        fields["activity"] = str(about["activity_type"])
    return fields


def _base(record: logging.LogRecord) -> dict[str, Any]:
    return {
        "at": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
        "level": record.levelname.lower(),
        "logger": record.name,
        "message": record.getMessage(),
        **journey_fields(record),
    }


class JsonLines(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line = _base(record)
        if record.exc_info:
            line["error"] = self.formatException(record.exc_info)
        return json.dumps(line, default=str)


class KeyValueLines(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line = _base(record)
        head = f"{line.pop('at')} {line.pop('level').upper():<7} {line.pop('logger')}: "
        text = head + line.pop("message")
        text += "".join(f" {key}={value}" for key, value in line.items())
        if record.exc_info:
            text += "\n" + self.formatException(record.exc_info)
        return text
