"""A critical journey's CSM alerts in Slack, as a user runs it: the Temporal dev server,
worker.py in live mode with only Slack configured (the fake Slack on 127.0.0.1), starter.py;
and once more with the worker SIGKILLed while Slack holds its answer to the first alert."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from fake_slack import TEAM_CHANNEL, FakeSlack
from sqlmodel import col, select
from test_end_to_end import AT_RISK, ROOT, Stack, _worker_ready, until, write_customer

from retention.runtime.devserver import free_port, start_dev_server, stop
from retention.store.db import make_engine, session
from retention.store.tables import OutboxRow

# The killed worker's record activity is retried after its 30 s start-to-close timeout.
pytestmark = [pytest.mark.e2e, pytest.mark.timeout(420)]
START_ALERT = "Critical journey started: Acme Analytics"


@pytest.fixture
def slack_stack(tmp_path: Path, fake_slack: FakeSlack) -> Iterator[Stack]:
    port = free_port()
    server = start_dev_server(tmp_path / "temporal.db", port=port, ui_port=free_port())
    env = {
        **os.environ,
        "RETENTION_TEMPORAL_ADDRESS": f"127.0.0.1:{port}",
        "RETENTION_DATABASE_URL": f"sqlite:///{tmp_path / 'retention.db'}",
        "RETENTION_OUTBOX_DIR": str(tmp_path / "outbox"),
        "RETENTION_MODEL_DIR": "baseline",  # acme-crit is critical_save under baseline-0
        "RETENTION_SLACK_BOT_TOKEN": fake_slack.token,
        "RETENTION_SLACK_CHANNEL": TEAM_CHANNEL,
        "RETENTION_SLACK_BASE_URL": fake_slack.url,
        "RETENTION_UI_URL": "http://temporal-ui.example:8233",
        "RETENTION_METRICS_ADDRESS": "",
        "RETENTION_HEALTH_ADDRESS": "",
    }
    try:
        yield Stack(address=f"127.0.0.1:{port}", env=env, tmp=tmp_path)
    finally:
        fake_slack.release()
        stop(server)


@contextmanager
def worker_running(stack: Stack, name: str) -> Iterator[subprocess.Popen[bytes]]:
    log = stack.tmp / f"{name}.log"
    with log.open("wb") as out:
        worker = subprocess.Popen(
            [sys.executable, "worker.py"], cwd=ROOT, env=stack.env, stdout=out, stderr=out
        )
    try:
        until(lambda: _worker_ready(worker, log), f"{name} to poll", seconds=60)
        assert "CSM alerts: Slack" in log.read_text()
        yield worker
    finally:
        if worker.poll() is None:
            stop(worker)


def both_alerts(fake_slack: FakeSlack) -> list[str] | None:
    headers = sorted(m.blocks[0]["text"]["text"] for m in fake_slack.messages(TEAM_CHANNEL))
    return headers if len(headers) >= 2 else None


def test_a_critical_journey_alerts_the_team_channel_once_for_its_start_and_its_alert_step(
    slack_stack: Stack, fake_slack: FakeSlack
) -> None:
    stack = slack_stack
    with worker_running(stack, "worker"):
        stack.cli("start", str(write_customer(stack, "acme", AT_RISK)), "--time-scale", "1")
        headers = until(lambda: both_alerts(fake_slack), "both alerts in Slack", seconds=180)
        stack.cli("cancel", "acme-crit", "--reason", "test over")

    assert headers == [START_ALERT, "alert csm: Acme Analytics"]
    journey_page = "http://temporal-ui.example:8233/namespaces/default/workflows/"
    assert all(journey_page in m.text for m in fake_slack.messages())
    engine = make_engine(stack.env["RETENTION_DATABASE_URL"])
    try:
        with session(engine) as db:
            rows = db.exec(select(OutboxRow).where(col(OutboxRow.channel) == "slack")).all()
        assert sorted(r.status for r in rows) == ["sent", "sent"]
        assert {r.provider_message_id for r in rows} == {m.ts for m in fake_slack.messages()}
    finally:
        engine.dispose()


def test_a_worker_killed_mid_post_leaves_one_start_alert_which_the_next_worker_adopts(
    slack_stack: Stack, fake_slack: FakeSlack
) -> None:
    stack = slack_stack
    fake_slack.hold_next()  # the first alert is taken, its answer kept back
    with worker_running(stack, "worker-1") as first:
        stack.cli("start", str(write_customer(stack, "acme", AT_RISK)), "--time-scale", "1")
        until(fake_slack.held.is_set, "Slack to take the first alert", seconds=120)
        first.kill()  # SIGKILL: the message is in the channel, the outbox row still `sending`
        first.wait(timeout=30)
    fake_slack.release()

    with worker_running(stack, "worker-2"):
        headers = until(lambda: both_alerts(fake_slack), "both alerts in Slack", seconds=240)
        stack.cli("cancel", "acme-crit", "--reason", "test over")

    assert headers == [START_ALERT, "alert csm: Acme Analytics"]  # the start alert once
    assert len(fake_slack.posts()) == 2  # the retry found the first post in the history
    assert "conversations.history" in [c.method for c in fake_slack.calls]
