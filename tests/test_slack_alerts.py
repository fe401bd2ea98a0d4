"""CSM alerts in Slack, through the official slack_sdk pointed at tests/fake_slack.py: posted
once, rate limits honoured, refusals final and visible, a worker killed mid-post adopted."""

from __future__ import annotations

import dataclasses
import json
import logging
import subprocess
import sys
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from conftest import RULES_DIR, Database
from crm_world import OWNERS, crm_customer
from factories import make_customer, make_request, make_step
from fake_crm import FakeHubSpot
from fake_providers import Answer
from fake_slack import ANA_CHANNEL, TEAM_CHANNEL, FakeSlack
from pydantic import SecretStr
from sqlalchemy import Engine
from sqlmodel import col, select
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from activities.deliver import DeliverActivities
from activities.record import ALERT_TRIES, RecordActivities, RecordInput
from retention.crm.hubspot import HubSpotCrm
from retention.crm.sync import CrmSync
from retention.delivery.alerting import AlertPoster
from retention.delivery.alerts import CsmAlert
from retention.delivery.overdue import alert_overdue
from retention.delivery.requests import DeliverRequest, DeliveryReceipt
from retention.errors import ProviderUnavailable
from retention.journey_state import JourneyRecord
from retention.rulebook.source import RulebookSource
from retention.store.csm_tasks import list_tasks
from retention.store.db import session
from retention.store.records import save_customer
from retention.store.tables import ChurnPredictionRow, DeliveryAttemptRow, OutboxRow

ROOT = Path(__file__).resolve().parents[1]
UI = "http://temporal-ui.example:8233"


def an_alert(key: str = "jk-acme:g1-00-alert_csm:slack", csm: str | None = "csm_ana") -> CsmAlert:
    return CsmAlert(
        key=key,
        journey_key="jk-acme",
        journey_id="journey-acme",
        step_id="g1-00-alert_csm",
        customer_id="acme",
        customer_name="Acme Corp",
        csm=csm,
        headline="alert csm: Acme Corp",
        reason="critical_save journey; success: CSM acknowledged within 1 hour",
        risk_tier="critical",
        churn_probability=0.83,
        fired_rules=["timeline:critical"],
        drivers=["logins_30d_change +0.91", "open_tickets +0.40"],
        journey_url=f"{UI}/namespaces/default/workflows/journey-acme",
        crm_task_url="https://crm.example/tasks/T-17",
    )


def poster_for(
    engine: Engine, fake: FakeSlack, token: str | None = None, team_channel: str = TEAM_CHANNEL
) -> AlertPoster:
    return AlertPoster(engine, fake.provider(token, team_channel), UI, "default")


def attempts(engine: Engine, key: str) -> list[DeliveryAttemptRow]:
    query = select(DeliveryAttemptRow).where(col(DeliveryAttemptRow.idempotency_key) == key)
    with session(engine) as db:
        return list(db.exec(query.order_by(col(DeliveryAttemptRow.id))).all())


def row_of(engine: Engine, key: str) -> OutboxRow:
    with session(engine) as db:
        return db.exec(select(OutboxRow).where(OutboxRow.idempotency_key == key)).one()


def test_an_alert_is_posted_once_to_the_csms_channel_as_block_kit(
    engine: Engine, fake_slack: FakeSlack
) -> None:
    alert, poster = an_alert(), poster_for(engine, fake_slack)

    first = poster.post(alert)
    again = poster.post(alert)  # a retried activity, a replayed journey

    [message] = fake_slack.messages()
    assert message.channel == ANA_CHANNEL  # Ana has her own channel
    assert (first.status, first.provider, first.provider_message_id) == (
        "sent",
        "slack",
        message.ts,
    )
    assert (again.status, again.provider_message_id) == ("sent", message.ts)
    [call] = fake_slack.posts()  # the second post never reached Slack
    assert call.headers["Authorization"] == f"Bearer {fake_slack.token}"
    assert call.headers["Content-Type"].startswith("application/json")
    assert message.metadata == {
        "event_type": "retention_alert",
        "event_payload": {"idempotency_key": alert.key},
    }
    header, why, facts, actions = message.blocks
    assert header["text"]["text"] == "alert csm: Acme Corp"
    assert "CSM acknowledged" in why["text"]["text"]
    shown = " ".join(field["text"] for field in facts["fields"])
    for fact in ("critical", "83%", "timeline:critical", "logins_30d_change +0.91"):
        assert fact in shown
    assert [b["url"] for b in actions["elements"]] == [alert.journey_url, alert.crm_task_url]
    assert "Acme Corp" in message.text and alert.journey_url in message.text  # the fallback


def test_a_customer_name_is_shown_as_text_never_as_a_channel_mention(
    engine: Engine, fake_slack: FakeSlack
) -> None:
    name = "AT&T <!channel>"
    alert = an_alert().model_copy(update={"customer_name": name, "headline": f"alert: {name}"})

    poster_for(engine, fake_slack).post(alert)

    [message] = fake_slack.messages()
    fields = json.dumps(message.blocks[2]["fields"])
    assert "AT&amp;T &lt;!channel&gt;" in fields and "<!channel>" not in fields
    assert "AT&amp;T &lt;!channel&gt;" in message.text and "<!channel>" not in message.text
    assert message.blocks[0]["text"] == {"type": "plain_text", "text": f"alert: {name}"}


def test_a_csm_without_a_channel_of_their_own_is_alerted_in_the_team_channel(
    engine: Engine, fake_slack: FakeSlack
) -> None:
    poster_for(engine, fake_slack).post(an_alert(csm="csm_bo"))
    poster_for(engine, fake_slack).post(an_alert("jk-x:unassigned:slack", csm=None))

    assert [m.channel for m in fake_slack.messages()] == [TEAM_CHANNEL, TEAM_CHANNEL]


def test_a_rate_limited_alert_waits_as_slack_asks_then_is_posted_once(
    engine: Engine, fake_slack: FakeSlack
) -> None:
    alert, poster = an_alert(), poster_for(engine, fake_slack)
    fake_slack.fail_next(fake_slack.rate_limited(retry_after=7))

    with pytest.raises(ProviderUnavailable) as wait:
        poster.post(alert)
    assert wait.value.retry_after == timedelta(seconds=7)
    assert row_of(engine, alert.key).status == "sending" and fake_slack.messages() == []

    settled = poster.post(alert)  # the activity's retry, after Retry-After

    [message] = fake_slack.messages()
    assert (settled.status, settled.provider_message_id) == ("sent", message.ts)
    assert [(a.outcome, a.status_code) for a in attempts(engine, alert.key)] == [
        ("retryable", 429),
        ("delivered", 200),
    ]


def test_a_bad_token_is_final_and_visible_on_the_row_without_the_token(
    engine: Engine, fake_slack: FakeSlack
) -> None:
    alert, wrong = an_alert(), "xoxb-9999-wrong-token"

    refused = poster_for(engine, fake_slack, token=wrong).post(alert)
    again = poster_for(engine, fake_slack, token=wrong).post(alert)

    assert (refused.status, again.status) == ("rejected", "rejected")
    assert refused.note is not None and "invalid_auth" in refused.note
    assert fake_slack.messages() == [] and len(fake_slack.posts()) == 1  # never tried again
    [attempt] = attempts(engine, alert.key)
    assert wrong not in (attempt.error or "") and wrong not in refused.note


@pytest.mark.parametrize(
    ("answer", "outcome", "said"),
    [
        (Answer(500, {"ok": False, "error": "internal_error"}), "retryable", "internal_error"),
        (Answer(502, None), "retryable", "non-JSON"),  # a proxy's error page
        (Answer(200, {"ok": False, "error": "service_unavailable"}), "retryable", "unavailable"),
        (Answer(200, {"ok": False, "error": "not_in_channel"}), "invalid_recipient", "not_in"),
        (Answer(200, {"ok": False, "error": "is_archived"}), "invalid_recipient", "is_archived"),
        (Answer(200, {"ok": False, "error": "token_revoked"}), "rejected", "token_revoked"),
        (Answer(200, {"ok": False, "error": "msg_too_long"}), "rejected", "msg_too_long"),
    ],
)
def test_slacks_refusals_are_classified_by_their_error(
    fake_slack: FakeSlack, answer: Answer, outcome: str, said: str
) -> None:
    fake_slack.fail_next(answer)

    refused = fake_slack.provider().post(an_alert(), TEAM_CHANNEL)

    assert refused.outcome == outcome and said in (refused.error or "")


def test_an_unreachable_slack_is_retried_later(engine: Engine) -> None:
    closed = FakeSlack().start()
    closed.stop()  # nothing listens on its port any more
    with pytest.raises(ProviderUnavailable, match="Slack unreachable"):
        poster_for(engine, closed).post(an_alert())
    assert row_of(engine, an_alert().key).status == "sending"


def test_no_bot_token_reaches_the_logs_even_at_debug(
    engine: Engine, fake_slack: FakeSlack, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    wrong = "xoxb-9999-wrong-token"

    poster_for(engine, fake_slack).post(an_alert())
    poster_for(engine, fake_slack, token=wrong).post(an_alert("jk-other:slack"))

    assert "chat.postMessage" in caplog.text  # slack_sdk logged its requests
    assert fake_slack.token not in caplog.text and wrong not in caplog.text


def test_an_unknown_channel_is_refused_as_a_bad_recipient(
    engine: Engine, fake_slack: FakeSlack
) -> None:
    poster = poster_for(engine, fake_slack, team_channel="C0GONE0000")  # deleted since

    refused = poster.post(an_alert(csm="csm_bo"))

    assert refused.status == "invalid_recipient"
    assert refused.note is not None and "channel_not_found" in refused.note


def test_a_worker_killed_mid_post_leaves_one_message_which_the_retry_adopts(
    engine: Engine, fresh_database: Database, fake_slack: FakeSlack
) -> None:
    alert = an_alert()
    fake_slack.hold_next()  # Slack takes the message, the answer waits
    worker = subprocess.Popen(
        [sys.executable, "-c", KILLED_WORKER, fake_slack.url, fake_slack.token],
        cwd=ROOT,
        stdin=subprocess.PIPE,
        env={"PYTHONPATH": f"{ROOT}:{ROOT / 'tests'}", "PATH": ""},
    )
    assert worker.stdin is not None
    payload = {"url": fresh_database.url, "connect_args": fresh_database.connect_args}
    worker.stdin.write(json.dumps({**payload, "alert": alert.model_dump(mode="json")}).encode())
    worker.stdin.close()
    try:
        assert fake_slack.held.wait(timeout=60), "the worker never posted"
        worker.kill()  # SIGKILL between Slack's receipt and the outbox update
        worker.wait(timeout=30)
    finally:
        fake_slack.release()
    assert row_of(engine, alert.key).status == "sending" and attempts(engine, alert.key) == []

    settled = poster_for(engine, fake_slack).post(alert)  # the activity's retry

    [message] = fake_slack.messages()  # adopted, not posted again
    assert len(fake_slack.posts()) == 1
    assert (settled.status, settled.provider_message_id) == ("sent", message.ts)
    [attempt] = attempts(engine, alert.key)
    assert (attempt.outcome, attempt.provider_message_id) == ("delivered", message.ts)


# ---- steps on the `internal` channel, through the deliver activity ---------------------------


def alert_csm_request(**fields: object) -> DeliverRequest:
    step = make_step(
        "alert_csm",
        channel="internal",
        fallback_channel="csm_task",
        owner="internal",
        success_criteria="CSM acknowledged within 1 hour",
        source="timeline:critical",
    )
    return make_request(step, **fields)


@dataclass
class Desk:
    """The deliver activity with CSM alerts in Slack on, run as Temporal runs it."""

    engine: Engine
    outbox: Path
    poster: AlertPoster

    def deliver(self, request: DeliverRequest) -> DeliveryReceipt:
        activities = DeliverActivities(
            self.engine, self.outbox, RulebookSource(RULES_DIR), alerts=self.poster
        )
        result: DeliveryReceipt = ActivityEnvironment().run(activities.deliver, request)
        return result


@pytest.fixture
def desk(engine: Engine, tmp_path: Path, fake_slack: FakeSlack) -> Desk:
    return Desk(engine, tmp_path / "outbox", poster_for(engine, fake_slack))


def test_an_alert_csm_step_files_its_task_and_posts_one_alert_with_the_model_drivers(
    engine: Engine, desk: Desk, fake_slack: FakeSlack
) -> None:
    request = alert_csm_request()
    scored(engine, request.journey_id, {"days_since_last_login": 1.2, "seats_used_ratio": -0.4})

    first = desk.deliver(request)
    again = desk.deliver(request)  # the activity retried

    assert (first.channel, first.mode, again.duplicate) == ("internal", "capture", True)
    [task] = list_tasks(engine, customer_id=request.customer.customer_id)
    assert task.action == "alert_csm"  # the CSM's to-do, as without Slack
    [message] = fake_slack.messages(TEAM_CHANNEL)  # csm-jordan has no channel of their own
    shown = json.dumps(message.blocks)
    assert "Acme Analytics" in shown and "timeline:critical" in shown and "86%" in shown
    assert "days_since_last_login +1.20" in shown and "seats_used_ratio" not in shown
    journey_page = f"{UI}/namespaces/default/workflows/{request.journey_id}"
    assert journey_page in shown
    alert_row = row_of(engine, f"{request.idempotency_key}:slack")
    assert (alert_row.status, alert_row.provider_message_id) == ("sent", message.ts)


def test_a_rate_limited_alert_retries_the_step_when_slack_says_and_files_one_task(
    engine: Engine, desk: Desk, fake_slack: FakeSlack
) -> None:
    request = alert_csm_request()
    fake_slack.fail_next(fake_slack.rate_limited(retry_after=9))

    with pytest.raises(ApplicationError) as wait:
        desk.deliver(request)
    assert wait.value.type == "ProviderUnavailable" and not wait.value.non_retryable
    assert wait.value.next_retry_delay == timedelta(seconds=9)

    desk.deliver(request)

    assert len(fake_slack.messages()) == 1
    assert len(list_tasks(engine, customer_id=request.customer.customer_id)) == 1


def test_a_refused_alert_leaves_the_step_delivered_and_the_refusal_on_its_row(
    engine: Engine, desk: Desk, fake_slack: FakeSlack
) -> None:
    request = alert_csm_request()
    desk.poster = poster_for(engine, fake_slack, token="xoxb-revoked")

    receipt = desk.deliver(request)

    assert receipt.channel == "internal" and fake_slack.messages() == []
    refused = row_of(engine, f"{request.idempotency_key}:slack")
    assert refused.status == "rejected" and "invalid_auth" in (refused.note or "")


def test_a_held_out_customer_and_a_customer_message_alert_nobody(
    desk: Desk, fake_slack: FakeSlack
) -> None:
    desk.deliver(alert_csm_request(held_out=True))
    desk.deliver(make_request(make_step("retention_offer", channel="in_app")))

    assert fake_slack.calls == []


def test_an_overdue_task_is_posted_to_slack_once(
    engine: Engine, desk: Desk, fake_slack: FakeSlack
) -> None:
    desk.deliver(alert_csm_request())
    [task] = list_tasks(engine)
    late = task.due_at + timedelta(hours=1)

    [alerted] = alert_overdue(engine, desk.outbox, late, alerts=desk.poster)
    assert alert_overdue(engine, desk.outbox, late, alerts=desk.poster) == []

    [overdue] = [m for m in fake_slack.messages() if m.text.startswith("Overdue")]
    assert alerted.id == task.id and f"task {task.id} was due" in overdue.text
    assert "timeline:critical" in json.dumps(overdue.blocks)
    assert row_of(engine, f"csm-task:{task.id}:overdue").channel == "internal"  # as before
    posted = row_of(engine, f"csm-task:{task.id}:overdue:slack")
    assert (posted.status, posted.provider_message_id) == ("sent", overdue.ts)


def test_an_overdue_alert_slack_deferred_is_posted_by_the_next_run(
    engine: Engine, desk: Desk, fake_slack: FakeSlack
) -> None:
    desk.deliver(alert_csm_request())
    [task] = list_tasks(engine)
    late = task.due_at + timedelta(hours=1)
    fake_slack.fail_next(fake_slack.rate_limited(retry_after=30))

    assert len(alert_overdue(engine, desk.outbox, late, alerts=desk.poster)) == 1
    key = f"csm-task:{task.id}:overdue:slack"
    assert row_of(engine, key).status == "sending"

    assert (
        alert_overdue(engine, desk.outbox, late + timedelta(minutes=10), alerts=desk.poster) == []
    )

    assert row_of(engine, key).status == "sent"
    assert len([m for m in fake_slack.messages() if m.text.startswith("Overdue")]) == 1
    # the second run looked for the first run's message before posting again
    methods = [c.method for c in fake_slack.calls]
    assert methods[-2:] == ["conversations.history", "chat.postMessage"]


# ---- a journey that starts in the critical risk tier, through the record activity -----------


def started(risk_tier: str = "critical", holdout: bool = False) -> RecordInput:
    journey = JourneyRecord(
        journey_key="retention-cust-001:run-1",
        customer_id="cust-001",
        stage="waiting",
        strategy="critical_save",
        risk_tier=risk_tier,
        severity_tier="critical",
        churn_probability=0.91,
        health_score=22.0,
        outcome=None,
        exit_reason=None,
        rules_version="r1",
        model_version="m1",
        started_at=datetime.now(UTC),
        finished_at=None,
        holdout=holdout,
        strategy_path=["critical_save"],
    )
    return RecordInput(
        workflow_id="retention-cust-001", journey=journey, actor="system", action="journey_started"
    )


def record(engine: Engine, poster: AlertPoster, request: RecordInput, attempt: int = 1) -> None:
    environment = ActivityEnvironment()
    environment.info = dataclasses.replace(environment.info, attempt=attempt)
    environment.run(RecordActivities(engine, poster).record, request)


def test_a_journey_started_critical_alerts_the_csm_once(
    engine: Engine, fake_slack: FakeSlack
) -> None:
    save_customer(engine, make_customer(profile={"assigned_csm": "csm_ana"}))
    scored(engine, "retention-cust-001", {"support_tickets_30d": 0.8})
    poster = poster_for(engine, fake_slack)

    record(engine, poster, started())
    record(engine, poster, started())  # the record activity retried

    [message] = fake_slack.messages(ANA_CHANNEL)
    header = message.blocks[0]["text"]["text"]
    assert header == "Critical journey started: Acme Analytics"
    shown = json.dumps(message.blocks)
    assert "strategy:critical_save" in shown and "support_tickets_30d +0.80" in shown
    assert f"{UI}/namespaces/default/workflows/retention-cust-001" in shown
    assert len(fake_slack.posts()) == 1


def test_journeys_started_below_critical_or_held_out_alert_nobody(
    engine: Engine, fake_slack: FakeSlack
) -> None:
    poster = poster_for(engine, fake_slack)

    record(engine, poster, started(risk_tier="high"))
    record(engine, poster, started(holdout=True))

    assert fake_slack.calls == []


def test_a_deferred_critical_alert_retries_the_record_a_few_times_then_is_left_for_later(
    engine: Engine, fake_slack: FakeSlack
) -> None:
    poster = poster_for(engine, fake_slack)
    fake_slack.fail_next(fake_slack.rate_limited(retry_after=5), fake_slack.rate_limited(5))

    with pytest.raises(ApplicationError) as wait:
        record(engine, poster, started())
    assert wait.value.next_retry_delay == timedelta(seconds=5) and not wait.value.non_retryable
    record(engine, poster, started(), attempt=ALERT_TRIES)  # the journey goes on

    key = "retention-cust-001:run-1:critical-started:slack"
    assert row_of(engine, key).status == "sending" and fake_slack.messages() == []
    later = datetime.now(UTC) + timedelta(minutes=10)
    [posted] = poster.resend_pending(later)  # what `tasks alert-overdue` does
    assert posted.status == "sent" and len(fake_slack.messages()) == 1


def scored(engine: Engine, journey_id: str, drivers: dict[str, float]) -> None:
    with session(engine) as db:
        db.add(
            ChurnPredictionRow(
                customer_id="cust-001",
                journey_id=journey_id,
                probability=0.86,
                confidence=0.7,
                severity_value=50_000,
                model_version="test",
                probability_source="model",
                drivers=[{"feature": f, "contribution": c} for f, c in drivers.items()],
            )
        )


KILLED_WORKER = """
import json, sys
from pydantic import SecretStr
from retention.crm.hubspot import HubSpotCrm
from retention.crm.sync import CrmSync
from retention.delivery.alerting import AlertPoster
from retention.delivery.alerts import CsmAlert
from retention.delivery.overdue import alert_overdue
from retention.delivery.slack import SlackProvider
from retention.store.db import make_engine

given = json.load(sys.stdin)
slack = SlackProvider(SecretStr(sys.argv[2]), "C0TEAM0001", {"csm_ana": "C0ANA00001"}, sys.argv[1])
engine = make_engine(given["url"], given["connect_args"])
AlertPoster(engine, slack, "http://ui", "default").post(CsmAlert.model_validate(given["alert"]))
"""


def test_an_alert_links_the_task_the_crm_made_for_it(
    engine: Engine, tmp_path: Path, fake_slack: FakeSlack, hubspot: FakeHubSpot
) -> None:
    crm = CrmSync(engine, HubSpotCrm(SecretStr(hubspot.token), hubspot.url, "4242", 5.0), OWNERS)
    poster = poster_for(engine, fake_slack)
    activities = DeliverActivities(
        engine, tmp_path / "outbox", RulebookSource(RULES_DIR), alerts=poster, crm=crm
    )
    request = alert_csm_request(customer=crm_customer("9001"))

    ActivityEnvironment().run(activities.deliver, request)
    [task] = list_tasks(engine)
    late = task.due_at + timedelta(hours=1)
    alert_overdue(engine, tmp_path / "outbox", late, alerts=poster)

    assert task.crm_url is not None and task.crm_id in task.crm_url
    alerts = [json.dumps(m.blocks) for m in fake_slack.messages()]
    assert len(alerts) == 2  # the step's alert, then the overdue one
    assert all(task.crm_url in blocks for blocks in alerts)
