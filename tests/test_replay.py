"""Every recorded workflow history replays against today's workflow code.

tests/histories/ holds today's set (`make histories`): journeys on every strategy and path, and
the portfolio scan, model retrain, data purge and CRM sync workflows; older sets, kept because
workflows recorded with that code may still be running, stay in dated subfolders. A change that
would break a workflow already running in production fails here (docs/testing.md, "Changing
workflow code safely").
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from conftest import HISTORIES_DIR, RULES_DIR
from temporalio import workflow
from temporalio.api.history.v1 import History
from temporalio.client import WorkflowHistory
from temporalio.worker import Replayer

from retention.rulebook.loader import load_rulebook
from retention.runtime.sandbox import workflow_runner
from retention.runtime.temporal import DATA_CONVERTER
from worker import WORKFLOWS

HISTORIES = sorted(HISTORIES_DIR.rglob("*.json"))
TODAYS = sorted(HISTORIES_DIR.glob("*.json"))
JOURNEY_COMMANDS = {"pause", "resume", "escalate", "cancel"}
# How a journey can end besides the rules' exit events (docs/architecture.md, "Design facts").
JOURNEY_ENDINGS = {"completed", "recovered", "cancelled"}


def _load(path: Path) -> WorkflowHistory:
    return WorkflowHistory.from_json(path.stem, path.read_text())


def _workflow_type(history: WorkflowHistory | History) -> str:
    started = history.events[0].workflow_execution_started_event_attributes
    return str(started.workflow_type.name)


def _decoded(payload: Any) -> Any:
    return DATA_CONVERTER.payload_converter.from_payload(payload)


def test_every_workflow_the_worker_runs_has_histories_recorded_today() -> None:
    recorded = {_workflow_type(_load(path)) for path in TODAYS}
    # the SDK keeps a workflow's registered name on its class only
    runs = {workflow._Definition.must_from_class(w).name for w in WORKFLOWS}

    assert runs - recorded == set(), "record them with `make histories`"


def test_todays_journeys_cover_every_strategy_ending_and_operator_command() -> None:
    journeys = [h for h in map(_load, TODAYS) if _workflow_type(h) == "RetentionJourney"]
    strategies, outcomes, commands, continued = set(), set(), set(), False
    for history in journeys:
        for event in history.events:
            if event.HasField("upsert_workflow_search_attributes_event_attributes"):
                fields = event.upsert_workflow_search_attributes_event_attributes
                if "Strategy" in fields.search_attributes.indexed_fields:
                    strategies.add(_decoded(fields.search_attributes.indexed_fields["Strategy"]))
            elif event.HasField("workflow_execution_update_accepted_event_attributes"):
                accepted = event.workflow_execution_update_accepted_event_attributes
                commands.add(accepted.accepted_request.input.name)
            elif event.HasField("workflow_execution_completed_event_attributes"):
                [result] = event.workflow_execution_completed_event_attributes.result.payloads
                outcomes.add(_decoded(result)["outcome"])
            elif event.HasField("workflow_execution_continued_as_new_event_attributes"):
                continued = True
    rulebook = load_rulebook(RULES_DIR)

    assert {s.name for s in rulebook.strategies} <= strategies
    assert {e.outcome for e in rulebook.journey.exits} | JOURNEY_ENDINGS <= outcomes
    assert commands >= JOURNEY_COMMANDS
    assert continued, "no journey continued as new"


@pytest.mark.parametrize("path", HISTORIES, ids=[f"{p.parent.name}/{p.stem}" for p in HISTORIES])
async def test_history_replays_without_nondeterminism(path: Path) -> None:
    # every workflow registered, in worker.py's runner: each history replays against the class
    # of the type it names
    replayer = Replayer(
        workflows=WORKFLOWS,
        data_converter=DATA_CONVERTER,
        workflow_runner=workflow_runner(DATA_CONVERTER),
    )

    result = await replayer.replay_workflow(_load(path), raise_on_replay_failure=True)

    assert result.replay_failure is None
