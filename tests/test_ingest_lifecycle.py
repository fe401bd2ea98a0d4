"""The ingest service as an orchestrator runs it: several instances on one PostgreSQL inbox,
one SIGKILLed mid-forward, and still every event reaches its journey once; `/health` at
RETENTION_INGEST_HEALTH_ADDRESS, and the drain on SIGTERM or SIGINT, also once the Temporal
server has gone away. Each a subprocess: the dev server, worker.py, `python -m retention.ingest`.
"""

from __future__ import annotations

import asyncio
import http.client
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from uuid import uuid4

import pytest
from factories import make_customer
from sqlalchemy import Engine, create_engine, text
from temporalio.client import Client
from test_end_to_end import ROOT, WAVERING_USAGE, until
from test_end_to_end_delivery import health
from test_ingest_service import _spawn
from test_worker_lifecycle import spawn, stack
from webhooks import Post, generic, post_all, prepare

from retention.ingest import inbox
from retention.ingest.sources import load_sources
from retention.journey_state import JourneyOptions
from retention.runtime.devserver import free_port, stop
from retention.runtime.operations import journey_state, start_journey
from retention.runtime.temporal import connect
from retention.store.db import make_engine
from retention.store.tables import InboxRow

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]

SECRET = "gen-secret-lifecycle"
WAIT = 150  # seconds: generous, the machine is shared; no test asserts a duration
LEASE_S = 3  # a killed instance's claims are taken again after this, not two minutes
DRAIN_S = 3
SOURCES = load_sources(ROOT / "rules")  # how senders sign: the secret is the test's


@pytest.fixture
def rules(tmp_path: Path) -> Path:
    """The shipped rules, logins coalesced over 1 s rather than 60 (a test waits seconds)."""
    copy = Path(shutil.copytree(ROOT / "rules", tmp_path / "rules"))
    sources = copy / "sources.yaml"
    shipped = sources.read_text()
    sources.write_text(shipped.replace("login: {coalesce: 60s}", "login: {coalesce: 1s}"))
    return copy


@pytest.fixture
def postgresql_url() -> Iterator[str]:
    """A PostgreSQL schema of its own, as a URL every process can be given."""
    url = os.environ.get("RETENTION_TEST_DATABASE_URL")
    if not url:
        pytest.skip("several ingest services share a PostgreSQL inbox: RETENTION_TEST_DATABASE_URL")
    schema = f"t_{uuid4().hex}"
    admin = create_engine(url)
    with admin.begin() as connection:
        connection.execute(text(f'CREATE SCHEMA "{schema}"'))
    try:
        yield f"{url}?options=-csearch_path%3D{schema}"
    finally:
        with admin.begin() as connection:
            connection.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


class Service:
    """One `python -m retention.ingest` on ports of its own."""

    def __init__(self, env: dict[str, str], rules: Path, log: Path, **settings: str) -> None:
        self.port, self.probe, self.log = free_port(), f"127.0.0.1:{free_port()}", log
        self.env = {
            **env,
            "RETENTION_RULES_DIR": str(rules),
            "RETENTION_INGEST_SECRET_GENERIC": SECRET,
            "RETENTION_INGEST_HEALTH_ADDRESS": self.probe,
            "RETENTION_INGEST_CLAIM_LEASE_SECONDS": str(LEASE_S),
            "RETENTION_INGEST_DRAIN_SECONDS": str(DRAIN_S),
            **settings,
        }
        command = [sys.executable, "-m", "retention.ingest", "--port", str(self.port)]
        self.process = _spawn(command, self.env, log)

    def ready(self) -> bool:
        if self.process.poll() is not None:
            raise AssertionError(f"ingest service exited:\n{self.log.read_text()}")
        try:
            return health(self.probe) == (200, "ready")
        except OSError:
            return False

    @property
    def forwarder(self) -> str:
        """The name its forwarder claims rows under (its log says)."""
        found = re.search(r"(forwarder-[0-9a-f]+) forwarding", self.log.read_text())
        assert found, self.log.read_text()
        return found.group(1)

    def post(self, post: Post) -> tuple[int, dict[str, object], str | None]:
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        try:
            connection.request("POST", f"/events/{post.source}", post.body, post.headers)
            answer = connection.getresponse()
            return answer.status, json.loads(answer.read()), answer.getheader("Retry-After")
        finally:
            connection.close()

    def stop(self) -> None:
        stop(self.process)


def webhook(customer_id: str, n: int, kind: str = "ticket_message") -> Post:
    payload = generic(f"{customer_id}-{n}", customer_id, kind, n=n)
    return prepare(SOURCES, {"generic": SECRET}, "generic", payload)


def waiting(engine: Engine, claimed_by: str | None = None) -> list[InboxRow]:
    rows = [r for r in inbox.rows(engine) if r.status in inbox.WAITING]
    return [r for r in rows if claimed_by is None or r.claimed_by == claimed_by]


# ---- several instances -------------------------------------------------------------------


async def test_two_ingest_services_forward_every_event_once_when_one_is_killed(
    tmp_path: Path, rules: Path, postgresql_url: str
) -> None:
    server, env = stack(tmp_path, RETENTION_DATABASE_URL=postgresql_url)
    engine = make_engine(postgresql_url)  # migrated here: the processes start on one schema
    services: list[Service] = []
    worker = spawn(env, tmp_path / "worker.log", "all")
    try:
        client = await connect(address=env["RETENTION_TEMPORAL_ADDRESS"])
        customers = [f"scale-{n:02}" for n in range(24)]
        for customer_id in customers:
            snapshot = make_customer(profile={"customer_id": customer_id}, **WAVERING_USAGE)
            await start_journey(client, snapshot, None, JourneyOptions())
        for customer_id in customers:  # decided: every event from now on is counted at once
            await decided(client, customer_id)
        # a slow pace, so the one killed is sure to hold claims it has not forwarded yet
        for name in ("a", "b"):
            log = tmp_path / f"ingest-{name}.log"
            services.append(Service(env, rules, log, RETENTION_INGEST_FORWARD_RATE="40"))
        for service in services:
            until(service.ready, "both ingest services to be ready", seconds=WAIT)
        killed, survivor = services
        posts = [
            webhook(c, n, "login" if n % 5 == 0 else "ticket_message")
            for n in range(50)
            for c in customers
        ]

        with ThreadPoolExecutor(max_workers=2) as senders:
            answered = senders.map(
                lambda s, half: post_all(s.port, half, 8), services, [posts[0::2], posts[1::2]]
            )
            statuses = [status for half in answered for status in half]
        assert Counter(statuses) == {202: len(posts)}
        until(lambda: waiting(engine, killed.forwarder), "the first service to hold claims")
        killed.process.send_signal(signal.SIGKILL)
        killed.process.wait()
        held = waiting(engine, killed.forwarder)

        until(lambda: not waiting(engine), "the survivor to forward the rest", seconds=WAIT)
        rows = inbox.rows(engine)
        assert len(rows) == len(posts) and {r.status for r in rows} == {"forwarded"}
        taken_again = [r for r in rows if r.id in {h.id for h in held}]
        assert held and all(r.attempts >= 2 for r in taken_again)  # after the lease, by B
        for customer_id in customers:
            state = await journey_state(client, customer_id)
            mine = Counter(str(r.event_type) for r in rows if r.customer_id == customer_id)
            counted = {t: tally.count for t, tally in state.events.tallies.items()}
            assert counted == dict(mine), customer_id  # none lost, none twice
            assert state.events.rejected == 0
        assert survivor.process.poll() is None
    finally:
        for service in services:
            service.stop()
        stop(worker)
        stop(server)
        engine.dispose()


async def decided(client: Client, customer_id: str) -> None:
    deadline = time.monotonic() + WAIT
    while (await journey_state(client, customer_id)).strategy is None:
        assert time.monotonic() < deadline, f"{customer_id}'s journey never decided"
        await asyncio.sleep(0.5)


# ---- stopping one ------------------------------------------------------------------------


def test_a_stopped_ingest_service_says_draining_refuses_webhooks_and_exits_0(
    tmp_path: Path, rules: Path
) -> None:
    server, env = stack(tmp_path)
    engine = make_engine(env["RETENTION_DATABASE_URL"])
    # two signals a second: a backlog of unknown customers keeps forwards in flight
    service = Service(env, rules, tmp_path / "ingest.log", RETENTION_INGEST_FORWARD_RATE="2")
    try:
        until(service.ready, "the ingest service to be ready", seconds=WAIT)
        for n in range(40):
            assert service.post(webhook(f"nobody-{n % 8}", n))[0] == 202
        until(lambda: waiting(engine, service.forwarder), "forwards in flight")

        service.process.send_signal(signal.SIGTERM)

        until(lambda: health(service.probe) == (503, "draining"), "/health to say draining")
        status, body, retry_after = service.post(webhook("nobody-late", 0))
        assert status == 503 and "draining" in str(body["detail"]) and retry_after
        assert service.process.wait(timeout=60) == 0, service.log.read_text()
        assert not waiting(engine, service.forwarder)  # released: another instance takes them
        assert all(r.claimed_by is None for r in waiting(engine))
        assert "nobody-late" not in {r.customer_id for r in inbox.rows(engine)}
    finally:
        service.stop()
        stop(server)
        engine.dispose()


@pytest.mark.parametrize("stop_signal", [signal.SIGTERM, signal.SIGINT], ids=["sigterm", "sigint"])
def test_an_ingest_service_whose_temporal_went_away_still_stops_on_a_signal(
    tmp_path: Path, rules: Path, stop_signal: signal.Signals
) -> None:
    server, env = stack(tmp_path)
    engine = make_engine(env["RETENTION_DATABASE_URL"])
    service = Service(env, rules, tmp_path / "ingest.log")
    try:
        until(service.ready, "the ingest service to be ready", seconds=WAIT)
        stop(server)
        until(lambda: health(service.probe) == (503, "unreachable"), "it to see Temporal gone")
        assert service.post(webhook("nobody", 1))[0] == 202  # kept in the inbox meanwhile

        service.process.send_signal(stop_signal)  # an orchestrator's stop, or Ctrl-C

        assert service.process.wait(timeout=60) == 0, service.log.read_text()
        assert [r.status for r in inbox.rows(engine)] == ["pending"]
        assert "drained" in service.log.read_text()
    finally:
        service.stop()
        stop(server)
        engine.dispose()


def test_a_drain_setting_out_of_range_is_one_line_naming_it() -> None:
    env = {**os.environ, "RETENTION_INGEST_DRAIN_SECONDS": "-1"}
    done = subprocess.run(
        [sys.executable, "-m", "retention.ingest"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
    )
    assert done.returncode != 0 and "Traceback" not in done.stderr
    assert (
        "RETENTION_INGEST_DRAIN_SECONDS: Input should be greater than or equal to 0" in done.stderr
    )
