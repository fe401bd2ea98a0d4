"""Salesforce through a Connected App: the access token comes from the org's client-credentials
flow, is kept for the process, and is fetched again once when Salesforce says the session
expired; a wrong client secret is final, shown by `tasks list`, and never written anywhere."""

from __future__ import annotations

import base64
import logging
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from pathlib import Path

import pytest
from crm_world import OWNERS, crm_customer, file_task, reload
from fake_crm import FakeSalesforce
from pydantic import SecretStr, ValidationError
from sqlalchemy import Engine
from typer.testing import CliRunner

import starter
from cli.app import console
from retention.crm.poll import poll_completions
from retention.crm.salesforce import SalesforceCrm
from retention.crm.salesforce_login import ClientCredentials
from retention.crm.sync import CrmSync, crm_from
from retention.crm.tasks import CrmUnavailable
from retention.runtime.settings import Settings
from retention.store.db import make_engine
from retention.store.tables import utcnow

pytestmark = pytest.mark.database

ACCOUNT = "001000000000001AAA"
MY_DOMAIN = "https://acme.my.salesforce.com"


def app_crm(fake: FakeSalesforce, secret: str | None = None) -> SalesforceCrm:
    credentials = ClientCredentials(fake.client_id, SecretStr(secret or fake.client_secret))
    return SalesforceCrm(fake.url, credentials, 5.0)


def test_a_push_after_the_session_expired_logs_in_again_once_and_makes_one_task(
    engine: Engine, tmp_path: Path, salesforce: FakeSalesforce
) -> None:
    crm = app_crm(salesforce)
    poll_completions(engine, crm, utcnow())  # the worker's first poll logs in
    salesforce.expire_sessions()  # the org's session timeout passes
    task = file_task(engine, tmp_path, crm_customer(ACCOUNT))

    [pushed] = CrmSync(engine, crm, OWNERS).push_due()

    assert pushed.status == "synced"
    [made] = salesforce.tasks.values()
    assert made.key == task.idempotency_key and reload(engine, task).crm_id == made.crm_id
    first, renewed = salesforce.issued
    assert len(salesforce.logins()) == 2
    tokens = [r.headers["Authorization"] for r in salesforce.writes()]
    assert tokens == [f"Bearer {first}", f"Bearer {renewed}"]  # refused once, then made


def test_the_token_is_kept_for_the_process_not_fetched_per_call(
    engine: Engine, tmp_path: Path, salesforce: FakeSalesforce
) -> None:
    crm = app_crm(salesforce)
    for action in ("executive_call", "csm_checkin"):
        file_task(engine, tmp_path, crm_customer(ACCOUNT), action)

    pushed = CrmSync(engine, crm, OWNERS).push_due()
    poll_completions(engine, crm, utcnow())

    assert [p.status for p in pushed] == ["synced", "synced"]
    assert len(salesforce.logins()) == 1 and len(salesforce.tasks) == 2


def test_pushes_that_find_the_session_expired_at_once_share_one_new_login(
    engine: Engine, tmp_path: Path, salesforce: FakeSalesforce
) -> None:
    crm = app_crm(salesforce)
    poll_completions(engine, crm, utcnow())
    salesforce.expire_sessions()
    actions = ("executive_call", "csm_checkin", "success_plan", "value_review")
    tasks = [file_task(engine, tmp_path, crm_customer(ACCOUNT), a) for a in actions]
    sync, now = CrmSync(engine, crm, OWNERS), utcnow()

    with ThreadPoolExecutor(4) as pool:
        pushed = list(pool.map(lambda t: sync.push(t.id, now), tasks))

    assert [p.status for p in pushed if p] == ["synced"] * 4
    assert len(salesforce.logins()) == 2 and len(salesforce.tasks) == 4


def test_the_token_request_is_the_client_credentials_form_salesforce_expects(
    engine: Engine, tmp_path: Path, salesforce: FakeSalesforce
) -> None:
    poll_completions(engine, app_crm(salesforce), utcnow())

    [login] = salesforce.logins()
    basic = base64.b64encode(f"{salesforce.client_id}:{salesforce.client_secret}".encode())
    assert login.method == "POST" and login.path == "/services/oauth2/token"
    assert login.headers["Content-Type"] == "application/x-www-form-urlencoded"
    assert login.body == {"grant_type": "client_credentials"}
    assert login.headers["Authorization"] == f"Basic {basic.decode()}"


def test_a_wrong_client_secret_is_final_shown_and_never_written(
    tmp_path: Path,
    salesforce: FakeSalesforce,
    cli_database: str,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    engine = make_engine(cli_database)
    task = file_task(engine, tmp_path, crm_customer(ACCOUNT))
    wrong = "Wr0ngConsumerSecretWr0ng1234567"
    sync = CrmSync(engine, app_crm(salesforce, secret=wrong), OWNERS)

    [refused] = sync.push_due()
    again = sync.push_due(now=utcnow() + timedelta(days=1))
    monkeypatch.setattr(console, "_width", 300)
    listed = CliRunner().invoke(starter.app, ["tasks", "list"])
    shown = CliRunner().invoke(starter.app, ["tasks", "list", "--json"])

    assert refused.status == "failed" and again == [] and salesforce.tasks == {}
    failed = reload(engine, task)
    expected = "Salesforce refused the login (400): invalid_client: invalid client credentials"
    assert failed.crm_error == expected
    assert listed.exit_code == 0, listed.output
    assert "failed: Salesforce refused the login (400): invalid_client" in listed.stdout
    basic = base64.b64encode(f"{salesforce.client_id}:{wrong}".encode()).decode()
    for written in (caplog.text, listed.stdout, shown.stdout, str(refused.error)):
        assert wrong not in written and basic not in written


def test_a_poll_that_cannot_log_in_keeps_the_mark_and_says_why(
    engine: Engine, tmp_path: Path, salesforce: FakeSalesforce
) -> None:
    wrong = "Wr0ngConsumerSecretWr0ng1234567"

    with pytest.raises(CrmUnavailable) as refused:
        poll_completions(engine, app_crm(salesforce, secret=wrong), utcnow())

    assert "invalid_client" in str(refused.value) and wrong not in str(refused.value)


# ---- settings -------------------------------------------------------------------------------


def test_a_client_id_without_its_secret_is_refused_naming_what_is_missing() -> None:
    with pytest.raises(
        ValidationError,
        match="Salesforce is half configured: set RETENTION_SALESFORCE_CLIENT_SECRET \\[type",
    ):
        Settings(salesforce_instance_url=MY_DOMAIN, salesforce_client_id="3MVG9id")


def test_a_secret_without_the_org_url_is_refused_and_not_repeated() -> None:
    with pytest.raises(ValidationError) as refused:
        Settings(salesforce_client_secret=SecretStr("s3cr3t-consumer-secret"))

    assert "set RETENTION_SALESFORCE_INSTANCE_URL, RETENTION_SALESFORCE_CLIENT_ID" in str(
        refused.value
    )
    assert "s3cr3t-consumer-secret" not in str(refused.value)


def test_a_connected_app_and_a_static_token_at_once_are_refused() -> None:
    with pytest.raises(ValidationError, match="leave out RETENTION_SALESFORCE_ACCESS_TOKEN"):
        Settings(
            salesforce_instance_url=MY_DOMAIN,
            salesforce_client_id="3MVG9id",
            salesforce_client_secret=SecretStr("s"),
            salesforce_access_token=SecretStr("00D!t"),
        )


def test_a_connected_app_or_a_static_token_makes_salesforce_live() -> None:
    app = Settings(
        salesforce_instance_url=MY_DOMAIN,
        salesforce_client_id="3MVG9id",
        salesforce_client_secret=SecretStr("s"),
    )
    token = Settings(salesforce_instance_url=MY_DOMAIN, salesforce_access_token=SecretStr("t"))

    assert (app.delivery_mode, app.crm, token.crm) == ("live", "salesforce", "salesforce")
    assert isinstance(crm_from(app), SalesforceCrm) and isinstance(crm_from(token), SalesforceCrm)
