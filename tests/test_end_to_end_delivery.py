"""Exactly once across a worker killed mid-send, as a user runs it: the Temporal dev server,
worker.py in live mode against the fake SendGrid on 127.0.0.1, starter.py.

The fake takes the first email and holds its answer; worker.py is SIGKILLed while it waits,
so the provider has the message and the outbox still says `sending`. A new worker.py picks up
the activity's retry, posts the message again with the same idempotency key, and the step ends
with one message: the provider recognised the key (SendGrid itself would not; see
retention/delivery/live.py).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fake_providers import FakeSendGrid
from sqlalchemy import Engine
from sqlmodel import col, select
from test_end_to_end import ROOT, WAVERING, Stack, _worker_ready, until, write_customer

from retention.runtime.devserver import free_port, start_dev_server, stop
from retention.store.db import make_engine, session
from retention.store.tables import DeliveryAttemptRow, OutboxRow

# The killed worker's activity is retried only after the deliver activity's start-to-close
# timeout (60 s): the budget allows for that on a loaded machine.
pytestmark = [pytest.mark.e2e, pytest.mark.timeout(420)]


@pytest.fixture
def live_stack(tmp_path: Path, fake_sendgrid: FakeSendGrid) -> Iterator[Stack]:
    port = free_port()
    server = start_dev_server(tmp_path / "temporal.db", port=port, ui_port=free_port())
    env = {
        **os.environ,
        "RETENTION_TEMPORAL_ADDRESS": f"127.0.0.1:{port}",
        "RETENTION_DATABASE_URL": f"sqlite:///{tmp_path / 'retention.db'}",
        "RETENTION_OUTBOX_DIR": str(tmp_path / "outbox"),
        "RETENTION_MODEL_DIR": "baseline",  # the nurture strategy of WAVERING, as in e2e
        "RETENTION_SENDGRID_API_KEY": fake_sendgrid.api_key,
        "RETENTION_SENDGRID_BASE_URL": fake_sendgrid.url,
        "RETENTION_EMAIL_FROM": "success@ourapp.example",
        "RETENTION_METRICS_ADDRESS": "",  # no endpoint: nothing to collide with other tests
    }
    try:
        yield Stack(address=f"127.0.0.1:{port}", env=env, tmp=tmp_path)
    finally:
        fake_sendgrid.release()
        stop(server)


def start_worker(stack: Stack, name: str) -> subprocess.Popen[bytes]:
    log = stack.tmp / f"{name}.log"
    with log.open("wb") as out:
        worker = subprocess.Popen(
            [sys.executable, "worker.py"], cwd=ROOT, env=stack.env, stdout=out, stderr=out
        )
    until(lambda: _worker_ready(worker, log), f"{name} to poll", seconds=60)
    assert "delivery mode live: email via sendgrid" in log.read_text()
    return worker


def stop_running(*workers: subprocess.Popen[bytes] | None) -> None:
    for worker in workers:
        if worker is not None and worker.poll() is None:
            stop(worker)


def outbox_row(engine: Engine, key: str) -> OutboxRow:
    with session(engine) as db:
        return db.exec(select(OutboxRow).where(OutboxRow.idempotency_key == key)).one()


def attempts(engine: Engine, key: str) -> list[DeliveryAttemptRow]:
    query = select(DeliveryAttemptRow).where(col(DeliveryAttemptRow.idempotency_key) == key)
    with session(engine) as db:
        return list(db.exec(query).all())


def settled_rows(engine: Engine) -> list[OutboxRow] | None:
    """The outbox's sent rows, once no send is still in flight."""
    with session(engine) as db:
        rows = db.exec(select(OutboxRow)).all()
    if any(row.status == "sending" for row in rows):
        return None
    return [row for row in rows if row.status == "sent"]


def step_with_key(state: dict[str, Any], key: str) -> dict[str, Any]:
    step_id = key.removeprefix(f"{state['journey_key']}:")
    return next(s for s in state["steps"] if s["step"]["step_id"] == step_id)


def sent_state(stack: Stack, key: str) -> dict[str, Any] | None:
    """The journey's state once the step with `key` is done."""
    state = stack.state("globex-nur")
    return state if step_with_key(state, key)["status"] == "done" else None


def test_a_worker_killed_mid_send_delivers_the_email_once(
    live_stack: Stack, fake_sendgrid: FakeSendGrid
) -> None:
    stack, engine = live_stack, make_engine(live_stack.env["RETENTION_DATABASE_URL"])
    fake_sendgrid.hold_next()
    first = start_worker(stack, "worker-1")
    second = None
    try:
        stack.cli("start", str(write_customer(stack, "globex", WAVERING)), "--time-scale", "1")
        until(fake_sendgrid.held.is_set, "SendGrid to take the first email", seconds=120)
        [key] = fake_sendgrid.keys_received()
        assert key is not None

        first.kill()  # SIGKILL: no cleanup, no answer recorded
        first.wait(timeout=30)
        fake_sendgrid.release()

        # killed between the provider's receipt and the outbox update
        assert outbox_row(engine, key).status == "sending" and attempts(engine, key) == []
        second = start_worker(stack, "worker-2")
        state = until(lambda: sent_state(stack, key), "the retried step recorded as sent", 300)
        step, row = step_with_key(state, key), outbox_row(engine, key)
        assert fake_sendgrid.requests_for(key) == 2  # the retry reused the key...
        message_id = fake_sendgrid.messages[key]  # ...so the provider made one message
        assert (row.status, row.provider, row.provider_message_id) == (
            "sent",
            "sendgrid",
            message_id,
        )
        assert (step["delivery_mode"], step["provider_message_id"]) == ("live", message_id)
        [attempt] = attempts(engine, key)  # the killed worker's call was never recorded
        assert (attempt.outcome, attempt.provider_message_id) == ("delivered", message_id)
        # every message the provider made is one sent step: nothing was delivered twice. The
        # re-engagement campaign's first email is due at once too: wait for it to settle
        sent = until(lambda: settled_rows(engine), "every email of the day sent", 120)
        assert fake_sendgrid.message_count == len(sent) == len({r.idempotency_key for r in sent})
        stack.cli("cancel", "globex-nur", "--reason", "test over")
    finally:
        engine.dispose()
        stop_running(first, second)


def health(address: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(f"http://{address}/health", timeout=5) as answer:
            return answer.status, json.loads(answer.read())["status"]
    except urllib.error.HTTPError as refused:
        return refused.code, json.loads(refused.read())["status"]


def test_a_worker_stopped_mid_send_finishes_the_send_before_it_exits(
    live_stack: Stack, fake_sendgrid: FakeSendGrid
) -> None:
    stack, engine = live_stack, make_engine(live_stack.env["RETENTION_DATABASE_URL"])
    probe = f"127.0.0.1:{free_port()}"
    stack.env["RETENTION_HEALTH_ADDRESS"] = probe
    fake_sendgrid.hold_next()
    first = start_worker(stack, "worker-1")
    second = None
    try:
        until(lambda: health(probe) == (200, "ready"), "the worker to say it is ready")
        stack.cli("start", str(write_customer(stack, "globex", WAVERING)), "--time-scale", "1")
        until(fake_sendgrid.held.is_set, "SendGrid to take the first email", seconds=120)
        [key] = fake_sendgrid.keys_received()

        first.send_signal(signal.SIGTERM)  # as an orchestrator stops it
        until(lambda: health(probe) == (503, "draining"), "the worker to say it is draining")
        fake_sendgrid.release()
        assert first.wait(timeout=60) == 0

        # the send finished and Temporal heard so: a new worker has nothing to retry
        second = start_worker(stack, "worker-2")
        state = until(lambda: sent_state(stack, key), "the step recorded as sent", 120)
        assert step_with_key(state, key)["provider_message_id"] == fake_sendgrid.messages[key]
        assert fake_sendgrid.requests_for(key) == 1 and len(attempts(engine, key)) == 1
        assert "draining: no new work" in (stack.tmp / "worker-1.log").read_text()
        stack.cli("cancel", "globex-nur", "--reason", "test over")
    finally:
        engine.dispose()
        stop_running(first, second)
