"""The signal-cost benchmark's baseline: a workflow that only counts `customer_event` signals.

Its handler takes the same untyped payload as the journey's (the SDK decodes each one the same
way) and does nothing else, so replaying it measures what a signal costs the SDK alone.
Importable by the workflow sandbox (no I/O)."""

from __future__ import annotations

from typing import Any

from temporalio import workflow


@workflow.defn(name="BenchSignalSink")
class SignalSink:
    def __init__(self) -> None:
        self._heard = 0

    @workflow.signal(name="customer_event")
    def customer_event(self, _raw: Any) -> None:
        self._heard += 1

    @workflow.run
    async def run(self, until: int) -> int:
        await workflow.wait_condition(lambda: self._heard >= until)
        return self._heard
