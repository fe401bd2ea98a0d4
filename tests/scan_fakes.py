"""A stand-in `RetentionJourney` for scans of thousands of customers: it only stays running.

Its own module (importing nothing but temporalio) because the workflow sandbox re-imports the
module a workflow is defined in.
"""

from __future__ import annotations

from typing import Any

from temporalio import workflow


@workflow.defn(name="RetentionJourney")
class RunningJourney:
    """Runs until cancelled: what the scan sees of a real journey is that one is running."""

    @workflow.run
    async def run(self, request: Any) -> None:
        await workflow.wait_condition(lambda: False)
