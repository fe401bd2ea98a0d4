"""Every recorded journey history replays against today's workflow code.

A change that would break journeys already running in production fails here. Record fresh
histories with `make histories` after an intended, versioned change (see README).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from temporalio.client import WorkflowHistory
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.worker import Replayer

from workflows.journey import RetentionJourney

HISTORIES = sorted((Path(__file__).parent / "histories").rglob("*.json"))


def test_histories_are_recorded() -> None:
    assert len(HISTORIES) >= 8, "run `make histories` to record journey histories"


@pytest.mark.parametrize("path", HISTORIES, ids=[f"{p.parent.name}/{p.stem}" for p in HISTORIES])
async def test_history_replays_without_nondeterminism(path: Path) -> None:
    history = WorkflowHistory.from_json(f"retention-{path.stem}", path.read_text())
    replayer = Replayer(workflows=[RetentionJourney], data_converter=pydantic_data_converter)

    result = await replayer.replay_workflow(history, raise_on_replay_failure=True)

    assert result.replay_failure is None
