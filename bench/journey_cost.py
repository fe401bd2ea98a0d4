"""What a journey costs in Temporal, per strategy, beside the least its plan needs.

    .venv/bin/python bench/journey_cost.py

Reads the recorded histories of journeys that ran their whole plan (`make histories` records
them from the journey stories): today's in tests/histories/, and the set recorded before the
lean-history patch for comparison. Prints one JSON line; per strategy and set:
- events, history_kib: history events and their size as Temporal counts it (protobuf bytes);
  json_kib: the size of the history exported as compact JSON (`temporal workflow show -o json`);
- actions: billable actions (Temporal Cloud's count): the start, signals, activities scheduled
  and retried, timers, search-attribute upserts, updates and markers (patches);
- minimum: what the plan cannot do without: the start, one activity per step, one re-score per
  checkpoint and the first, one timer per distinct moment it waits for; ratio = actions/minimum.
"""

from __future__ import annotations

import json
import sys
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from temporalio.api.enums.v1 import EventType  # noqa: E402
from temporalio.api.history.v1 import HistoryEvent  # noqa: E402
from temporalio.client import WorkflowHistory  # noqa: E402

from retention.journey_state import JourneyState  # noqa: E402

HISTORIES = ROOT / "tests" / "histories"
BEFORE = HISTORIES / "2026-12-02-before-lean-history"
WHOLE_PLAN = {
    "critical_save": "test_critical_journey_runs_its_whole_plan_over_weeks-sqlite-1.json",
    "proactive_engagement": "test_a_strategy_held_at_every_checkpoint_runs_its_whole_plan-sqlite"
    "-proactive_engagement-1.json",
    "nurture": "test_a_strategy_held_at_every_checkpoint_runs_its_whole_plan-sqlite-nurture-1.json",
}
# One action each (Temporal Cloud pricing); activity retries are counted from attempts below.
BILLED = {
    EventType.EVENT_TYPE_WORKFLOW_EXECUTION_STARTED,
    EventType.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED,
    EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED,
    EventType.EVENT_TYPE_TIMER_STARTED,
    EventType.EVENT_TYPE_UPSERT_WORKFLOW_SEARCH_ATTRIBUTES,
    EventType.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_ACCEPTED,
    EventType.EVENT_TYPE_MARKER_RECORDED,
}


def cost(path: Path) -> dict[str, object]:
    text = path.read_text()
    history = WorkflowHistory.from_json("journey", text)
    events = history.events
    kinds = Counter(e.event_type for e in events)
    retries = sum(
        max(0, e.activity_task_started_event_attributes.attempt - 1)
        for e in events
        if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_STARTED
    )
    actions = sum(kinds[k] for k in BILLED) + retries
    least = minimum(final_state(events[-1]))
    return {
        "events": len(events),
        "history_kib": round(sum(e.ByteSize() for e in events) / 1024, 1),
        "json_kib": round(len(json.dumps(json.loads(text), separators=(",", ":"))) / 1024, 1),
        "activities": kinds[EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED],
        "timers": kinds[EventType.EVENT_TYPE_TIMER_STARTED],
        "upserts": kinds[EventType.EVENT_TYPE_UPSERT_WORKFLOW_SEARCH_ATTRIBUTES],
        "markers": kinds[EventType.EVENT_TYPE_MARKER_RECORDED],
        "actions": actions,
        "minimum": least,
        "ratio": round(actions / least, 2),
    }


def final_state(completed: HistoryEvent) -> JourneyState:
    payload = completed.workflow_execution_completed_event_attributes.result.payloads[0]
    return JourneyState.model_validate_json(payload.data)


def minimum(state: JourneyState) -> int:
    """Start + one activity per step done + a re-score per checkpoint and the first + a timer
    per distinct later moment the journey had to wake at: a step's due time (or the end of its
    hold), a checkpoint, the close."""
    done = [s for s in state.steps if s.status == "done"]
    start = state.started_at.timestamp()
    moments = {s.ready_at.timestamp() for s in done} | {
        start + h * 3600 for h in state.checkpoints_done
    }
    if state.finished_at is not None:
        moments.add(state.finished_at.timestamp())
    waits = {round(m, 3) for m in moments if m > start}
    return 1 + len(done) + 1 + len(state.checkpoints_done) + len(waits)


def main() -> None:
    figures: dict[str, object] = {"bench": "journey_cost"}
    for strategy, name in WHOLE_PLAN.items():
        figures[strategy] = {"today": cost(HISTORIES / name), "before": cost(BEFORE / name)}
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
