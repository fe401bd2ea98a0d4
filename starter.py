"""The upstream/operator CLI: start journeys, send events, watch, list and steer them.

    python starter.py start examples/customers/acme.json --time-scale 30000
    python starter.py event cust-001 meeting_booked
    python starter.py show cust-001
    python starter.py list --tier critical
    python starter.py cancel cust-001 --reason "customer asked for no contact"
    python starter.py suppress cust-001 --channel email --reason "asked by phone"
    python starter.py model generate --customers 100000 --seed 1 --out var/generated.parquet

Each command group lives in `cli/`; the Temporal calls themselves live in
`retention.runtime.operations` (shared with `make run`).
"""

from __future__ import annotations

import os
import sys

import cli.customers
import cli.journey_commands
import cli.model
import cli.model_retrain
import cli.privacy
import cli.report
import cli.rules
import cli.scan
import cli.simulate
import cli.suppressions
import cli.tasks
import cli.timeline  # noqa: F401 - importing a command module registers its commands
from cli.app import app

__all__ = ["app", "main"]


def main() -> None:
    """Run the CLI, then leave without interpreter teardown.

    A short-lived Temporal client process can abort in teardown ("PyGILState_Release ...
    must be current", temporalio/sdk-python#300), so flush and `os._exit` with the CLI's code.
    """
    code = 0
    try:
        app()
    except SystemExit as done:
        if isinstance(done.code, str):
            print(done.code, file=sys.stderr)
        code = done.code if isinstance(done.code, int) else (0 if done.code is None else 1)
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


if __name__ == "__main__":
    main()
