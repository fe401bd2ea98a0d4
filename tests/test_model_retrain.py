"""The ModelRetrain workflow on the time-skipping server, with the real activities and a
database seeded with generated history: a better challenger is promoted and the running worker
scores the next journey with it; a worse one (trained on shuffled labels) is kept out; too
little history fails the run naming the counts. The `model-retrain` schedule on the dev server:
created once, updated on a worker restart, deleted when turned off."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta
from pathlib import Path
from uuid import uuid4

import pytest
from conftest import RULES_DIR, JourneyWorld
from journey_stories import critical_customer, end_journey, start, until, until_planned
from labelled import labelled_population, train_model_on
from sqlalchemy import Engine
from sqlmodel import col, select
from temporalio.client import Client, WorkflowFailureError
from temporalio.testing import WorkflowEnvironment
from test_end_to_end import ROOT as REPO
from test_end_to_end import _worker_ready
from test_end_to_end import until as eventually
from typer.testing import CliRunner

import starter
from retention.model.champion import ChampionScorer
from retention.model.history import save_history
from retention.model.persist import load_model
from retention.model.retrain import RetrainPolicy
from retention.model.schedule import ensure_retrain_schedule
from retention.model.scorer import load_scorer
from retention.retraining import SCHEDULE_ID, RetrainDecision, RetrainRequest
from retention.rulebook.loader import load_rulebook
from retention.runtime.devserver import free_port, start_dev_server, stop
from retention.runtime.settings import ROOT, get_settings
from retention.runtime.temporal import connect
from retention.store.db import session
from retention.store.model_versions import model_decisions, promoted_model
from retention.store.tables import ChurnPredictionRow
from worker import build_activities, running_worker
from workflows.model_retrain import ModelRetrain

pytestmark = [pytest.mark.database, pytest.mark.temporal, pytest.mark.timeout(600)]

DEFAULT_MODEL = ROOT / "models" / "churn-default"
CUSTOMERS = 1_500
CHECKPOINT = timedelta(hours=73)  # rules/journey.yaml: the first checkpoint is at 72h


@pytest.fixture(scope="module")
def weak_champion(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A model trained on flipped outcomes: worse than anything honest, on AUC and calibration."""
    folder = tmp_path_factory.mktemp("weak") / "churn-weak"
    train_model_on(labelled_population(600, seed=41, labels="flipped"),
                   load_rulebook(RULES_DIR), folder, seed=41)  # fmt: skip
    return folder


@asynccontextmanager
async def _world(
    env: WorkflowEnvironment,
    engine: Engine,
    tmp_path: Path,
    champion: Path,
    history_name: str | None = None,
) -> AsyncIterator[tuple[JourneyWorld, ChampionScorer]]:
    """A worker whose churn model follows promotions; `history_name`: record the histories."""
    scorer = ChampionScorer(engine, load_scorer(champion), check_seconds=0)
    policy = RetrainPolicy(models_root=tmp_path / "models", initial_champion=str(champion))
    activities = build_activities(engine, RULES_DIR, tmp_path / "outbox", scorer=scorer,
                                  retrain=policy)  # fmt: skip
    async with running_worker(env.client, activities) as task_queue:
        world = JourneyWorld(env.client, env, task_queue, engine, tmp_path / "outbox")
        yield world, scorer
        await world.save_histories(history_name)


async def _retrain(world: JourneyWorld) -> RetrainDecision:
    handle = await world.client.start_workflow(
        ModelRetrain.run,
        RetrainRequest(seed=3),
        id=f"model-retrain-{uuid4()}",
        task_queue=world.task_queue,
        execution_timeout=timedelta(minutes=30),
    )
    world.workflows.append(handle)
    return await handle.result()


async def _scored_version(world: JourneyWorld) -> str | None:
    """The model version a new journey records, and its prediction rows agree."""
    handle = await start(world, critical_customer())
    state = await until_planned(world, handle)
    await end_journey(handle)
    assert _recorded_versions(world, handle.id) == {state.model_version}
    return state.model_version


def _recorded_versions(world: JourneyWorld, journey_id: str) -> set[str]:
    with session(world.engine) as db:
        return set(
            db.exec(
                select(ChurnPredictionRow.model_version).where(
                    col(ChurnPredictionRow.journey_id) == journey_id
                )
            ).all()
        )


async def test_a_better_challenger_is_promoted_and_scores_the_next_journey(
    time_skipping_env: WorkflowEnvironment,
    engine: Engine,
    tmp_path: Path,
    weak_champion: Path,
    history_name: str | None,
) -> None:
    save_history(engine, labelled_population(CUSTOMERS, seed=31))
    weak_version = load_model(weak_champion)[1].model_version
    recorded = _world(time_skipping_env, engine, tmp_path, weak_champion, history_name)
    async with recorded as (world, scorer):
        before = await _scored_version(world)
        running = await start(world, critical_customer())
        await until_planned(world, running)

        decision = await _retrain(world)

        after = await _scored_version(world)  # the same worker, no restart
        await world.env.sleep(CHECKPOINT)  # the running journey re-scores at its checkpoint
        rescored = await until(
            world, running, lambda state: state.model_version == decision.version
        )
        await end_journey(running)

    assert before == weak_version
    assert rescored.model_version == decision.version
    assert _recorded_versions(world, running.id) == {weak_version, decision.version}
    assert decision.decision == "promoted", decision.reason
    assert decision.champion_version == weak_version
    assert decision.challenger_auc > decision.champion_auc
    assert decision.challenger_ece <= decision.champion_ece
    assert after == decision.version == scorer.version
    # installed whole under models/<version>/, nothing half-written beside it
    assert [p.name for p in (tmp_path / "models").iterdir()] == [decision.version]
    assert load_model(Path(decision.path))[1].model_version == decision.version
    [row] = model_decisions(engine)
    assert row == promoted_model(engine)
    assert row.card["model_version"] == decision.version
    assert row.champion_card is not None and row.champion_card["model_version"] == weak_version
    assert row.holdout_rows == decision.holdout_rows == CUSTOMERS // 5
    assert row.figures["rows"] == row.champion_figures["rows"] == row.holdout_rows
    assert row.card["rows"] == CUSTOMERS - row.holdout_rows


async def test_a_challenger_trained_on_shuffled_labels_is_kept_out(
    time_skipping_env: WorkflowEnvironment, engine: Engine, tmp_path: Path, history_name: str | None
) -> None:
    save_history(engine, labelled_population(CUSTOMERS, seed=32, labels="shuffled"))
    champion_version = load_model(DEFAULT_MODEL)[1].model_version
    recorded = _world(time_skipping_env, engine, tmp_path, DEFAULT_MODEL, history_name)
    async with recorded as (world, scorer):
        decision = await _retrain(world)
        after = await _scored_version(world)

    assert decision.decision == "kept"
    assert decision.reason.startswith("challenger worse: lower ROC AUC")
    assert decision.champion_version == champion_version == after == scorer.version
    assert promoted_model(engine) is None
    [row] = model_decisions(engine)
    assert (row.version, row.decision) == (decision.version, "kept")
    assert row.champion_card is not None and row.figures["roc_auc"] < 0.65


async def test_too_little_history_fails_the_retrain_naming_the_counts(
    time_skipping_env: WorkflowEnvironment, engine: Engine, tmp_path: Path, history_name: str | None
) -> None:
    save_history(engine, labelled_population(25, seed=33))
    recorded = _world(time_skipping_env, engine, tmp_path, DEFAULT_MODEL, history_name)
    async with recorded as (world, scorer):
        with pytest.raises(WorkflowFailureError) as failed:
            await _retrain(world)

    cause = failed.value.cause.cause  # ActivityError → ApplicationError
    assert cause is not None and "25 labelled customers" in str(cause)
    assert model_decisions(engine) == []
    assert not (tmp_path / "models").exists()


async def test_retrain_now_from_the_cli_prints_the_decision(
    time_skipping_env: WorkflowEnvironment,
    engine: Engine,
    tmp_path: Path,
    weak_champion: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    save_history(engine, labelled_population(CUSTOMERS, seed=34))
    async with _world(time_skipping_env, engine, tmp_path, weak_champion) as (world, _):
        monkeypatch.setenv("RETENTION_TASK_QUEUE", world.task_queue)
        monkeypatch.setenv("RETENTION_HEAVY_TASK_QUEUE", world.task_queue)  # one worker: all
        address = world.client.service_client.config.target_host
        get_settings.cache_clear()
        try:  # the CLI runs its own event loop: give it a thread
            result = await asyncio.to_thread(
                CliRunner().invoke, starter.app, ["--address", address, "model", "retrain", "--now"]
            )
        finally:
            get_settings.cache_clear()

    assert result.exit_code == 0, result.output
    [row] = model_decisions(engine)
    assert f"promoted: challenger {row.version} vs champion {row.champion_version}" in (
        result.stdout.replace("\n", " ")
    )


# ---- the schedule, on the real dev server (the time-skipping server has no schedules) ----------


@pytest.fixture(scope="module")
async def dev_client(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Client]:
    port = free_port()
    folder = tmp_path_factory.mktemp("temporal")
    server = start_dev_server(folder / "temporal.db", port=port, ui_port=free_port())
    try:
        yield await connect(address=f"127.0.0.1:{port}")
    finally:
        stop(server)


def _run_worker(client: Client, tmp_path: Path, every: str) -> str:
    """Start worker.py as an operator does, wait until it polls, stop it; its log."""
    log_path = tmp_path / f"worker-{uuid4().hex}.log"
    env = {
        **os.environ,
        "RETENTION_TEMPORAL_ADDRESS": client.service_client.config.target_host,
        "RETENTION_DATABASE_URL": f"sqlite:///{tmp_path / 'retention.db'}",
        "RETENTION_OUTBOX_DIR": str(tmp_path / "outbox"),
        "RETENTION_TASK_QUEUE": "retrain-worker-test",
        "RETENTION_MODEL_RETRAIN_EVERY": every,
    }
    with log_path.open("wb") as log:
        worker = subprocess.Popen(
            [sys.executable, "worker.py"], cwd=REPO, env=env, stdout=log, stderr=log
        )
    try:
        eventually(lambda: _worker_ready(worker, log_path), "worker.py to poll", seconds=60)
    finally:
        stop(worker)
    return log_path.read_text(errors="replace")


async def test_each_worker_start_sets_the_schedule_up_once(
    dev_client: Client, tmp_path: Path
) -> None:
    await ensure_retrain_schedule(dev_client, "any", None)  # whatever an earlier test left

    first = await asyncio.to_thread(_run_worker, dev_client, tmp_path, "P7D")
    restarted = await asyncio.to_thread(_run_worker, dev_client, tmp_path, "PT12H")
    described = await dev_client.get_schedule_handle(SCHEDULE_ID).describe()
    off = await asyncio.to_thread(_run_worker, dev_client, tmp_path, "off")

    assert "model-retrain schedule created: every 7 days" in first
    assert "model-retrain schedule updated: every 12:00:00" in restarted
    assert [i.every for i in described.schedule.spec.intervals] == [timedelta(hours=12)]
    assert getattr(described.schedule.action, "task_queue", None) == "retrain-worker-test"
    assert "model-retrain schedule deleted (off)" in off


async def test_the_schedule_is_created_once_and_follows_the_setting(dev_client: Client) -> None:
    first = await ensure_retrain_schedule(dev_client, "q1", timedelta(days=7))
    restarted = await ensure_retrain_schedule(dev_client, "q1", timedelta(days=7))
    changed = await ensure_retrain_schedule(dev_client, "q2", timedelta(hours=12))
    described = await dev_client.get_schedule_handle(SCHEDULE_ID).describe()
    listed = [s.id async for s in await dev_client.list_schedules()]

    assert first.startswith("model-retrain schedule created")
    assert restarted.startswith("model-retrain schedule updated")
    assert changed == "model-retrain schedule updated: every 12:00:00"
    assert [i.every for i in described.schedule.spec.intervals] == [timedelta(hours=12)]
    action = described.schedule.action
    assert getattr(action, "workflow", None) == "ModelRetrain"
    assert getattr(action, "task_queue", None) == "q2"
    assert listed.count(SCHEDULE_ID) <= 1  # the list is eventually consistent; never two

    off = await ensure_retrain_schedule(dev_client, "q2", None)
    off_again = await ensure_retrain_schedule(dev_client, "q2", None)

    assert off == "model-retrain schedule deleted (off)"
    assert off_again == "model-retrain schedule off"
