"""Completion flowing back: a task completed in HubSpot (its signed webhook into the ingest
service) or in Salesforce (the crm-sync poll) completes ours and queues one task_completed for
the journey, however often the CRM says so; a bad signature writes nothing."""

from __future__ import annotations

import http.client
import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import pytest
import uvicorn
from crm_world import OWNERS, crm_customer, file_task, reload
from fake_crm import FakeHubSpot, FakeSalesforce
from pydantic import SecretStr
from sqlalchemy import Engine
from sqlmodel import select

from activities.crm import CrmActivities, CrmSyncRequest
from retention.crm.hubspot import HubSpotCrm
from retention.crm.hubspot_webhook import sign
from retention.crm.salesforce import SalesforceCrm
from retention.crm.sync import CrmSync
from retention.ingest.app import IngestService
from retention.runtime.devserver import free_port
from retention.runtime.settings import Settings
from retention.store.crm_tasks import read_mark
from retention.store.db import session
from retention.store.tables import CsmTaskRow, InboxRow, utcnow

pytestmark = pytest.mark.database

CLIENT_SECRET = SecretStr("hubspot-app-client-secret")


@dataclass(frozen=True)
class Ingest:
    port: int

    def post(
        self, body: bytes, *, secret: SecretStr = CLIENT_SECRET, age_ms: int = 0
    ) -> tuple[int, dict[str, object]]:
        """POST /crm/hubspot as HubSpot does, signed `age_ms` ago."""
        uri = f"http://127.0.0.1:{self.port}/crm/hubspot"
        headers = sign(secret, "POST", uri, body, int(time.time() * 1000) - age_ms)
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        try:
            connection.request(
                "POST", "/crm/hubspot", body, headers | {"Content-Type": "application/json"}
            )
            answer = connection.getresponse()
            return answer.status, json.loads(answer.read() or b"{}")
        finally:
            connection.close()


@pytest.fixture
def ingest(engine: Engine, tmp_path: Path) -> Iterator[Ingest]:
    """The ingest service's app under uvicorn (its forwarder not started: the rows it would
    forward are what the tests read)."""
    settings = Settings(
        hubspot_access_token=SecretStr("pat-na1-fake-token"),
        hubspot_client_secret=CLIENT_SECRET,
        ingest_health_address="",
        rules_dir=Path(__file__).resolve().parent.parent / "rules",
    )
    port = free_port()
    app = IngestService(settings, engine).app
    server = uvicorn.Server(
        uvicorn.Config(app, "127.0.0.1", port, lifespan="off", log_level="warning")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.02)
    yield Ingest(port)
    server.should_exit = True
    thread.join(timeout=30)


def task_in_hubspot(engine: Engine, outbox: Path, fake: FakeHubSpot) -> CsmTaskRow:
    task = file_task(engine, outbox, crm_customer("9001"))
    CrmSync(engine, HubSpotCrm(SecretStr(fake.token), fake.url, None, 5.0), OWNERS).push_due()
    return reload(engine, task)


def completed_in_hubspot(task: CsmTaskRow, event_id: int = 101, attempt: int = 0) -> bytes:
    """HubSpot's delivery when a CSM ticks the task off, with an event we do not act on."""
    occurred = int(time.time() * 1000)
    common = {
        "subscriptionId": 7,
        "portalId": 4242,
        "appId": 1,
        "occurredAt": occurred,
        "subscriptionType": "object.propertyChange",
        "objectTypeId": "0-27",
        "attemptNumber": attempt,
        "changeSource": "CRM_UI",
        "sourceId": "userId:99",
    }
    done = {"eventId": event_id, "objectId": int(str(task.crm_id))}
    done |= {"propertyName": "hs_task_status", "propertyValue": "COMPLETED"}
    other = {"eventId": event_id + 1, "objectId": 77}
    other |= {"propertyName": "hs_task_subject", "propertyValue": "renamed"}
    return json.dumps([common | done, common | other]).encode()


def inbox_rows(engine: Engine) -> list[InboxRow]:
    with session(engine) as db:
        return list(db.exec(select(InboxRow)).all())


def test_a_task_completed_in_hubspot_completes_ours_and_queues_one_event(
    engine: Engine, tmp_path: Path, hubspot: FakeHubSpot, ingest: Ingest
) -> None:
    task = task_in_hubspot(engine, tmp_path, hubspot)

    status, answer = ingest.post(completed_in_hubspot(task))

    assert (status, answer) == (200, {"completed": [task.id], "seen": 1})
    done = reload(engine, task)
    assert (done.status, done.completed_by) == ("done", "hubspot (CRM)")
    [row] = inbox_rows(engine)
    assert (row.source, row.kind, row.customer_id, row.status) == (
        "crm",
        "task_completed",
        task.customer_id,
        "pending",
    )
    assert row.event is not None and row.event["type"] == "task_completed"
    assert row.event["data"]["task_id"] == task.id


def test_a_duplicate_webhook_completes_nothing_more(
    engine: Engine, tmp_path: Path, hubspot: FakeHubSpot, ingest: Ingest
) -> None:
    task = task_in_hubspot(engine, tmp_path, hubspot)
    ingest.post(completed_in_hubspot(task))

    again = ingest.post(completed_in_hubspot(task, attempt=1))  # HubSpot retrying
    other_event = ingest.post(completed_in_hubspot(task, event_id=500))

    assert again == (200, {"completed": [], "seen": 1}) and other_event[1]["completed"] == []
    assert len(inbox_rows(engine)) == 1


@pytest.mark.parametrize(
    ("secret", "age_ms", "why"),
    [
        (SecretStr("someone-elses-secret"), 0, "does not match the request"),
        (CLIENT_SECRET, 6 * 60 * 1000, "not within five minutes"),
    ],
)
def test_a_badly_signed_or_stale_webhook_is_401_and_writes_nothing(
    engine: Engine,
    tmp_path: Path,
    hubspot: FakeHubSpot,
    ingest: Ingest,
    secret: SecretStr,
    age_ms: int,
    why: str,
) -> None:
    task = task_in_hubspot(engine, tmp_path, hubspot)

    status, answer = ingest.post(completed_in_hubspot(task), secret=secret, age_ms=age_ms)

    assert status == 401 and why in str(answer["detail"])
    assert reload(engine, task).status == "open" and inbox_rows(engine) == []


def test_a_malformed_delivery_is_422_naming_the_field(engine: Engine, ingest: Ingest) -> None:
    body = json.dumps([{"propertyName": "hs_task_status", "propertyValue": "COMPLETED"}])

    status, answer = ingest.post(body.encode())

    assert status == 422 and answer["detail"] == "[0].eventId: missing or not a number"


# ---- Salesforce: the poll ----------------------------------------------------------------------


def test_a_task_closed_in_salesforce_is_completed_here_once_by_the_poll(
    engine: Engine, tmp_path: Path, salesforce: FakeSalesforce
) -> None:
    crm = SalesforceCrm(salesforce.url, SecretStr(salesforce.token), 5.0)
    sync = CrmActivities(engine, CrmSync(engine, crm, OWNERS))
    task = file_task(engine, tmp_path, crm_customer("001000000000001AAA"))
    made = sync.sync_crm(CrmSyncRequest())
    closed = salesforce.close(task.idempotency_key)

    first = sync.sync_crm(CrmSyncRequest())
    second = sync.sync_crm(CrmSyncRequest())

    assert made.pushed == {"synced": 1} and made.completed == []
    assert first.completed == [task.id] and second.completed == []
    done = reload(engine, task)
    assert (done.status, done.completed_by) == ("done", "salesforce (CRM)")
    assert [r.kind for r in inbox_rows(engine)] == ["task_completed"]
    mark = read_mark(engine, "salesforce")
    assert mark is not None and mark >= closed.modified.replace(microsecond=0)


def test_a_salesforce_that_cannot_be_read_keeps_the_mark(
    engine: Engine, tmp_path: Path, salesforce: FakeSalesforce
) -> None:
    crm = SalesforceCrm(salesforce.url, SecretStr(salesforce.token), 5.0)
    sync = CrmActivities(engine, CrmSync(engine, crm, OWNERS))
    sync.sync_crm(CrmSyncRequest())
    before = read_mark(engine, "salesforce")
    salesforce.fail_next(salesforce.busy(retry_after=60))

    report = sync.sync_crm(CrmSyncRequest())

    assert "Salesforce poll failed" in str(report.poll_error)
    assert salesforce.token not in str(report.poll_error)
    assert read_mark(engine, "salesforce") == before


def test_a_worker_without_a_crm_syncs_nothing(engine: Engine) -> None:
    report = CrmActivities(engine, None).sync_crm(CrmSyncRequest())

    assert report.crm is None and report.pushed == {}


def test_a_pending_push_is_not_done_before_its_retry_time(engine: Engine, tmp_path: Path) -> None:
    gone = FakeHubSpot().start()
    gone.stop()
    sync = CrmSync(engine, HubSpotCrm(SecretStr(gone.token), gone.url, None, 5.0))
    file_task(engine, tmp_path, crm_customer("9001"))
    now = utcnow()

    [first] = sync.push_due(now=now)

    assert (
        first.retry_at is not None
        and sync.push_due(now=first.retry_at - timedelta(seconds=1)) == []
    )
