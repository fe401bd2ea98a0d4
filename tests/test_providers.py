"""Live delivery through SendGrid and Twilio (their SDKs, against local fakes): the answers are
classified, every attempt is recorded, and a step is delivered exactly once."""

from __future__ import annotations

import logging
import os
import stat
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from conftest import RULES_DIR
from factories import count, make_customer, make_request, make_step
from fake_providers import FakeProvider, FakeSendGrid, FakeTwilio
from pydantic import ValidationError
from sqlalchemy import Engine
from sqlmodel import col, select
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from activities.deliver import DeliverActivities
from retention.delivery import live
from retention.delivery.alerting import alert_poster_from
from retention.delivery.providers import (
    Provider,
    providers_from,
    retry_after,
)
from retention.delivery.requests import DeliverRequest, DeliveryReceipt
from retention.plan import Channel
from retention.rulebook.source import RulebookSource
from retention.runtime.settings import Settings, settings_problem
from retention.store.db import session
from retention.store.tables import DeliveryAttemptRow, InterventionRow, OutboxRow

pytestmark = pytest.mark.database

PHONE = "+14155550100"
SMS_STEP = make_step("usage_tips", channel="sms", fallback_channel="email")


class Live:
    """The deliver activity in live mode, run as Temporal runs it."""

    def __init__(self, engine: Engine, outbox: Path, providers: Mapping[Channel, Provider]):
        self.engine, self.outbox = engine, outbox
        self.activities = DeliverActivities(engine, outbox, RulebookSource(RULES_DIR), providers)

    def deliver(self, request: DeliverRequest) -> DeliveryReceipt:
        result: DeliveryReceipt = ActivityEnvironment().run(self.activities.deliver, request)
        return result

    def refusal(self, request: DeliverRequest) -> ApplicationError:
        with pytest.raises(ApplicationError) as refused:
            self.deliver(request)
        return refused.value

    def attempts(self, key: str) -> list[DeliveryAttemptRow]:
        with session(self.engine) as db:
            query = select(DeliveryAttemptRow).where(DeliveryAttemptRow.idempotency_key == key)
            return list(db.exec(query.order_by(col(DeliveryAttemptRow.id))).all())

    def row(self, key: str) -> OutboxRow:
        with session(self.engine) as db:
            return db.exec(select(OutboxRow).where(OutboxRow.idempotency_key == key)).one()


@pytest.fixture
def live_mode(
    engine: Engine, tmp_path: Path, fake_sendgrid: FakeSendGrid, fake_twilio: FakeTwilio
) -> Live:
    providers = {"email": fake_sendgrid.provider(), "sms": fake_twilio.provider()}
    return Live(engine, tmp_path / "outbox", providers)


def sms_request(**fields: Any) -> DeliverRequest:
    return make_request(SMS_STEP, make_customer(profile={"phone": PHONE}), **fields)


@dataclass
class OneChannel:
    """A test's channel, the fake that takes it and a request for a step on it."""

    channel: Channel
    fake: FakeProvider
    request: DeliverRequest


@pytest.fixture(params=["email", "sms"])
def on(
    request: pytest.FixtureRequest, fake_sendgrid: FakeSendGrid, fake_twilio: FakeTwilio
) -> OneChannel:
    if request.param == "email":
        return OneChannel("email", fake_sendgrid, make_request())
    return OneChannel("sms", fake_twilio, sms_request())


def test_email_goes_out_with_both_parts_and_the_key(
    live_mode: Live, fake_sendgrid: FakeSendGrid
) -> None:
    customer = make_customer(profile={"company": "<script>alert(1)</script> & Co"})
    request = make_request(customer=customer)

    receipt = live_mode.deliver(request)

    [sent] = fake_sendgrid.received
    key = request.idempotency_key
    assert (receipt.mode, receipt.provider, receipt.duplicate) == ("live", "sendgrid", False)
    assert receipt.provider_message_id == fake_sendgrid.messages[key]
    assert sent.key == key and sent.body["custom_args"] == {"idempotency_key": key}
    assert sent.body["personalizations"][0]["to"] == [{"email": "dana@acme.example"}]
    assert sent.body["from"] == {"email": "success@ourapp.example"}
    text, html = (part["value"] for part in sent.body["content"])
    assert "<script>alert(1)</script> & Co" in text
    assert "&lt;script&gt;alert(1)&lt;/script&gt; &amp; Co" in html and "<script>" not in html
    assert html.startswith("<p>")
    row = live_mode.row(key)
    assert (row.status, row.provider_message_id, row.path) == (
        "sent",
        receipt.provider_message_id,
        "",
    )
    with session(live_mode.engine) as db:
        assert db.exec(select(InterventionRow.status)).one() == "sent"


def test_sms_goes_out_through_twilio(live_mode: Live, fake_twilio: FakeTwilio) -> None:
    receipt = live_mode.deliver(sms_request())

    [sent] = fake_twilio.received
    assert sent.body["To"] == PHONE and sent.body["From"] == "+15005550006"
    assert sent.body["Body"].startswith("Hi Dana")
    assert sent.key == receipt.idempotency_key
    assert receipt.provider == "twilio" and receipt.provider_message_id.startswith("SM")


def test_429_then_accepted_is_one_message_after_retry_after(
    live_mode: Live, on: OneChannel
) -> None:
    fake, request = on.fake, on.request
    fake.fail_next(fake.busy(retry_after=7))

    busy = live_mode.refusal(request)
    receipt = live_mode.deliver(request)

    assert (busy.type, busy.non_retryable) == ("ProviderUnavailable", False)
    assert busy.next_retry_delay == timedelta(seconds=7)
    assert "429" in busy.message
    assert fake.message_count == 1 and len(fake.received) == 2
    attempts = live_mode.attempts(request.idempotency_key)
    assert [(a.outcome, a.status_code) for a in attempts] == [
        ("retryable", 429),
        ("delivered", 202 if on.channel == "email" else 201),
    ]
    assert attempts[1].provider_message_id == receipt.provider_message_id


def test_500_then_accepted_is_one_message(live_mode: Live, fake_sendgrid: FakeSendGrid) -> None:
    fake_sendgrid.fail_next(fake_sendgrid.broken())
    request = make_request()

    broken = live_mode.refusal(request)
    live_mode.deliver(request)
    again = live_mode.deliver(request)

    assert broken.type == "ProviderUnavailable" and broken.next_retry_delay is None
    assert again.duplicate and fake_sendgrid.message_count == 1
    assert len(fake_sendgrid.received) == 2  # the duplicate never reached the provider


def test_invalid_email_goes_to_the_fallback_channel_without_retry(
    live_mode: Live, fake_sendgrid: FakeSendGrid
) -> None:
    fake_sendgrid.fail_next(fake_sendgrid.invalid_recipient())
    request = make_request()  # email, fallback in_app

    receipt = live_mode.deliver(request)
    again = live_mode.deliver(request)

    key = request.idempotency_key
    assert (receipt.channel, receipt.fallback_used, receipt.mode) == ("in_app", True, "capture")
    assert receipt.idempotency_key == f"{key}:fallback"
    assert again.duplicate and again.outbox_id == receipt.outbox_id
    assert len(fake_sendgrid.received) == 1 and fake_sendgrid.message_count == 0
    assert [a.outcome for a in live_mode.attempts(key)] == ["invalid_recipient"]
    assert live_mode.row(key).status == "invalid_recipient"
    assert Path(receipt.path).name == "g1-01-retention_offer.fallback.txt"
    with session(live_mode.engine) as db:
        assert db.exec(select(InterventionRow.outbox_id)).one() == receipt.outbox_id


def test_invalid_number_falls_back_to_live_email(
    live_mode: Live, fake_sendgrid: FakeSendGrid, fake_twilio: FakeTwilio
) -> None:
    fake_twilio.fail_next(fake_twilio.invalid_recipient())

    receipt = live_mode.deliver(sms_request())

    assert (receipt.channel, receipt.provider, receipt.fallback_used) == ("email", "sendgrid", True)
    assert fake_sendgrid.message_count == 1 and fake_twilio.message_count == 0


def test_invalid_recipient_without_fallback_is_final(
    live_mode: Live, fake_twilio: FakeTwilio
) -> None:
    fake_twilio.fail_next(fake_twilio.invalid_recipient())
    step = SMS_STEP.model_copy(update={"fallback_channel": None})
    request = make_request(step, make_customer(profile={"phone": PHONE}))

    refused = live_mode.refusal(request)
    again = live_mode.refusal(request)

    assert (refused.type, refused.non_retryable) == ("InvalidRecipient", True)
    assert "21211" in refused.message and "no usable fallback" in refused.message
    assert again.type == "InvalidRecipient" and len(fake_twilio.received) == 1


def test_a_crash_between_send_and_outbox_update_sends_once(
    live_mode: Live, on: OneChannel, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake, request = on.fake, on.request
    mark_sent, crashes = live.mark_sent, []

    def crash_once(*args: Any) -> OutboxRow:
        if not crashes:
            crashes.append(1)
            raise RuntimeError("worker lost between the send and the outbox update")
        return mark_sent(*args)

    monkeypatch.setattr(live, "mark_sent", crash_once)

    with pytest.raises(RuntimeError, match="worker lost"):
        live_mode.deliver(request)
    assert live_mode.row(request.idempotency_key).status == "sending"
    receipt = live_mode.deliver(request)

    key = request.idempotency_key
    assert fake.keys_received() == [key, key] and fake.message_count == 1
    assert receipt.provider_message_id == fake.messages[key]
    attempts = live_mode.attempts(key)
    assert {a.provider_message_id for a in attempts} == {receipt.provider_message_id}
    assert count(live_mode.engine, InterventionRow) == 1


def test_wrong_credentials_are_refused_without_the_secret(
    engine: Engine, tmp_path: Path, on: OneChannel
) -> None:
    secret = "SG.wrong-but-secret-value" if on.channel == "email" else "wrong-secret-token"
    step = on.request.step.model_copy(update={"fallback_channel": None})
    request = on.request.model_copy(update={"step": step})

    refused = Live(engine, tmp_path, {on.channel: on.fake.provider(secret)}).refusal(request)

    assert (refused.type, refused.non_retryable) == ("ProviderRejected", True)
    assert "401" in refused.message
    chain: BaseException | None = refused
    while chain is not None:
        assert secret not in str(chain) and secret not in repr(getattr(chain, "args", ""))
        chain = chain.__cause__
    with session(engine) as db:
        [attempt] = db.exec(select(DeliveryAttemptRow)).all()
    assert attempt.outcome == "rejected" and secret not in (attempt.error or "")


def test_no_secret_reaches_the_logs_even_at_debug(
    live_mode: Live,
    fake_sendgrid: FakeSendGrid,
    fake_twilio: FakeTwilio,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("TWILIO_REGION", "au1")  # ignored: settings are the only source
    caplog.set_level(logging.DEBUG)

    live_mode.deliver(make_request())
    live_mode.deliver(sms_request())

    assert fake_sendgrid.message_count == fake_twilio.message_count == 1
    assert "Bearer ***" in caplog.text  # python_http_client logged its headers, masked
    assert fake_sendgrid.api_key not in caplog.text and fake_twilio.auth_token not in caplog.text


def test_held_out_messages_reach_no_provider(
    live_mode: Live, fake_sendgrid: FakeSendGrid, fake_twilio: FakeTwilio
) -> None:
    email = live_mode.deliver(make_request(held_out=True))
    sms = live_mode.deliver(sms_request(held_out=True))

    assert email.held_out and sms.held_out and email.mode == sms.mode == "capture"
    assert fake_sendgrid.received == [] and fake_twilio.received == []
    assert not live_mode.outbox.exists()


def test_other_channels_are_captured_owner_only_in_live_mode(
    live_mode: Live, fake_sendgrid: FakeSendGrid
) -> None:
    receipt = live_mode.deliver(make_request(make_step("executive_call", channel="csm_task")))

    path = Path(receipt.path)
    assert receipt.mode == "capture" and fake_sendgrid.received == []
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    for folder in (path.parent, live_mode.outbox):
        assert stat.S_IMODE(folder.stat().st_mode) == 0o700


def test_a_slow_provider_is_retried_with_the_same_key(
    engine: Engine, tmp_path: Path, on: OneChannel
) -> None:
    fake, request = on.fake, on.request
    slow = Live(engine, tmp_path, {on.channel: fake.provider(timeout=0.3)})
    fake.delay = 1.0

    timed_out = slow.refusal(request)
    fake.delay = 0.0
    receipt = slow.deliver(request)

    assert timed_out.type == "ProviderUnavailable" and "unreachable" in timed_out.message
    key = request.idempotency_key
    assert fake.keys_received() == [key, key] and fake.message_count == 1
    assert receipt.provider_message_id == fake.messages[key]


def test_an_unreachable_provider_is_retried(engine: Engine, tmp_path: Path) -> None:
    fake = FakeSendGrid().start()
    provider = fake.provider()
    fake.stop()  # nothing listens on its port any more

    refused = Live(engine, tmp_path, {"email": provider}).refusal(make_request())

    assert refused.type == "ProviderUnavailable" and "unreachable" in refused.message


def test_retry_after_reads_seconds_and_dates() -> None:
    now = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)
    assert retry_after("30") == timedelta(seconds=30)
    assert retry_after("Fri, 27 Nov 2026 12:01:30 GMT", now) == timedelta(seconds=90)
    assert retry_after("soon") is None and retry_after(None) is None


# ---- Settings ------------------------------------------------------------------------------

SLACK = {"RETENTION_SLACK_BOT_TOKEN": "xoxb-env-secret", "RETENTION_SLACK_CHANNEL": "C0TEAM0001"}
CREDENTIALS = {
    "RETENTION_SENDGRID_API_KEY": "SG.from-env",
    "RETENTION_EMAIL_FROM": "success@ourapp.example",
}


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> pytest.MonkeyPatch:
    for name in list(os.environ):
        if name.startswith(("RETENTION_", "TWILIO_", "SENDGRID_")):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)  # no .env
    return monkeypatch


def test_delivery_mode_is_capture_without_credentials(clean_env: pytest.MonkeyPatch) -> None:
    settings = Settings()
    assert settings.delivery_mode == "capture" and providers_from(settings) == {}


def test_delivery_mode_is_live_with_one_provider(clean_env: pytest.MonkeyPatch) -> None:
    for name, value in CREDENTIALS.items():
        clean_env.setenv(name, value)
    settings = Settings()
    assert settings.delivery_mode == "live"
    assert "SG.from-env" not in repr(settings) and "SG.from-env" not in str(settings.model_dump())
    assert [(c, p.name) for c, p in providers_from(settings).items()] == [("email", "sendgrid")]
    clean_env.setenv("RETENTION_DELIVERY_MODE", "capture")
    assert providers_from(Settings()) == {}


def test_secrets_come_from_a_secrets_dir(clean_env: pytest.MonkeyPatch, tmp_path: Path) -> None:
    secrets = tmp_path / "secrets"
    secrets.mkdir()
    (secrets / "retention_twilio_auth_token").write_text("tok-from-file\n")
    clean_env.setenv("RETENTION_TWILIO_ACCOUNT_SID", "AC123")
    clean_env.setenv("RETENTION_SMS_FROM", "+15005550006")

    settings = Settings(_secrets_dir=secrets)  # what get_settings passes RETENTION_SECRETS_DIR as

    assert settings.twilio_auth_token is not None
    assert settings.twilio_auth_token.get_secret_value() == "tok-from-file"
    assert settings.delivery_mode == "live"


@pytest.mark.parametrize(
    ("given", "named"),
    [
        ({"RETENTION_TWILIO_AUTH_TOKEN": "tok-secret"}, "RETENTION_TWILIO_ACCOUNT_SID"),
        ({"RETENTION_SENDGRID_API_KEY": "SG.secret"}, "RETENTION_EMAIL_FROM"),
        ({"RETENTION_DELIVERY_MODE": "live"}, "RETENTION_SENDGRID_API_KEY"),
        ({"RETENTION_SLACK_BOT_TOKEN": "xoxb-secret"}, "RETENTION_SLACK_CHANNEL"),
        ({"RETENTION_SLACK_CHANNEL": "C0TEAM0001"}, "RETENTION_SLACK_BOT_TOKEN"),
        ({"RETENTION_SLACK_CSM_CHANNELS": '{"csm_ana": "C0A"}'}, "RETENTION_SLACK_BOT_TOKEN"),
        ({**SLACK, "RETENTION_SLACK_CSM_CHANNELS": "{csm: C0A"}, "CHANNELS: Value error, not JSON"),
        ({**SLACK, "RETENTION_SLACK_CSM_CHANNELS": '["C0A"]'}, "CSM_CHANNELS: Input should be a"),
    ],
)
def test_incomplete_provider_settings_are_refused_without_secrets(
    clean_env: pytest.MonkeyPatch, given: dict[str, str], named: str
) -> None:
    for name, value in given.items():
        clean_env.setenv(name, value)
    with pytest.raises(ValidationError) as refused:
        Settings()
    assert named in settings_problem(refused.value)  # what worker.py prints
    assert "secret" not in str(refused.value)


def test_slack_alone_makes_delivery_live_with_alerts_and_capture_turns_them_off(
    engine: Engine,  # before clean_env: the database fixture reads RETENTION_TEST_DATABASE_URL
    clean_env: pytest.MonkeyPatch,
) -> None:
    for name, value in SLACK.items():
        clean_env.setenv(name, value)
    clean_env.setenv("RETENTION_SLACK_CSM_CHANNELS", '{"csm_ana": "C0ANA00001"}')
    settings = Settings()
    assert settings.delivery_mode == "live" and "xoxb-env-secret" not in repr(settings)
    poster = alert_poster_from(settings, engine)
    assert poster is not None
    assert poster.journey_url("journey acme") == (
        "http://127.0.0.1:8233/namespaces/default/workflows/journey%20acme"
    )
    clean_env.setenv("RETENTION_DELIVERY_MODE", "capture")
    assert alert_poster_from(Settings(), engine) is None
