"""CSM tasks in HubSpot: created once through the official SDK against a fake HubSpot that
checks what the real API takes, retried after a 429's Retry-After, refused for good on a bad
token (and shown so), closed there when completed here."""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path

import pytest
from conftest import RULES_DIR
from crm_world import OWNERS, crm_customer, file_task, push_and_kill, reload
from factories import customer_data, make_request, make_step
from fake_crm import FakeHubSpot
from fake_providers import Answer
from pydantic import SecretStr, ValidationError
from sqlalchemy import Engine
from typer.testing import CliRunner

import starter
from activities.deliver import DeliverActivities
from cli.app import console
from retention.crm.hubspot import HubSpotCrm
from retention.crm.sync import LEASE, CrmSync, crm_from
from retention.customer import parse_customer
from retention.errors import InvalidInput
from retention.plan import PlanStep
from retention.rulebook.source import RulebookSource
from retention.runtime.settings import Settings
from retention.store.csm_tasks import complete_task, list_tasks
from retention.store.db import make_engine
from retention.store.tables import utcnow

pytestmark = pytest.mark.database

ACCOUNT, CONTACT = "9001", "5501"  # the customer's HubSpot company and the champion's contact


def csm_step() -> PlanStep:
    return make_step("executive_call", channel="csm_task", fallback_channel="internal", owner="csm")


def sync_to(engine: Engine, fake: FakeHubSpot, token: str | None = None) -> CrmSync:
    crm = HubSpotCrm(SecretStr(token or fake.token), fake.url, "4242", timeout=5.0)
    return CrmSync(engine, crm, OWNERS)


def test_a_filed_task_is_created_once_on_the_company_and_the_named_contact(
    engine: Engine, tmp_path: Path, hubspot: FakeHubSpot
) -> None:
    task = file_task(engine, tmp_path, crm_customer(ACCOUNT, CONTACT))
    sync = sync_to(engine, hubspot)

    sync.push_due()
    sync.push_due()  # nothing is due any more

    [made] = hubspot.tasks.values()
    assert made.key == task.idempotency_key
    assert made.fields["hs_task_subject"] == task.summary
    assert made.fields["hs_task_status"] == "NOT_STARTED"
    assert made.fields["hubspot_owner_id"] == "7001"  # csm-jordan, mapped
    assert made.associations == {("companies", ACCOUNT), ("contacts", CONTACT)}
    assert len(hubspot.writes()) == 3  # the upsert and two associations, once
    pushed = reload(engine, task)
    assert (pushed.crm_provider, pushed.crm_status, pushed.crm_attempts) == ("hubspot", "synced", 1)
    assert pushed.crm_id == made.crm_id and pushed.crm_error is None
    assert pushed.crm_url == f"https://app.hubspot.com/contacts/4242/record/0-27/{made.crm_id}"


def test_a_push_repeated_after_the_pusher_was_killed_mid_send_makes_no_second_task(
    tmp_path: Path, hubspot: FakeHubSpot
) -> None:
    url = f"sqlite:///{tmp_path / 'crash.db'}"
    engine = make_engine(url)
    task = file_task(engine, tmp_path, crm_customer(ACCOUNT))
    keys = {"ACCESS_TOKEN": hubspot.token, "CLIENT_SECRET": "s", "BASE_URL": hubspot.url}

    push_and_kill(url, hubspot, {f"HUBSPOT_{name}": value for name, value in keys.items()})
    killed = reload(engine, task)
    sync_to(engine, hubspot).push_due(now=utcnow() + LEASE + timedelta(seconds=1))

    assert killed.crm_status == "pending" and killed.crm_attempts == 1  # the attempt shows
    [made] = hubspot.tasks.values()
    upserts = [r for r in hubspot.writes() if r.path.endswith("/batch/upsert")]
    assert len(upserts) == 2  # sent twice, made once
    pushed = reload(engine, task)
    assert (pushed.crm_status, pushed.crm_id, pushed.crm_attempts) == ("synced", made.crm_id, 2)


def test_a_429_waits_for_its_retry_after_then_the_task_is_made(
    engine: Engine, tmp_path: Path, hubspot: FakeHubSpot
) -> None:
    task = file_task(engine, tmp_path, crm_customer(ACCOUNT))
    sync = sync_to(engine, hubspot)
    hubspot.fail_next(hubspot.busy(retry_after=30))
    now = utcnow()

    sync.push_due(now=now)
    waiting = reload(engine, task)
    early = sync.push_due(now=now + timedelta(seconds=20))
    later = sync.push_due(now=now + timedelta(seconds=31))

    assert waiting.crm_status == "pending"
    assert waiting.crm_retry_at == now + timedelta(seconds=30)
    assert "HubSpot answered 429: You have reached your secondly limit" in str(waiting.crm_error)
    assert early == [] and [r.status for r in later] == ["synced"]
    assert len(hubspot.tasks) == 1
    assert reload(engine, task).crm_attempts == 2


def test_a_bad_token_is_final_and_tasks_list_shows_why(
    tmp_path: Path, hubspot: FakeHubSpot, cli_database: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine = make_engine(cli_database)
    task = file_task(engine, tmp_path, crm_customer(ACCOUNT))
    sync = sync_to(engine, hubspot, token="pat-na1-revoked-token")

    [result] = sync.push_due()
    again = sync.push_due(now=utcnow() + timedelta(days=1))
    monkeypatch.setattr(console, "_width", 300)
    listed = CliRunner().invoke(starter.app, ["tasks", "list"])

    assert result.status == "failed" and again == []
    failed = reload(engine, task)
    assert failed.crm_status == "failed" and hubspot.tasks == {}
    assert "HubSpot answered 401: Authentication credentials not found" in str(failed.crm_error)
    assert "revoked" not in str(failed.crm_error)
    assert listed.exit_code == 0, listed.output
    assert "failed: HubSpot answered 401" in listed.stdout


def test_a_customer_without_a_crm_company_is_failed_naming_the_field(
    engine: Engine, tmp_path: Path, hubspot: FakeHubSpot
) -> None:
    task = file_task(engine, tmp_path, crm_customer(None))

    sync_to(engine, hubspot).push_due()

    failed = reload(engine, task)
    assert failed.crm_status == "failed" and "profile.crm_account_id" in str(failed.crm_error)
    assert hubspot.received == []


def test_an_unreachable_hubspot_is_retried_later(engine: Engine, tmp_path: Path) -> None:
    task = file_task(engine, tmp_path, crm_customer(ACCOUNT))
    gone = FakeHubSpot().start()
    gone.stop()  # nothing listens on its port any more

    [result] = sync_to(engine, gone).push_due()

    assert result.status == "pending" and result.retry_at is not None
    assert "HubSpot unreachable" in str(reload(engine, task).crm_error)


def test_completing_a_task_here_closes_it_in_hubspot(
    engine: Engine, tmp_path: Path, hubspot: FakeHubSpot
) -> None:
    task = file_task(engine, tmp_path, crm_customer(ACCOUNT))
    sync = sync_to(engine, hubspot)
    sync.push_due()
    assert task.id is not None

    complete_task(engine, task.id, "csm-jordan", "called Dana")
    due = reload(engine, task).crm_status
    sync.push_due()

    assert due == "pending"
    [made] = hubspot.tasks.values()
    assert made.fields["hs_task_status"] == "COMPLETED"
    assert reload(engine, task).crm_status == "synced"


# ---- settings -------------------------------------------------------------------------------


def test_a_half_configured_hubspot_is_refused_naming_what_is_missing() -> None:
    with pytest.raises(
        ValidationError, match="HubSpot is half configured: set RETENTION_HUBSPOT_CLIENT_SECRET"
    ) as refused:
        Settings(hubspot_access_token=SecretStr("pat-na1-secret-token"))

    assert "pat-na1-secret-token" not in str(refused.value)


def test_two_crms_at_once_are_refused() -> None:
    with pytest.raises(ValidationError, match="both HubSpot and Salesforce"):
        Settings(
            hubspot_access_token=SecretStr("t"),
            hubspot_client_secret=SecretStr("s"),
            salesforce_instance_url="https://acme.my.salesforce.com",
            salesforce_access_token=SecretStr("x"),
        )


def test_a_configured_hubspot_is_live_and_capture_mode_pushes_nowhere() -> None:
    keys = {"hubspot_access_token": SecretStr("t"), "hubspot_client_secret": SecretStr("s")}

    live = Settings(**keys)  # type: ignore[arg-type]
    captured = Settings(**keys, delivery_mode="capture")  # type: ignore[arg-type]

    assert live.delivery_mode == "live" and isinstance(crm_from(live), HubSpotCrm)
    assert crm_from(captured) is None and crm_from(Settings()) is None


def test_tasks_complete_closes_the_hubspot_task_at_once(
    tmp_path: Path, hubspot: FakeHubSpot, cli_database: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine = make_engine(cli_database)
    task = file_task(engine, tmp_path, crm_customer(ACCOUNT))
    sync_to(engine, hubspot).push_due()
    for name, value in {
        "HUBSPOT_ACCESS_TOKEN": hubspot.token,
        "HUBSPOT_CLIENT_SECRET": "app-secret",
        "HUBSPOT_BASE_URL": hubspot.url,
        "TEMPORAL_ADDRESS": "127.0.0.1:1",  # no journey to tell here
    }.items():
        monkeypatch.setenv(f"RETENTION_{name}", value)

    done = CliRunner().invoke(
        starter.app, ["tasks", "complete", str(task.id), "--by", "csm-jordan"]
    )

    assert done.exit_code == 0, done.output
    [made] = hubspot.tasks.values()
    assert f"hubspot task {made.crm_id} closed" in done.stdout
    assert made.fields["hs_task_status"] == "COMPLETED"
    assert reload(engine, task).crm_status == "synced"


def test_a_hubspot_outage_never_fails_the_deliver_step(engine: Engine, tmp_path: Path) -> None:
    gone = FakeHubSpot().start()
    gone.stop()
    crm = CrmSync(engine, HubSpotCrm(SecretStr(gone.token), gone.url, None, 5.0))
    activities = DeliverActivities(engine, tmp_path, RulebookSource(RULES_DIR), crm=crm)
    request = make_request(csm_step(), crm_customer(ACCOUNT))

    receipt = activities.deliver(request)

    assert receipt.channel == "csm_task" and not receipt.duplicate
    [task] = list_tasks(engine)
    assert task.crm_status == "pending" and "HubSpot unreachable" in str(task.crm_error)


def test_an_answer_without_the_task_is_asked_again(
    engine: Engine, tmp_path: Path, hubspot: FakeHubSpot
) -> None:
    file_task(engine, tmp_path, crm_customer(ACCOUNT))
    empty = {"status": "COMPLETE", "results": [], "startedAt": "2026-12-03T08:00:00Z",
             "completedAt": "2026-12-03T08:00:00Z"}  # fmt: skip
    hubspot.fail_next(Answer(200, empty))

    [result] = sync_to(engine, hubspot).push_due()

    assert result.status == "pending" and result.error == "HubSpot answered without the task"


@pytest.mark.parametrize(
    ("where", "bad"),
    [
        ({"profile": {"crm_account_id": "9001; DROP"}}, "profile.crm_account_id"),
        ({"contacts": [{"contact_id": "dana", "name": "Dana", "email": "d@acme.example",
                        "crm_contact_id": "../55"}]}, "contacts.0 ('dana').crm_contact_id"),
    ],
)  # fmt: skip
def test_a_crm_id_that_is_not_letters_and_digits_is_refused_naming_the_field(
    where: dict[str, object], bad: str
) -> None:
    with pytest.raises(InvalidInput, match=re.escape(bad)):
        parse_customer(customer_data(**where))


def test_a_refused_push_is_made_again_with_crm_retry_once_the_token_is_fixed(
    tmp_path: Path, hubspot: FakeHubSpot, cli_database: str
) -> None:
    engine = make_engine(cli_database)
    task = file_task(engine, tmp_path, crm_customer(ACCOUNT))
    sync_to(engine, hubspot, token="pat-na1-revoked-token").push_due()

    retried = CliRunner().invoke(starter.app, ["tasks", "crm-retry"])
    nothing = CliRunner().invoke(starter.app, ["tasks", "crm-retry", str(task.id)])
    [result] = sync_to(engine, hubspot).push_due()

    assert retried.exit_code == 0 and "1 task(s) due a CRM push again" in retried.stdout
    assert nothing.exit_code == 2 and "no failed CRM push to retry" in nothing.stderr
    assert result.status == "synced" and len(hubspot.tasks) == 1


def test_an_answer_the_sdk_cannot_read_is_retried_and_the_sweep_goes_on(
    engine: Engine, tmp_path: Path, hubspot: FakeHubSpot
) -> None:
    odd = file_task(engine, tmp_path, crm_customer(ACCOUNT))
    fine = file_task(engine, tmp_path, crm_customer(ACCOUNT), action="csm_checkin")
    hubspot.fail_next(Answer(200, {"status": "COMPLETE", "results": 5}))

    results = sync_to(engine, hubspot).push_due()

    assert [r.status for r in results] == ["pending", "synced"]
    assert reload(engine, odd).crm_error == "hubspot: unexpected TypeError"
    assert reload(engine, fine).crm_status == "synced"
