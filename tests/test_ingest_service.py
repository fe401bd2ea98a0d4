"""The ingest service as it runs: `python -m retention.ingest` under uvicorn on a free port,
beside `temporal server start-dev` and worker.py, each a subprocess with its state in tmp_path.

Webhooks are posted over real HTTP, signed as each upstream system signs them; what reached a
journey is read from its `state` query (`starter.py show --json`), what was kept from the
service's own database. The tests share one stack and run in file order: the last one stops
and restarts the Temporal server.
"""

from __future__ import annotations

import http.client
import json
import os
import shutil
import subprocess
import sys
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import pytest
from factories import customer_data
from sqlalchemy import Engine
from temporalio.client import Client, WorkflowExecutionStatus
from test_end_to_end import WAVERING_USAGE, Stack, _worker_ready
from test_end_to_end import until as until_e2e
from webhooks import (
    Post,
    generic,
    nested_body,
    post_all,
    prepare,
    segment_track,
    signed,
    stripe_invoice,
    zendesk_ticket,
)

from retention.customer import CustomerEvent
from retention.ingest import inbox
from retention.ingest.sources import Sources, load_sources
from retention.runtime.devserver import free_port, start_dev_server, stop
from retention.runtime.operations import recorded_event, send_event
from retention.runtime.temporal import connect
from retention.store.db import make_engine
from retention.store.tables import InboxRow

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(600)]
T = TypeVar("T")

ROOT = Path(__file__).resolve().parent.parent
SECRETS = {
    "generic": "gen-secret-4f1c",
    "zendesk": "zd-secret-88aa",
    "stripe": "whsec_stripe_19d2",
    "segment": "seg-secret-0b7e",
}
MAX_BYTES = 4096
WAIT = 150  # seconds: generous, the machine is shared; no test asserts a duration
# A source declared in the service's sources.yaml with no secret configured.
UNCONFIGURED = """
  crm:
    signature: {scheme: hex, header: X-Crm-Signature}
    event_id: id
    customer_id: customer_id
    kind: type
    kinds: {login: login}
"""


SHORT_INTERVALS = {
    "feature_used: {coalesce: 5m}": "feature_used: {coalesce: 3s}",
    "login: {coalesce: 60s}": "login: {coalesce: 1s}",
}
SENDERS = 16


def until(probe: Callable[[], T | None], what: str, seconds: float = WAIT) -> T:
    return until_e2e(probe, what, seconds)


@dataclass
class Response:
    status: int
    body: dict[str, Any]


@dataclass
class IngestStack:
    stack: Stack
    port: int
    url: str
    engine: Engine
    sources: Sources
    server_db: Path
    server_port: int
    server: subprocess.Popen[bytes]
    log: Path

    def post(
        self, source: str, payload: Any, *, secret: str | None = None, chunked: bool = False
    ) -> Response:
        """POST a webhook signed with the source's secret (or `secret`)."""
        key = secret or SECRETS.get(source, "none")
        body, headers = signed(self.sources, "generic" if source == "crm" else source, key, payload)
        return self.raw_post(f"/events/{source}", body, headers, chunked=chunked)

    def raw_post(
        self, path: str, body: bytes, headers: dict[str, str], chunked: bool = False
    ) -> Response:
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
        try:
            if chunked:  # no Content-Length: the service must count the bytes itself
                connection.request("POST", path, body=iter([body]), headers=headers)
            else:
                connection.request("POST", path, body=body, headers=headers)
            answer = connection.getresponse()
            return Response(answer.status, json.loads(answer.read() or b"{}"))
        finally:
            connection.close()

    def get(self, path: str) -> Response:
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        try:
            connection.request("GET", path)
            answer = connection.getresponse()
            raw = answer.read()
            body = json.loads(raw) if "json" in answer.getheader("content-type", "") else {}
            return Response(answer.status, body | {"_text": raw.decode(errors="replace")})
        finally:
            connection.close()

    def rows(self, source: str | None = None) -> list[InboxRow]:
        return inbox.rows(self.engine, source)

    def row(self, inbox_id: int) -> InboxRow:
        found = inbox.get(self.engine, inbox_id)
        assert found is not None
        return found

    def events(self, customer_id: str) -> list[dict[str, Any]]:
        done = self.stack.cli("show", customer_id, "--json", ok=False)
        return json.loads(done.stdout)["events"]["recent"] if done.returncode == 0 else []


@pytest.fixture(scope="module")
def ingest(tmp_path_factory: pytest.TempPathFactory) -> Iterator[IngestStack]:
    tmp = tmp_path_factory.mktemp("ingest")
    rules = Path(shutil.copytree(ROOT / "rules", tmp / "rules"))
    text = (rules / "sources.yaml").read_text()
    text = text.replace("\nopens_journey:", UNCONFIGURED + "\nopens_journey:")
    for shipped, short in SHORT_INTERVALS.items():  # a test waits seconds, not minutes
        text = text.replace(shipped, short)
    (rules / "sources.yaml").write_text(text)
    server_port, port = free_port(), free_port()
    server_db = tmp / "temporal.db"
    server = start_dev_server(server_db, port=server_port, ui_port=free_port())
    env = {
        **os.environ,
        "RETENTION_TEMPORAL_ADDRESS": f"127.0.0.1:{server_port}",
        "RETENTION_DATABASE_URL": f"sqlite:///{tmp / 'retention.db'}",
        "RETENTION_OUTBOX_DIR": str(tmp / "outbox"),
        "RETENTION_MODEL_DIR": "baseline",
        "COLUMNS": "200",
    }
    service_env = {
        **env,
        "RETENTION_RULES_DIR": str(rules),
        "RETENTION_INGEST_MAX_BYTES": str(MAX_BYTES),
        **{f"RETENTION_INGEST_SECRET_{name.upper()}": key for name, key in SECRETS.items()},
    }
    service_env.pop("RETENTION_INGEST_SECRET_CRM", None)
    processes: list[subprocess.Popen[bytes]] = []
    worker_log, service_log = tmp / "worker.log", tmp / "ingest.log"
    engine = make_engine(env["RETENTION_DATABASE_URL"])
    state = {"server": server}
    try:
        worker = _spawn([sys.executable, "worker.py"], env, worker_log)
        processes.append(worker)
        until(lambda: _worker_ready(worker, worker_log), "worker.py to poll")
        command = [sys.executable, "-m", "retention.ingest", "--port", str(port)]
        service = _spawn(command, service_env, service_log)
        processes.append(service)
        stack = IngestStack(
            stack=Stack(address=env["RETENTION_TEMPORAL_ADDRESS"], env=env, tmp=tmp),
            port=port,
            url=f"http://127.0.0.1:{port}",
            engine=engine,
            sources=load_sources(rules),
            server_db=server_db,
            server_port=server_port,
            server=server,
            log=service_log,
        )
        until(lambda: _answers(stack, service), "the ingest service's /health")
        yield stack
        state["server"] = stack.server
    finally:
        for process in reversed(processes):
            stop(process)
        stop(state["server"])
        engine.dispose()


def _spawn(command: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        return subprocess.Popen(command, cwd=ROOT, env=env, stdout=out, stderr=out)


def _answers(stack: IngestStack, service: subprocess.Popen[bytes]) -> bool:
    if service.poll() is not None:
        raise AssertionError(f"ingest service exited:\n{stack.log.read_text()}")
    try:
        return stack.get("/health").status == 200
    except OSError:
        return False


def start_journey(ingest: IngestStack, customer_id: str, acv: float = 24_000.0) -> None:
    data = customer_data(
        profile={"customer_id": customer_id},
        financial={"annual_contract_value": acv},
        **WAVERING_USAGE,
    )
    path = ingest.stack.tmp / f"{customer_id}.json"
    path.write_text(json.dumps(data))
    ingest.stack.cli("start", str(path))


def import_customer(ingest: IngestStack, customer_id: str, acv: float) -> None:
    data = customer_data(
        profile={"customer_id": customer_id}, financial={"annual_contract_value": acv}
    )
    path = ingest.stack.tmp / f"{customer_id}.json"
    path.write_text(json.dumps(data))
    ingest.stack.cli("customers", "import", str(path))


def arrived(ingest: IngestStack, customer_id: str, *types: str) -> list[dict[str, Any]] | None:
    events = ingest.events(customer_id)
    seen = [e["type"] for e in events]
    return events if all(t in seen for t in types) else None


# ---- the tests -------------------------------------------------------------------------------


def test_signed_events_from_every_source_reach_the_running_journey(ingest: IngestStack) -> None:
    start_journey(ingest, "ing-run")
    posted = [
        ingest.post("zendesk", zendesk_ticket("zd-1", "ing-run")),
        ingest.post("stripe", stripe_invoice("evt_1", "ing-run", "invoice.payment_failed")),
        ingest.post("segment", segment_track("seg-1", "ing-run", "Feature Used")),
        ingest.post("generic", generic("gen-1", "ing-run", "nps_response", score=6)),
    ]
    assert [p.status for p in posted] == [202] * 4, posted
    assert [p.body["type"] for p in posted] == [
        "ticket_opened",
        "payment_failed",
        "feature_used",
        "nps_response",
    ]
    types = ("ticket_opened", "payment_failed", "feature_used", "nps_response")
    events = until(lambda: arrived(ingest, "ing-run", *types), "the four events in the journey")
    by_type = {e["type"]: e for e in events}
    assert by_type["ticket_opened"]["data"]["ticket_id"] == "4711"
    assert by_type["payment_failed"]["data"]["invoice"] == "in_1"
    assert by_type["feature_used"]["data"]["feature"] == "dashboards"
    assert by_type["nps_response"]["data"] == {"score": 6} and by_type["nps_response"]["accepted"]
    rows = [ingest.row(p.body["inbox_id"]) for p in posted]
    until(lambda: all(ingest.row(r.id or 0).status == "forwarded" for r in rows), "rows settled")
    assert {ingest.row(r.id or 0).workflow_id for r in rows} == {"retention-ing-run"}


def test_refusals_write_nothing(ingest: IngestStack) -> None:
    before = len(ingest.rows())
    payload = generic("gen-bad", "ing-run", "login")
    bad = ingest.post("generic", payload, secret="not-the-secret")
    assert bad.status == 401 and "does not match" in bad.body["detail"]
    body = json.dumps(payload).encode()
    missing = ingest.raw_post("/events/generic", body, {"Content-Type": "application/json"})
    assert missing.status == 401 and "missing X-Retention-Signature" in missing.body["detail"]
    unconfigured = ingest.post("crm", payload, secret="anything")
    assert unconfigured.status == 401 and "no secret" in unconfigured.body["detail"]
    assert ingest.raw_post("/events/nosuch", body, {}).status == 404

    big = generic("gen-big", "ing-run", "login", blob="x" * MAX_BYTES)
    assert ingest.post("generic", big).status == 413
    assert ingest.post("generic", big, chunked=True).status == 413

    malformed = ingest.post("stripe", {"id": "evt_x", "type": "invoice.payment_failed"})
    assert malformed.status == 422 and malformed.body["field"] == "data.object.metadata.customer_id"
    not_json = ingest.post("generic", b"{not json")
    assert not_json.status == 422 and not_json.body["field"] == "(body)"
    too_deep = ingest.post("generic", nested_body(1_500, "ing-run"))  # under MAX_BYTES
    assert too_deep.status == 422 and too_deep.body["field"] == "(body)"
    assert "nested deeper than the limit of 64 levels" in too_deep.body["detail"]
    assert len(ingest.rows()) == before
    log = ingest.log.read_text()
    assert "refused generic webhook" in log
    assert not any(secret in log for secret in SECRETS.values())


def test_an_ignored_kind_is_answered_and_kept(ingest: IngestStack) -> None:
    answer = ingest.post("segment", segment_track("seg-page", "ing-run", "Page Viewed"))
    assert answer.status == 202 and answer.body["status"] == "ignored"
    assert ingest.row(answer.body["inbox_id"]).status == "ignored"


def test_a_webhook_delivered_twice_is_signalled_once(ingest: IngestStack) -> None:
    start_journey(ingest, "ing-dup")
    payload = stripe_invoice("evt_dup", "ing-dup", "invoice.payment_failed")
    first, second = ingest.post("stripe", payload), ingest.post("stripe", payload)
    assert (first.status, second.status) == (202, 200)
    assert second.body["duplicate"] and second.body["inbox_id"] == first.body["inbox_id"]
    # the same customer's later event arrives after it: by then the first was forwarded
    assert ingest.post("segment", segment_track("seg-dup", "ing-dup")).status == 202
    events = until(lambda: arrived(ingest, "ing-dup", "payment_failed", "login"), "both events")
    assert [e["type"] for e in events].count("payment_failed") == 1
    assert len(ingest.rows("stripe")) == len({r.source_event_id for r in ingest.rows("stripe")})


def test_payment_failed_opens_a_journey_for_a_high_value_customer(ingest: IngestStack) -> None:
    import_customer(ingest, "ing-big", 90_000.0)
    import_customer(ingest, "ing-small", 9_000.0)
    big = ingest.post("stripe", stripe_invoice("evt_big", "ing-big"))
    small = ingest.post("stripe", stripe_invoice("evt_small", "ing-small"))
    unknown = ingest.post("stripe", stripe_invoice("evt_unknown", "ing-nobody"))
    assert [a.status for a in (big, small, unknown)] == [202, 202, 202]
    events = until(lambda: arrived(ingest, "ing-big", "payment_failed"), "ing-big's new journey")
    assert events[0]["type"] == "payment_failed"
    opened = until(lambda: _settled(ingest, big.body["inbox_id"]), "ing-big's row settled")
    assert opened.started_journey and opened.workflow_id == "retention-ing-big"
    assert "opens_journey[0]" in (opened.note or "")
    for answer, why in ((small, "no rule opens one"), (unknown, "customer unknown")):
        kept = until(lambda a=answer: _settled(ingest, a.body["inbox_id"]), "a no_journey row")
        assert kept.status == "no_journey" and why in (kept.note or "")
    assert ingest.stack.cli("show", "ing-small", ok=False).returncode == 1


def test_the_openapi_schema_and_docs_are_served(ingest: IngestStack) -> None:
    schema = ingest.get("/openapi.json")
    assert schema.status == 200
    webhook = schema.body["paths"]["/events/{source}"]["post"]
    assert "application/json" in webhook["requestBody"]["content"]
    assert {"202", "401", "404", "413", "422"} <= set(webhook["responses"])
    assert ingest.get("/docs").status == 200 and "swagger" in ingest.get("/docs").body["_text"]


async def test_a_repeated_signal_request_reaches_the_journey_once(ingest: IngestStack) -> None:
    """What makes a forwarder's retry after a crash harmless: the inbox row's request id."""
    start_journey(ingest, "ing-once")
    client = await connect(address=ingest.stack.address)
    for request_id, n in (("inbox:test:1", 1), ("inbox:test:1", 1), ("inbox:test:2", 2)):
        event = CustomerEvent(type="feature_used", data={"n": n})
        await send_event(client, "ing-once", event, request_id=request_id)

    def both() -> list[dict[str, Any]] | None:
        events = ingest.events("ing-once")
        return events if any(e["data"].get("n") == 2 for e in events) else None

    events = until(both, "the second request's event")
    assert [e["data"]["n"] for e in events if e["type"] == "feature_used"] == [1, 2]


async def test_a_burst_from_concurrent_senders_is_settled_once_and_coalesced(
    ingest: IngestStack,
) -> None:
    customers = [f"ing-burst-{n}" for n in range(4)]
    for customer_id in customers:
        start_journey(ingest, customer_id)
    posts = [burst_post(ingest, customers[n % 4], n) for n in range(2_400)]

    statuses = post_all(ingest.port, posts, SENDERS)

    assert Counter(statuses) == {202: len(posts)}
    rows = until(lambda: _all_settled(ingest, "ing-burst-"), "every burst row settled")
    assert len(rows) == len(posts) and {r.status for r in rows} == {"forwarded"}
    assert {r.workflow_id for r in rows} == {f"retention-{c}" for c in customers}
    client = await connect(address=ingest.stack.address)
    for customer_id in customers:
        handle = client.get_workflow_handle(f"retention-{customer_id}")
        assert (await handle.describe()).status == WorkflowExecutionStatus.RUNNING
        assert ingest.stack.state(customer_id)["customer_id"] == customer_id  # `show` answers
        sent = await _signals(client, handle.id)
        mine = Counter(str(r.event_type) for r in rows if r.customer_id == customer_id)
        counted: Counter[str] = Counter()
        for signal in sent:
            counted[signal["type"]] += signal["count"]
        assert counted == mine  # each row counted once: none lost, none twice
        assert len(sent) < sum(mine.values()) / 5  # coalesced: far fewer signals than events


def burst_post(ingest: IngestStack, customer_id: str, n: int) -> Post:
    """Mostly product analytics and logins, now and then a ticket (forwarded one by one)."""
    event_id = f"burst-{customer_id}-{n}"
    if n % 40 == 0:
        return prepare(ingest.sources, SECRETS, "zendesk", zendesk_ticket(event_id, customer_id))
    kind = "Logged In" if n % 5 == 1 else "Feature Used"
    return prepare(ingest.sources, SECRETS, "segment", segment_track(event_id, customer_id, kind))


def _all_settled(ingest: IngestStack, prefix: str) -> list[InboxRow] | None:
    rows = [r for r in ingest.rows() if (r.customer_id or "").startswith(prefix)]
    return rows if all(r.status not in ("pending", "forwarding") for r in rows) else None


async def _signals(client: Client, workflow_id: str) -> list[dict[str, Any]]:
    """The customer events in the workflow's history, as sent."""
    found = []
    async for entry in client.get_workflow_handle(workflow_id).fetch_history_events():
        if (event := await recorded_event(client, entry)) is not None:
            found.append(event)
    return found


def test_events_posted_while_temporal_is_down_arrive_after_it_is_back(
    ingest: IngestStack,
) -> None:
    start_journey(ingest, "ing-down")
    until(lambda: ingest.stack.state("ing-down"), "the journey to answer")
    stop(ingest.server)
    answers = [
        ingest.post("segment", segment_track("seg-down-1", "ing-down", "Logged In")),
        ingest.post("zendesk", zendesk_ticket("zd-down-1", "ing-down")),
    ]
    assert [a.status for a in answers] == [202, 202]
    health = until(lambda: _temporal_lost(ingest), "the service to notice Temporal is gone")
    assert health["pending"] >= 2
    assert all(ingest.row(a.body["inbox_id"]).status == "pending" for a in answers)

    ingest.server = start_dev_server(ingest.server_db, port=ingest.server_port, ui_port=free_port())
    until(
        lambda: arrived(ingest, "ing-down", "login", "ticket_opened"),
        "the events posted while Temporal was down",
        seconds=2 * WAIT,
    )
    rows = [until(lambda a=a: _settled(ingest, a.body["inbox_id"]), "settled") for a in answers]
    assert [r.status for r in rows] == ["forwarded", "forwarded"]


def _settled(ingest: IngestStack, inbox_id: int) -> InboxRow | None:
    row = ingest.row(inbox_id)
    return row if row.status not in ("pending", "forwarding") else None


def _temporal_lost(ingest: IngestStack) -> dict[str, Any] | None:
    health = ingest.get("/health").body
    return health if not health["temporal_connected"] else None
