"""CSM work in the CSMs' tools as a user runs it: the Temporal dev server, worker.py with HubSpot
and Slack configured (pointed at the fake HubSpot and the fake Slack on 127.0.0.1), starter.py.
A critical journey's CSM tasks appear in HubSpot once each, on the customer's company, and its
alerts in Slack, linking the HubSpot task; `tasks complete` closes one there; no token is in
any log."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from fake_crm import FakeHubSpot
from fake_slack import TEAM_CHANNEL, FakeSlack, Posted
from test_end_to_end import AT_RISK, ROOT, Stack, _worker_ready, until, write_customer

from retention.runtime.devserver import free_port, start_dev_server, stop
from retention.store.csm_tasks import list_tasks
from retention.store.db import make_engine
from retention.store.tables import CsmTaskRow

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]

COMPANY = "9001"


@pytest.fixture
def crm_stack(
    tmp_path: Path, hubspot: FakeHubSpot, fake_slack: FakeSlack
) -> Iterator[tuple[Stack, Path]]:
    port = free_port()
    server = start_dev_server(tmp_path / "temporal.db", port=port, ui_port=free_port())
    env = {
        **os.environ,
        "RETENTION_TEMPORAL_ADDRESS": f"127.0.0.1:{port}",
        "RETENTION_DATABASE_URL": f"sqlite:///{tmp_path / 'retention.db'}",
        "RETENTION_OUTBOX_DIR": str(tmp_path / "outbox"),
        "RETENTION_MODEL_DIR": "baseline",
        "RETENTION_METRICS_ADDRESS": "",
        "RETENTION_HEALTH_ADDRESS": "",
        "RETENTION_HUBSPOT_ACCESS_TOKEN": hubspot.token,
        "RETENTION_HUBSPOT_CLIENT_SECRET": "hubspot-app-client-secret",
        "RETENTION_HUBSPOT_BASE_URL": hubspot.url,
        "RETENTION_CRM_OWNER_IDS": '{"csm-jordan": "7001"}',
        "RETENTION_HUBSPOT_PORTAL_ID": "4242",  # so each task has its HubSpot link
        "RETENTION_SLACK_BOT_TOKEN": fake_slack.token,
        "RETENTION_SLACK_CHANNEL": TEAM_CHANNEL,
        "RETENTION_SLACK_BASE_URL": fake_slack.url,
        "COLUMNS": "250",
    }
    log = tmp_path / "worker.log"
    worker: subprocess.Popen[bytes] | None = None
    try:
        with log.open("wb") as out:
            worker = subprocess.Popen(
                [sys.executable, "worker.py"], cwd=ROOT, env=env, stdout=out, stderr=out
            )
        until(lambda: _worker_ready(worker, log), "worker.py to poll", seconds=60)
        yield Stack(address=f"127.0.0.1:{port}", env=env, tmp=tmp_path), log
    finally:
        if worker is not None:
            stop(worker)
        stop(server)


def test_a_critical_journeys_tasks_appear_in_hubspot_its_alerts_in_slack_and_complete_there(
    crm_stack: tuple[Stack, Path], hubspot: FakeHubSpot, fake_slack: FakeSlack
) -> None:
    stack, log = crm_stack
    engine = make_engine(stack.env["RETENTION_DATABASE_URL"])
    critical = {**AT_RISK, "profile": {**AT_RISK["profile"], "crm_account_id": COMPANY}}

    stack.cli("start", str(write_customer(stack, "acme", critical)))
    tasks = until(
        lambda: [
            t for t in list_tasks(engine, customer_id="acme-crit") if t.crm_status == "synced"
        ],
        "a CSM task synced to HubSpot",
        seconds=180,
    )
    task = tasks[0]
    made = hubspot.tasks[task.idempotency_key]
    alerted = until(
        lambda: linking(fake_slack, list_tasks(engine, customer_id="acme-crit")),
        "a Slack alert linking its HubSpot task",
        seconds=120,
    )
    done = stack.cli("tasks", "complete", str(task.id), "--by", "csm-jordan")

    assert made.crm_id == task.crm_id and ("companies", COMPANY) in made.associations
    assert made.fields["hubspot_owner_id"] == "7001"
    ours = list_tasks(engine, customer_id="acme-crit", status="all")
    assert {t.idempotency_key for t in ours if t.crm_status} == set(hubspot.tasks)
    assert f"hubspot task {task.crm_id} closed" in done.stdout
    assert made.fields["hs_task_status"] == "COMPLETED"
    text = log.read_text()
    assert "crm-sync schedule created" in text and "CSM tasks: also in hubspot" in text
    assert hubspot.token not in text and fake_slack.token not in text
    assert [m.channel for m in alerted] == [TEAM_CHANNEL]  # the alert_csm step's, once


def linking(slack: FakeSlack, tasks: list[CsmTaskRow]) -> list[Posted]:
    """The Slack messages that link one of `tasks` in the CRM."""
    links = [t.crm_url for t in tasks if t.crm_url]
    return [m for m in slack.messages() if any(link in m.text for link in links)]
