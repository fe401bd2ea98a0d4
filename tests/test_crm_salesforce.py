"""CSM tasks in Salesforce: a Task upserted on its External ID through simple-salesforce against
a fake Salesforce (TLS, as the SDK only speaks https) that checks what the real REST API takes;
an answer lost mid-send, a busy org and a bad token; completions read back by the poll."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from crm_world import OWNERS, crm_customer, file_task, push_and_kill, reload
from fake_crm import FakeSalesforce
from pydantic import SecretStr
from sqlalchemy import Engine

from retention.crm.salesforce import SalesforceCrm
from retention.crm.sync import LEASE, CrmSync
from retention.store.csm_tasks import complete_task
from retention.store.db import make_engine
from retention.store.tables import utcnow

pytestmark = pytest.mark.database

ACCOUNT, CONTACT = "001000000000001AAA", "003000000000001AAA"


def sync_to(
    engine: Engine, fake: FakeSalesforce, token: str | None = None, timeout: float = 5.0
) -> CrmSync:
    crm = SalesforceCrm(fake.url, SecretStr(token or fake.token), timeout)
    return CrmSync(engine, crm, OWNERS)


def test_a_filed_task_becomes_one_task_on_the_account_owned_by_the_csm(
    engine: Engine, tmp_path: Path, salesforce: FakeSalesforce
) -> None:
    task = file_task(engine, tmp_path, crm_customer(ACCOUNT, CONTACT))
    sync = sync_to(engine, salesforce)

    sync.push_due()
    sync.push_due()

    [made] = salesforce.tasks.values()
    assert made.key == task.idempotency_key
    assert made.fields["WhatId"] == ACCOUNT and made.fields["WhoId"] == CONTACT
    assert made.fields["OwnerId"] == "7001" and made.fields["Status"] == "Not Started"
    assert made.fields["Subject"] == task.summary
    assert made.fields["ActivityDate"] == task.due_at.date().isoformat()
    assert len(salesforce.writes()) == 1
    pushed = reload(engine, task)
    assert (pushed.crm_provider, pushed.crm_status, pushed.crm_id) == (
        "salesforce",
        "synced",
        made.crm_id,
    )
    assert pushed.crm_url == f"{salesforce.url}/lightning/r/Task/{made.crm_id}/view"


def test_an_answer_lost_mid_send_is_pushed_again_onto_the_same_task(
    engine: Engine, tmp_path: Path, salesforce: FakeSalesforce
) -> None:
    task = file_task(engine, tmp_path, crm_customer(ACCOUNT))
    salesforce.hold_next()  # Salesforce makes the Task; its answer never comes in time

    [lost] = sync_to(engine, salesforce, timeout=0.5).push_due()
    salesforce.release()
    [again] = sync_to(engine, salesforce).push_due(now=lost.retry_at)

    assert lost.status == "pending" and "unreachable" in str(lost.error)
    assert again.status == "synced" and len(salesforce.tasks) == 1
    assert len(salesforce.writes()) == 2
    assert reload(engine, task).crm_id == next(iter(salesforce.tasks.values())).crm_id


def test_a_push_repeated_after_the_pusher_was_killed_mid_send_updates_the_same_task(
    tmp_path: Path, salesforce: FakeSalesforce
) -> None:
    url = f"sqlite:///{tmp_path / 'crash.db'}"
    engine = make_engine(url)
    task = file_task(engine, tmp_path, crm_customer(ACCOUNT))
    keys = {
        "INSTANCE_URL": salesforce.url,
        "CLIENT_ID": salesforce.client_id,
        "CLIENT_SECRET": salesforce.client_secret,
    }

    push_and_kill(url, salesforce, {f"SALESFORCE_{name}": value for name, value in keys.items()})
    killed = reload(engine, task)
    [again] = sync_to(engine, salesforce).push_due(now=utcnow() + LEASE + timedelta(seconds=1))

    assert killed.crm_status == "pending" and killed.crm_attempts == 1
    [made] = salesforce.tasks.values()
    assert again.status == "synced" and again.crm_id == made.crm_id
    assert len(salesforce.writes()) == 2  # sent twice, made once


def test_a_busy_org_is_waited_for_then_the_task_is_made(
    engine: Engine, tmp_path: Path, salesforce: FakeSalesforce
) -> None:
    task = file_task(engine, tmp_path, crm_customer(ACCOUNT))
    salesforce.fail_next(salesforce.busy(retry_after=120))
    now = utcnow()

    [busy] = sync_to(engine, salesforce).push_due(now=now)
    [done] = sync_to(engine, salesforce).push_due(now=now + timedelta(seconds=121))

    assert busy.status == "pending" and busy.retry_at == now + timedelta(seconds=120)
    assert "Salesforce answered 503: SERVER_UNAVAILABLE" in str(busy.error)
    assert done.status == "synced" and len(salesforce.tasks) == 1
    assert reload(engine, task).crm_attempts == 2


def test_a_bad_token_is_final_and_never_recorded(
    engine: Engine, tmp_path: Path, salesforce: FakeSalesforce
) -> None:
    task = file_task(engine, tmp_path, crm_customer(ACCOUNT))

    [refused] = sync_to(engine, salesforce, token="00Dstale!token").push_due()
    later = sync_to(engine, salesforce).push_due(now=utcnow() + LEASE * 10)

    assert refused.status == "failed" and later == []
    failed = reload(engine, task)
    assert (
        failed.crm_error
        == "Salesforce answered 401: INVALID_SESSION_ID: Session expired or invalid"
    )
    assert salesforce.tasks == {}


def test_a_refused_field_is_final_and_named(
    engine: Engine, tmp_path: Path, salesforce: FakeSalesforce
) -> None:
    file_task(engine, tmp_path, crm_customer("003notAnAccount"))

    [refused] = sync_to(engine, salesforce).push_due()

    assert refused.status == "failed"
    assert "FIELD_INTEGRITY_EXCEPTION: WhatId: not an Account (fields WhatId)" in str(refused.error)


def test_completing_a_task_here_closes_it_in_salesforce(
    engine: Engine, tmp_path: Path, salesforce: FakeSalesforce
) -> None:
    task = file_task(engine, tmp_path, crm_customer(ACCOUNT))
    sync = sync_to(engine, salesforce)
    sync.push_due()
    assert task.id is not None

    complete_task(engine, task.id, "csm-jordan", None)
    sync.push_due()

    [made] = salesforce.tasks.values()
    assert made.fields["Status"] == "Completed" and len(salesforce.writes()) == 2
