"""The journeys benchmark's baseline: a workflow that does nothing but what a journey's
orchestration costs Temporal up to its first intervention — the same number of activities (one
after another, each doing nothing) and timers. Importable by the workflow sandbox (no I/O).

The last activity notes its workflow id in `REACHED` (this process's memory): the benchmark
stops a no-op's clock there, as it stops a journey's at its `deliver` activity's outbox row."""

from __future__ import annotations

from datetime import timedelta

from temporalio import activity, workflow

with workflow.unsafe.imports_passed_through():
    from noop_models import NoopDone, NoopShape, NoopStep

NOOP_TIMEOUT = timedelta(seconds=60)
NOOP_TIMER = timedelta(milliseconds=1)  # the shortest timer Temporal keeps

REACHED: set[str] = set()  # workflow ids whose last activity ran (activities only, not workflows)


@activity.defn(name="bench_noop")
def noop_step(step: NoopStep) -> NoopStep:
    """Takes and returns a small model, as every journey activity does, and does no work but
    the benchmark's note."""
    if step.last:
        REACHED.add(step.workflow_id)
    return step


@workflow.defn(name="BenchNoop")
class NoopJourney:
    @workflow.run
    async def run(self, shape: NoopShape) -> NoopDone:
        for _ in range(shape.timers):
            await workflow.sleep(NOOP_TIMER)
        workflow_id = workflow.info().workflow_id
        for i in range(shape.activities):
            step = NoopStep(workflow_id=workflow_id, last=i == shape.activities - 1)
            await workflow.execute_activity(noop_step, step, start_to_close_timeout=NOOP_TIMEOUT)
        return NoopDone(activities=shape.activities, timers=shape.timers)
