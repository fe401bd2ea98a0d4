"""A journey scored by the shipped churn model (the worker's default) records its version."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from conftest import RULES_DIR
from journey_stories import critical_customer, end_journey, start, until_planned
from sqlalchemy import Engine
from sqlmodel import select

from retention.model.persist import load_model
from retention.model.scorer import load_scorer
from retention.runtime.settings import ROOT
from retention.store.db import session
from retention.store.tables import ChurnPredictionRow
from worker import build_activities

pytestmark = pytest.mark.database

DEFAULT_MODEL = ROOT / "models" / "churn-default"


@pytest.fixture
def journey_activities(engine: Engine, tmp_path: Path) -> list[Callable[..., Any]]:
    return build_activities(
        engine, RULES_DIR, tmp_path / "outbox", scorer=load_scorer(DEFAULT_MODEL)
    )


async def test_the_journey_records_the_shipped_models_version(world: Any) -> None:
    _, card = load_model(DEFAULT_MODEL)
    handle = await start(world, critical_customer())

    state = await until_planned(world, handle)

    assert state.model_version == card.model_version
    assert state.probability_source == "model" and state.churn_probability is not None
    with session(world.engine) as db:
        rows = db.exec(select(ChurnPredictionRow)).all()
    assert {row.model_version for row in rows} == {card.model_version}
    await end_journey(handle)
