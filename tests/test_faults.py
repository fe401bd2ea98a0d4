"""The fault test ("Faults survived"): 200 journeys run while workers die and the
Temporal server restarts, and every outcome, event and delivery still comes out exactly once:
once per person, where a step reaches several of an account's people.

As it runs in production, each a subprocess with its settings in the environment: the Temporal
dev server (on a database file, so a restart keeps its state), two worker.py processes on the
same task queue, and the ingest service; email goes live to a fake SendGrid, the other channels
are captured to files. A seeded schedule SIGKILLs a worker 20 times (alternating which, each
started again), restarts the Temporal server twice, and posts signed webhooks all along. A
journey starts only once the inbox has caught up (BACKLOG), so a slow machine stretches the run
rather than delivering events after their journeys closed.

Expectations come from the plan, not the run: each customer's strategy is decided up front by
the shipped rules (its profile keeps that strategy whatever the journey's clock says), and its
outcome is the rules' exit outcome for the exit event it is sent, else `completed`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import sys
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from statistics import median
from typing import Any, Literal, TypeVar

import pytest
from factories import make_customer, person
from fake_providers import FakeSendGrid
from sqlalchemy import Engine
from sqlmodel import select
from supervisor import DevServer, Supervised
from temporalio.client import Client
from temporalio.service import RPCError
from test_end_to_end import Stack, until
from test_ingest_service import SECRETS, IngestStack
from webhooks import generic, stripe_invoice, zendesk_ticket

from retention.customer import CustomerSnapshot
from retention.event_summary import EventRecord
from retention.ingest import inbox
from retention.ingest.sources import load_sources
from retention.journey_state import JourneyOptions, JourneyState, journey_id
from retention.plan import Decision
from retention.rulebook.decide import FIRST_DECISION, decide, decision_facts
from retention.rulebook.loader import load_rulebook
from retention.runtime.devserver import free_port
from retention.runtime.operations import (
    JourneyAlreadyRunning,
    TemporalUnreachable,
    start_journey,
)
from retention.runtime.temporal import connect
from retention.scoring.assessment import assess_customer
from retention.store.db import make_engine, session
from retention.store.tables import InterventionRow, OutboxRow

pytestmark = [pytest.mark.e2e, pytest.mark.faults, pytest.mark.timeout(1200)]
T = TypeVar("T")

ROOT = Path(__file__).resolve().parent.parent
SEED = 9
JOURNEYS = 200
WORKER_KILLS = 20
SERVER_RESTARTS = 2
# Journey hours per real hour: a plan's last message is due at 2 weeks (84 s) and the journey
# then watches 2 more weeks for an exit, so a journey runs about 170 s (longer when faults stall
# it): time for its events to arrive even when the ingest service waits out a server restart.
TIME_SCALE = 16_000.0
STARTS_WITHIN = 60.0  # seconds: journeys start over the first minute
FAULTS_WITHIN = (5.0, 150.0)  # seconds: when the kills and restarts fall
# Every webhook of a journey is posted within this many seconds of its start: well before it can
# close, even if the forwarder waits out a server restart first.
WEBHOOKS_WITHIN = 40.0
# A journey starts only while at most this many webhooks wait in the ingest service's inbox. On a
# loaded machine the Temporal dev server (one shard, SQLite) signals a few events a second; a
# queue growing past that delayed events by minutes, past the close of their journeys. Holding
# starts back instead keeps every journey's events ahead of its end, however slow the machine.
BACKLOG = 5
WAIT = 120.0  # seconds for one thing to come back (a process, a call); generous, never asserted
CLOSE_WAIT = 600.0  # seconds for the last journeys to close after the faults

AWAY = {"days_since_last_login": 45, "logins_per_week": 0.5, "logins_per_week_prior": 3.0}
AT_RISK = {
    "usage": {"days_since_last_login": 21, "logins_per_week": 1.0, "logins_per_week_prior": 6.0},
    "relationship": {"champion_status": "left", "nps": 3, "executive_engaged": False},
    "support": {"avg_ticket_sentiment": -0.7, "tickets_90d": 6},
}
# Profiles whose decided strategy and severity do not move as journey time passes without a
# login, nor with the events sent here: a checkpoint re-score keeps the plan, so the outcome
# does not depend on when, under faults, a checkpoint happens to run.
PROFILES: dict[str, dict[str, Any]] = {
    "critical": {
        **AT_RISK,
        "financial": {"annual_contract_value": 90_000.0, "payment_delays_90d": 2},
    },
    "critical-small": {
        **AT_RISK,
        "financial": {"annual_contract_value": 20_000.0, "payment_delays_90d": 2},
    },
    "lapsed": {"usage": AWAY},
    "lapsed-small": {"usage": AWAY, "financial": {"annual_contract_value": 6_000.0}},
    "lapsed-big": {
        "usage": {
            "days_since_last_login": 45,
            "logins_per_week": 1.0,
            "logins_per_week_prior": 2.0,
        },
        "relationship": {"nps": 7, "champion_status": "left"},
        "financial": {"annual_contract_value": 60_000.0},
    },
    "drifting": {"usage": {"days_since_last_login": 45}},
    "drifting-small": {
        "usage": {"days_since_last_login": 45},
        "financial": {"annual_contract_value": 3_000.0},
    },
}
# By journey number: a third end on an event that saves them or books a meeting, a sixth
# churn, the rest run their plan out.
EXIT_EVENTS = ("meeting_booked", "renewed", "churned", None, None, None)


@dataclass(frozen=True)
class Webhook:
    at: float  # seconds after its journey started
    source: str
    event_id: str  # also somewhere in the event's data, so the journey's state shows it
    payload: dict[str, Any]


@dataclass(frozen=True)
class PlannedJourney:
    customer: CustomerSnapshot
    start_at: float
    webhooks: tuple[Webhook, ...]
    strategy: str
    outcome: str

    @property
    def customer_id(self) -> str:
        return self.customer.customer_id


@dataclass(frozen=True)
class Fault:
    at: float
    kind: Literal["kill", "restart"]
    worker: int  # which worker a kill hits
    down_for: float  # seconds before the worker or server is started again


def people_of(customer_id: str, profile: dict[str, Any]) -> dict[str, Any]:
    """The account's people, at addresses of its own (caps count every journey's messages to
    an address): the profile's person (billing), a champion as the profile has one, two admins
    and a user. A step to admins and users reaches one or all three, each their own outbox row;
    a step to the primary contact keeps the step's one row."""
    left = profile.get("relationship", {}).get("champion_status") == "left"
    domain = f"{customer_id}.example"
    contacts = [
        person("dana", "billing", email=f"dana@{domain}"),
        person("cy", "champion", email=f"cy@{domain}", active=not left),
        *(person(name, role, email=f"{name}@{domain}") for name, role in TEAM),
    ]
    return {
        "profile": {"customer_id": customer_id, "email": f"dana@{domain}"},
        "contacts": contacts,
    }


TEAM = (("ana", "admin"), ("ben", "admin"), ("uma", "user"))


def decided_plans() -> dict[str, Decision]:
    """Each profile's first decision under the shipped rules."""
    rulebook = load_rulebook(ROOT / "rules")
    plans = {}
    for name, overrides in PROFILES.items():
        customer = make_customer(**people_of(f"{name}-0", overrides), **overrides)
        assessment = assess_customer(customer, rulebook, datetime.now(UTC))
        plans[name] = decide(rulebook, decision_facts(assessment, FIRST_DECISION))
    return plans


def plan_journeys(rng: random.Random, plans: dict[str, Decision]) -> list[PlannedJourney]:
    names = list(PROFILES)
    journeys = []
    for n in range(JOURNEYS):
        name = names[n % len(names)]
        customer_id = f"fault-{n:03d}"
        customer = make_customer(**people_of(customer_id, PROFILES[name]), **PROFILES[name])
        exit_event = EXIT_EVENTS[n % len(EXIT_EVENTS)]
        hooks = noise(rng, customer_id, rng.randint(2, 4))
        if exit_event is not None:
            last = max(hook.at for hook in hooks)
            hooks.append(exit_webhook(rng, customer_id, exit_event, after=last))
        decision = plans[name]
        outcome = decision.policy.outcome_for(exit_event) if exit_event else None
        journeys.append(
            PlannedJourney(
                customer=customer,
                start_at=rng.uniform(0, STARTS_WITHIN),
                webhooks=tuple(hooks),
                strategy=decision.strategy,
                outcome=outcome or "completed",
            )
        )
    return journeys


def noise(rng: random.Random, customer_id: str, count: int) -> list[Webhook]:
    """Events that change no score (a reply, a ticket comment), at random moments."""
    hooks = []
    for k, at in enumerate(sorted(rng.uniform(0.5, WEBHOOKS_WITHIN - 8) for _ in range(count))):
        event_id = f"fe-{customer_id}-{k}"
        if rng.random() < 0.5:
            hooks.append(
                Webhook(
                    at, "generic", event_id, generic(event_id, customer_id, "replied", ref=event_id)
                )
            )
        else:
            payload = zendesk_ticket(event_id, customer_id, "ticket.comment_added")
            payload["detail"]["id"] = event_id  # → the event's data.ticket_id
            hooks.append(Webhook(at, "zendesk", event_id, payload))
    return hooks


def exit_webhook(rng: random.Random, customer_id: str, kind: str, after: float) -> Webhook:
    """The journey's last event, after its others: a meeting booked (our own webhook), or a
    renewal or cancellation as Stripe reports it."""
    event_id = f"fe-{customer_id}-exit"
    at = rng.uniform(after + 1, WEBHOOKS_WITHIN)
    if kind == "meeting_booked":
        return Webhook(at, "generic", event_id, generic(event_id, customer_id, kind, ref=event_id))
    stripe_kind, reason = {
        "renewed": ("invoice.payment_succeeded", "subscription_cycle"),
        "churned": ("customer.subscription.deleted", "manual"),
    }[kind]
    payload = stripe_invoice(event_id, customer_id, stripe_kind, reason)
    payload["data"]["object"]["id"] = event_id  # → the event's data.invoice
    return Webhook(at, "stripe", event_id, payload)


def plan_faults(rng: random.Random) -> list[Fault]:
    kills = sorted(rng.uniform(*FAULTS_WITHIN) for _ in range(WORKER_KILLS))
    low, high = FAULTS_WITHIN
    third = (high - low) / 3
    restarts = [rng.uniform(low + third * n, low + third * (n + 1)) for n in (0, 2)]
    faults = [Fault(at, "kill", n % 2, rng.uniform(0.2, 2.0)) for n, at in enumerate(kills)]
    faults += [Fault(at, "restart", 0, rng.uniform(1.0, 4.0)) for at in restarts]
    assert len(restarts) == SERVER_RESTARTS
    return sorted(faults, key=lambda fault: fault.at)


# ---- the stack ---------------------------------------------------------------------------------


@dataclass
class FaultStack:
    server: DevServer
    workers: list[Supervised]
    service: Supervised
    ingest: IngestStack
    engine: Engine
    outbox: Path


@contextmanager
def fault_stack(tmp: Path, sendgrid: FakeSendGrid) -> Iterator[FaultStack]:
    """Server, two workers and the ingest service, all stopped on the way out, whatever
    happened."""
    server = DevServer(tmp / "temporal.db")
    url, outbox, port = f"sqlite:///{tmp / 'retention.db'}", tmp / "outbox", free_port()
    env = {
        **os.environ,
        "RETENTION_TEMPORAL_ADDRESS": server.address,
        "RETENTION_DATABASE_URL": url,
        "RETENTION_OUTBOX_DIR": str(outbox),
        "RETENTION_MODEL_DIR": "baseline",
        "RETENTION_METRICS_ADDRESS": "",  # two workers on one machine: no port to share
        "RETENTION_SENDGRID_API_KEY": sendgrid.api_key,
        "RETENTION_SENDGRID_BASE_URL": sendgrid.url,
        "RETENTION_EMAIL_FROM": "success@ourapp.example",
        "RETENTION_PORTFOLIO_SCAN_EVERY": "off",  # only this test's journeys run
        "RETENTION_MODEL_RETRAIN_EVERY": "off",
        "RETENTION_DATA_PURGE_EVERY": "off",
        **{f"RETENTION_INGEST_SECRET_{name.upper()}": key for name, key in SECRETS.items()},
    }
    workers = [
        Supervised(
            f"worker-{n}",
            [sys.executable, "worker.py"],
            env,
            tmp / f"worker-{n}.log",
            "worker polling",
        )
        for n in (1, 2)
    ]
    service = Supervised(
        "ingest service",
        [sys.executable, "-m", "retention.ingest", "--port", str(port)],
        env,
        tmp / "ingest.log",
        "Uvicorn running on",
    )
    with ExitStack() as cleanup:
        server.start()
        cleanup.callback(server.stop)
        engine = make_engine(url)  # the schema, before three processes reach for it
        cleanup.callback(engine.dispose)
        for process in (*workers, service):
            process.start()
            cleanup.callback(process.stop)
        for process in (*workers, service):
            until(process.ready, f"{process.name} to be ready", WAIT)
        assert server.process is not None
        ingest = IngestStack(
            stack=Stack(address=server.address, env=env, tmp=tmp),
            port=port,
            url=f"http://127.0.0.1:{port}",
            engine=engine,
            sources=load_sources(ROOT / "rules"),
            server_db=server.db_file,
            server_port=server.port,
            server=server.process,
            log=service.log,
        )
        yield FaultStack(server, workers, service, ingest, engine, outbox)


# ---- the run -----------------------------------------------------------------------------------


async def _sleep_until(moment: float) -> None:
    await asyncio.sleep(max(0.0, moment - time.monotonic()))


async def persist(call: Callable[[], Awaitable[T]], what: str) -> T:
    """`call` again while the Temporal server is away (restarting); fails naming `what`."""
    deadline = time.monotonic() + WAIT
    while True:
        try:
            return await call()
        except (TemporalUnreachable, RPCError) as exc:
            if time.monotonic() > deadline:
                raise AssertionError(f"gave up on {what}: {exc}") from exc
            await asyncio.sleep(1.0)


async def unleash(stack: FaultStack, faults: list[Fault], t0: float) -> None:
    """The schedule, one fault at a time: each is over (the process back) before the next."""
    for fault in faults:
        await _sleep_until(t0 + fault.at)
        if fault.kind == "restart":
            await asyncio.to_thread(stack.server.restart, fault.down_for)
            continue
        worker = stack.workers[fault.worker]
        await asyncio.to_thread(worker.kill)
        await asyncio.sleep(fault.down_for)
        worker.start()
        await asyncio.to_thread(until, worker.ready, f"{worker.name} back after a kill", WAIT)


async def drive(
    client: Client,
    ingest: IngestStack,
    journey: PlannedJourney,
    t0: float,
    gate: asyncio.Lock,
    posted: list[str],
) -> float:
    """Start the journey when planned and the inbox has caught up, then post its webhooks at
    their moments; returns when (after t0) it started."""
    await _sleep_until(t0 + journey.start_at)
    async with gate:  # one at a time, so a drained inbox admits one journey, not all waiting
        await asyncio.to_thread(until, lambda: _caught_up(ingest), "the inbox to drain", CLOSE_WAIT)
        await persist(lambda: _start(client, journey), f"starting {journey.customer_id}")
    started = time.monotonic()
    for hook in journey.webhooks:
        await _sleep_until(started + hook.at)
        await asyncio.to_thread(_post_kept, ingest, hook)
        posted.append(hook.event_id)
    return started - t0


def _caught_up(ingest: IngestStack) -> bool:
    try:
        return int(ingest.get("/health").body["pending"]) <= BACKLOG
    except OSError:
        return False


async def _start(client: Client, journey: PlannedJourney) -> None:
    # Already running: an attempt cut off by a server restart had got through.
    with contextlib.suppress(JourneyAlreadyRunning):
        await start_journey(client, journey.customer, None, JourneyOptions(time_scale=TIME_SCALE))


def _post_kept(ingest: IngestStack, hook: Webhook) -> None:
    """Post until the service keeps it (202; 200 if a cut-off attempt was kept after all)."""

    def kept() -> bool:
        try:
            answer = ingest.post(hook.source, hook.payload)
        except OSError:
            return False
        assert answer.status in (200, 202), f"webhook {hook.event_id} refused: {answer}"
        assert answer.body["status"] == "accepted", f"webhook {hook.event_id}: {answer}"
        return True

    until(kept, f"the ingest service to keep webhook {hook.event_id}", WAIT)


async def final_states(client: Client, journeys: list[PlannedJourney]) -> dict[str, JourneyState]:
    """Each journey's result once it closes; fails naming those that do not."""

    async def result(customer_id: str) -> JourneyState:
        handle = client.get_workflow_handle(journey_id(customer_id), result_type=JourneyState)
        return await persist(handle.result, f"the result of {customer_id}")

    tasks = {j.customer_id: asyncio.create_task(result(j.customer_id)) for j in journeys}
    await asyncio.wait(tasks.values(), timeout=CLOSE_WAIT)
    open_ = sorted(c for c, task in tasks.items() if not task.done())
    for task in tasks.values():
        task.cancel()
    assert not open_, f"{len(open_)} journeys did not close within {CLOSE_WAIT:.0f} s: {open_}"
    return {customer_id: task.result() for customer_id, task in tasks.items()}


# ---- what came out -----------------------------------------------------------------------------


def event_ids(record: EventRecord) -> list[str]:
    return [v for v in record.data.values() if isinstance(v, str) and v.startswith("fe-")]


@dataclass
class OutboxAudit:
    """Deliveries compared with the steps the journeys say were done."""

    steps_done: int
    rows: int
    multi_recipient_steps: int  # steps whose people each got their own row
    captured_files: int
    provider_messages: int
    provider_resends: int  # the same key posted again after a kill: the provider dedupes it
    missing: list[str]
    duplicates: list[str]


def audit_outbox(
    engine: Engine, outbox: Path, sendgrid: FakeSendGrid, finals: list[JourneyState]
) -> OutboxAudit:
    """Per person a step reached (its state's recipients), one outbox row; per step that
    reached anyone, one intervention; per row, its file or its SendGrid message."""
    with session(engine) as db:
        rows = list(db.exec(select(OutboxRow)).all())
        interventions = list(db.exec(select(InterventionRow)).all())
    reached = {
        (final.journey_key, step.step.step_id): step
        for final in finals
        for step in final.steps
        if step.status == "done" or any(r.status in DELIVERED for r in step.recipients)
    }
    per_person = Counter((row.journey_key, row.step_id, _person(row)) for row in rows)
    per_step = Counter((row.journey_key, row.step_id) for row in rows)
    row_ids = {row.id for row in rows}
    missing = [f"outbox row for {k}" for k in reached if k not in per_step]
    missing += [
        f"outbox row {k} is not the step's"
        for k, step in reached.items()
        if step.outbox_id is not None and step.outbox_id not in row_ids
    ]
    missing += [
        f"{len([r for r in step.recipients if r.status in DELIVERED])} people reached at {k}, "
        f"{per_step[k]} rows"
        for k, step in reached.items()
        if step.recipients
        and per_step[k] != len([r for r in step.recipients if r.status in DELIVERED])
    ]
    duplicates = [f"{n} outbox rows for {k}" for k, n in per_person.items() if n > 1]
    duplicates += [
        f"outbox row for {k}, a step that reached no one" for k in per_step if k not in reached
    ]
    captured = {row.path for row in rows if row.status == "captured"}
    files = {str(p) for p in outbox.rglob("*.txt") if not p.name.startswith(".")}
    missing += [f"captured file {p}" for p in sorted(captured - files)]
    duplicates += [f"file {p} with no outbox row" for p in sorted(files - captured)]
    sent = {row.idempotency_key: row.provider_message_id for row in rows if row.status == "sent"}
    missing += [f"SendGrid message {k}" for k, m in sent.items() if sendgrid.messages.get(k) != m]
    duplicates += [
        f"SendGrid message {k} with no sent row" for k in set(sendgrid.messages) - set(sent)
    ]
    unsettled = [
        f"{row.idempotency_key} left {row.status}" for row in rows if row.status == "sending"
    ]
    missing += unsettled
    recorded = Counter((i.journey_key, i.step_id) for i in interventions)
    missing += [f"intervention for {k}" for k in reached if k not in recorded]
    duplicates += [f"intervention for {k}, a step not done" for k in recorded if k not in reached]
    duplicates += [f"{n} interventions for {k}" for k, n in recorded.items() if n > 1]
    return OutboxAudit(
        steps_done=len(reached),
        rows=len(rows),
        multi_recipient_steps=sum(n > 1 for n in per_step.values()),
        captured_files=len(files),
        provider_messages=len(sendgrid.messages),
        provider_resends=len(sendgrid.received) - len(sendgrid.messages),
        missing=missing,
        duplicates=duplicates,
    )


DELIVERED = {"captured", "sent", "held_out"}


def _person(row: OutboxRow) -> str:
    """Whose row it is: the contact id in its key, or "" for a step's one message."""
    return row.idempotency_key.removeprefix(f"{row.journey_key}:{row.step_id}").lstrip(":")


# ---- the test ----------------------------------------------------------------------------------


async def test_journeys_events_and_deliveries_survive_kills_and_restarts(
    tmp_path: Path, fake_sendgrid: FakeSendGrid
) -> None:
    rng = random.Random(SEED)
    journeys = plan_journeys(rng, decided_plans())
    faults = plan_faults(rng)
    began = time.monotonic()
    with fault_stack(tmp_path, fake_sendgrid) as stack:
        client = await connect(address=stack.server.address)
        posted: list[str] = []
        gate = asyncio.Lock()
        t0 = time.monotonic()
        async with asyncio.TaskGroup() as run:  # one failing cancels the rest before teardown
            run.create_task(unleash(stack, faults, t0))
            drives = [
                run.create_task(drive(client, stack.ingest, j, t0, gate, posted)) for j in journeys
            ]
        starts = [task.result() for task in drives]
        finals = await final_states(client, journeys)
        audit = audit_outbox(stack.engine, stack.outbox, fake_sendgrid, list(finals.values()))
        kept = inbox.rows(stack.engine)
        kills = sum(w.kills for w in stack.workers)
        restarts = stack.server.restarts

    inbox_rows = Counter(row.status for row in kept)
    lags = sorted(
        (row.forwarded_at - row.received_at).total_seconds() for row in kept if row.forwarded_at
    )
    seen = Counter(
        i for final in finals.values() for e in final.events.recent for i in event_ids(e)
    )
    wrong = [
        f"{j.customer_id}: {finals[j.customer_id].outcome} ({finals[j.customer_id].strategy}), "
        f"expected {j.outcome} ({j.strategy})"
        for j in journeys
        if (finals[j.customer_id].outcome, finals[j.customer_id].strategy)
        != (j.outcome, j.strategy)
    ]
    unseen = sorted(set(posted) - set(seen))
    twice = sorted(i for i, n in seen.items() if n > 1)
    figures = {
        "journeys": len(finals),
        "outcomes": dict(sorted(Counter(f.outcome for f in finals.values()).items())),
        "events_sent": len(posted),
        "events_seen": sum(seen[i] > 0 for i in posted),
        "events_seen_twice": len(twice),
        "inbox": dict(inbox_rows),
        "forward_lag_s": {"median": round(median(lags), 2), "max": round(max(lags), 2)},
        "worker_kills": kills,
        "server_restarts": restarts,
        "steps_done": audit.steps_done,
        "deliveries": audit.rows,
        "multi_recipient_steps": audit.multi_recipient_steps,
        "captured_files": audit.captured_files,
        "provider_messages": audit.provider_messages,
        "provider_resends": audit.provider_resends,
        "missing": len(audit.missing),
        "duplicates": len(audit.duplicates),
        "wrong_outcomes": len(wrong),
        "last_start_s": round(max(starts), 1),
        "wall_seconds": round(time.monotonic() - began, 1),
    }
    print(json.dumps(figures), flush=True)
    assert (kills, restarts) == (WORKER_KILLS, SERVER_RESTARTS)
    assert not wrong, f"{len(wrong)} journeys ended otherwise than planned: {wrong[:20]}"
    assert not unseen, f"{len(unseen)} events posted never reached their journey: {unseen[:20]}"
    assert not twice, f"{len(twice)} events reached their journey more than once: {twice[:20]}"
    assert set(inbox_rows) == {"forwarded"}, inbox_rows
    assert audit.multi_recipient_steps > 0, "no step reached several people"
    assert not audit.missing, f"{len(audit.missing)} deliveries missing: {audit.missing[:20]}"
    assert not audit.duplicates, f"{len(audit.duplicates)} duplicates: {audit.duplicates[:20]}"
