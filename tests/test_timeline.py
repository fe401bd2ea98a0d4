"""A customer's account timeline: what the database recorded about them, newest first, capped,
saying what it left out; `starter.py timeline`; and the report's links to timeline pages."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from analytics_data import PERIOD, RULES, customer_row, day, journey_row, records
from factories import make_customer, make_request, make_step
from sqlalchemy import Engine
from typer.testing import CliRunner

import starter
from retention.analytics.reader import read_timeline
from retention.analytics.report import build_report, write_report
from retention.analytics.timeline import (
    KINDS,
    AuditEntry,
    DecisionEntry,
    JourneyEntry,
    MessageEntry,
    ScoreEntry,
    TaskEntry,
    TimelineRecords,
    build_timeline,
    timeline_page,
)
from retention.customer import CustomerEvent
from retention.delivery.send import deliver
from retention.errors import CustomerNotFound, RetentionError
from retention.ingest.inbox import record_sent
from retention.journey_state import CommandResult, JourneyState, PauseRequest, StrategyChange
from retention.rulebook.decide import decide, decision_facts
from retention.runtime.history import HeardCommand, HeardEvent, JourneyHistories, JourneyRef
from retention.scoring.assessment import assess_customer
from retention.store.commands import record_command
from retention.store.csm_tasks import complete_task, list_tasks
from retention.store.db import make_engine, session
from retention.store.decisions import decision_row
from retention.store.records import record_assessment, record_journey, save_customer
from retention.store.tables import (
    AuditRow,
    ChurnPredictionRow,
    HealthScoreRow,
    InboxRow,
    JourneyRow,
)

START = datetime(2026, 11, 20, 9, tzinfo=UTC)
WORKFLOW = "retention-cust-001"
KEY = f"{WORKFLOW}:run-1"


def hours(n: float) -> datetime:
    return START + timedelta(hours=n)


# ---- assembling it (no database) ---------------------------------------------------------


def prediction(at: datetime, probability: float = 0.8) -> ChurnPredictionRow:
    return ChurnPredictionRow(
        customer_id="c1", journey_id="retention-c1", probability=probability, confidence=0.7,
        severity_value=0.5, model_version="churn-default@3", probability_source="model",
        predicted_at=at,
    )  # fmt: skip


def health(at: datetime, overall: float = 40.0) -> HealthScoreRow:
    return HealthScoreRow(
        customer_id="c1", journey_id="retention-c1", overall=overall, categories={},
        trend="declining", status="at_risk", scored_at=at,
    )  # fmt: skip


def test_entries_come_newest_first_with_health_and_churn_paired_by_moment() -> None:
    journey = journey_row("c1", path=("standard", "critical_save"), started=2, finished=None)
    built = build_timeline(
        TimelineRecords(
            customer_id="c1",
            known=True,
            predictions=[prediction(day(3), 0.9), prediction(day(1), 0.5)],
            health=[health(day(3), 35.0), health(day(1), 62.0)],
            journeys=[journey],
            recorded={"score": 2, "journey": 1},
        )
    )

    assert [(e.kind, e.at) for e in built.entries] == [
        ("score", day(3)), ("journey", day(2)), ("score", day(1)),
    ]  # fmt: skip
    newest = built.entries[0]
    assert isinstance(newest, ScoreEntry)
    assert (newest.health, newest.churn_probability, newest.model_version) == (
        35.0,
        0.9,
        "churn-default@3",
    )
    assert isinstance(built.entries[1], JourneyEntry)
    assert "standard → critical_save" in built.entries[1].summary()
    assert built.left_out == {}


def test_past_the_limit_it_says_how_many_of_each_kind_it_left_out() -> None:
    built = build_timeline(
        TimelineRecords(
            customer_id="c1",
            known=True,
            predictions=[prediction(day(n)) for n in (5, 4, 3)],  # the newest 3 of 40 read
            journeys=[journey_row("c1", started=4.5)],
            recorded={"score": 40, "journey": 1},
        ),
        limit=2,
    )

    assert [e.kind for e in built.entries] == ["score", "journey"]
    assert built.left_out == {"score": 39}
    assert json.loads(built.model_dump_json())["left_out"] == {"score": 39}


def test_a_customer_nothing_names_is_unknown_but_a_quiet_known_one_is_not() -> None:
    with pytest.raises(CustomerNotFound, match="'ghost': nothing is recorded"):
        build_timeline(TimelineRecords(customer_id="ghost", recorded={"score": 0}))

    assert build_timeline(TimelineRecords(customer_id="quiet", known=True)).entries == []


def test_each_entry_reads_as_one_line_for_a_csm() -> None:
    sent = MessageEntry(
        at=day(1), step_id="g1-01-retention_offer", channel="email", recipient="ana@x.example",
        subject="A thank-you", status="sent", provider="sendgrid", provider_message_id="sg-1",
        sent_at=day(1), note=None,
    )  # fmt: skip
    done = TaskEntry(
        at=day(1), task_id=7, action="executive_call", assigned_csm="csm-jordan",
        subject="Call Acme", status="done", due_at=day(2), completed_at=day(1.5),
        completed_by="jordan", note="renewal agreed",
    )  # fmt: skip
    unscored = ScoreEntry(
        at=day(1), churn_probability=0.7, model_version="m@1", probability_source="upstream"
    )

    assert sent.summary() == 'email to ana@x.example: "A thank-you" · sent · sendgrid id sg-1'
    assert done.summary() == (
        "task 7 executive_call for csm-jordan · done by jordan at 2026-11-01 12:00: renewal agreed"
    )
    assert unscored.summary() == "health - · churn probability 0.70 (upstream, model m@1)"


def test_a_task_in_the_crm_reads_with_its_crm_id_or_why_it_is_not_there() -> None:
    synced = TaskEntry(
        at=day(1), task_id=8, action="check_in", assigned_csm=None, subject="Check in",
        status="open", due_at=day(2), completed_at=None, completed_by=None, note=None,
        crm="hubspot", crm_status="synced", crm_id="5501", crm_synced_at=day(1),
    )  # fmt: skip
    refused = synced.model_copy(update={"crm_status": "failed", "crm_id": None})

    assert synced.summary() == (
        "task 8 check_in for unassigned · open, due 2026-11-02 00:00"
        " · in hubspot as 5501 since 2026-11-01 00:00"
    )
    assert refused.summary().endswith("· hubspot sync failed")


def test_a_decision_reads_as_its_strategy_change_with_the_rules_and_rule_set_behind_it() -> None:
    escalated = DecisionEntry(
        at=day(2), journey_id="retention-c1", generation=2, from_strategy="nurture",
        to_strategy="proactive_engagement", fired_rules=["strategy:nurture", "severity:high"],
        rules_version="a" * 40, reason="escalation",
    )  # fmt: skip
    kept = escalated.model_copy(
        update={"to_strategy": "nurture", "fired_rules": [], "reason": "checkpoint"}
    )

    assert escalated.summary() == (
        "strategy nurture → proactive_engagement (rules: strategy:nurture, severity:high, "
        "rule set aaaaaaaaaaaa) · escalated by an operator"
    )
    assert kept.summary() == (
        "strategy nurture kept (rules: none, rule set aaaaaaaaaaaa) · checkpoint re-score"
    )


def test_an_operator_command_reads_with_its_author_reason_and_the_journeys_answer() -> None:
    paused = AuditEntry(
        at=day(1), actor="operator:alice", action="pause",
        detail={"reason": "exec call", "answer": "paused: exec call", "stage": "paused"},
    )  # fmt: skip
    resumed = AuditEntry(at=day(2), actor="operator:bob", action="resume", detail={"note": ""})

    assert (
        paused.summary()
        == "pause by operator:alice · reason: exec call · answer: paused: exec call"
    )
    assert resumed.summary() == "resume by operator:bob"


# ---- what only the journeys' histories hold (no server: what the reader returns) ---------


def heard_command(command: str, at: datetime, reason: str = "", **given: Any) -> HeardCommand:
    return HeardCommand(
        at=at, workflow_id=WORKFLOW, run_id="run-1", identity=given.pop("identity", None),
        via=given.pop("via", "update"), update_id=given.pop("update_id", None), command=command,
        arguments={"reason": reason} if reason else {}, taken=given.pop("taken", True), **given,
    )  # fmt: skip


def heard_event(kind: str, at: datetime, **given: Any) -> HeardEvent:
    return HeardEvent(
        at=at, workflow_id=WORKFLOW, run_id="run-1", identity=given.pop("identity", None),
        via=given.pop("via", "update"), update_id=given.pop("update_id", None),
        event={"type": kind, "data": {}, "count": 1}, **given,
    )  # fmt: skip


def audited(command: str, at: datetime, reason: str, update_id: str | None = None) -> AuditRow:
    detail = {"reason": reason, "answer": "ok", **({"update_id": update_id} if update_id else {})}
    return AuditRow(
        at=at, actor="operator:bob", action=command, journey_id=WORKFLOW, customer_id="c1",
        detail=detail,
    )  # fmt: skip


def with_history(
    heard: JourneyHistories, audit: list[AuditRow] = (), events: list[InboxRow] = ()
) -> list[Any]:
    records = TimelineRecords(
        customer_id="c1", known=True, audit=list(audit), events=list(events),
        recorded={"audit": len(audit), "event": len(events)},
    )  # fmt: skip
    return build_timeline(records, heard=heard).entries


def test_a_cli_command_read_back_from_the_history_shows_once_as_its_authors() -> None:
    by_id = audited("pause", hours(1.01), "legal hold", update_id="u-1")
    older_row = audited("escalate", hours(2.01), "exec call")  # written before update ids
    heard = JourneyHistories(
        commands=[
            heard_command("pause", hours(1), "legal hold", update_id="u-1"),
            heard_command("escalate", hours(2), "exec call", update_id="u-2"),
            heard_command("escalate", hours(3), "exec call", update_id="u-3", identity="ops@ui"),
        ]
    )

    entries = with_history(heard, audit=[by_id, older_row])

    shown = [
        (e.kind, e.source, getattr(e, "by", None) or getattr(e, "actor", None)) for e in entries
    ]
    assert shown == [
        ("command", "temporal", "ops@ui"),  # an hour after the CLI's: another command
        ("audit", "database", "operator:bob"),
        ("audit", "database", "operator:bob"),
    ]


def test_an_event_the_inbox_holds_shows_once_and_one_only_the_history_holds_with_its_sender() -> (
    None
):
    forwarded = InboxRow(
        source="segment", source_event_id="evt-9", kind="track", customer_id="c1",
        event={"type": "login", "data": {}, "count": 1}, event_type="login", status="forwarded",
        batch="b-7", received_at=hours(1), forwarded_at=hours(1),
    )  # fmt: skip
    started = InboxRow(
        source="segment", source_event_id="evt-1", kind="track", customer_id="c1",
        event={"type": "ticket_opened", "data": {}, "count": 1}, event_type="ticket_opened",
        status="forwarded", received_at=hours(0), forwarded_at=hours(0), workflow_id=WORKFLOW,
        started_journey=True,
    )  # fmt: skip
    heard = JourneyHistories(
        events=[
            heard_event("ticket_opened", hours(0) + timedelta(seconds=1), via="signal"),
            heard_event("login", hours(1), update_id="inbox:b-7", accepted=True),
            heard_event("renewed", hours(2), update_id="x", identity="billing", accepted=True),
        ]
    )

    entries = with_history(heard, events=[forwarded, started])

    assert [(e.source, e.sender, e.event_type, e.status) for e in entries] == [
        ("temporal", "billing", "renewed", "accepted"),
        ("database", "segment", "login", "forwarded"),
        ("database", "segment", "ticket_opened", "forwarded"),
    ]


def test_a_command_sent_as_a_signal_reads_as_not_taken_and_the_unread_history_is_named() -> None:
    heard = JourneyHistories(
        commands=[heard_command("pause", hours(1), "lunch", via="signal", taken=False)],
        not_read=[f"{WORKFLOW}: older history not read (read 5 runs, 20,412 history events)"],
    )
    records = TimelineRecords(customer_id="c1", known=True)

    built = build_timeline(records, heard=heard)

    [entry] = built.entries
    assert entry.summary() == (
        "pause by unnamed sender (Temporal signal) · reason: lunch · "
        "not taken: journeys take commands as updates, not signals"
    )
    assert built.history_read and built.history_notes == heard.not_read
    assert built.recorded == {"command": 1, "event": 0}


def test_a_journey_key_names_the_first_run_to_read_from() -> None:
    assert JourneyRef.of(WORKFLOW, f"{WORKFLOW}/run-a") == JourneyRef(WORKFLOW, "run-a")
    assert JourneyRef.of(WORKFLOW, KEY) == JourneyRef(WORKFLOW, None)  # not one: its latest run


def test_a_timeline_page_is_named_only_for_a_safe_customer_id() -> None:
    assert timeline_page("cust-001") == "timelines/cust-001.html"
    with pytest.raises(RetentionError, match="cannot name a timeline page"):
        timeline_page("../etc/passwd")


# ---- from the database, written the way journeys write it -----------------------------------


def seed(engine: Engine, outbox: Path, assessments: int = 3) -> None:
    """cust-001: assessments an hour apart, the first deciding its plan and the third an
    operator's escalation, a journey that escalated and churned, an email and a CSM task
    (completed), a webhook from the ingest service and an event sent with `starter.py event`,
    the journey's audit entries and alice's pause."""
    customer = make_customer()
    save_customer(engine, customer)
    strategy = None
    for n in range(assessments):
        assessment = assess_customer(customer, RULES, hours(n), 0.5 + n / 100)
        row = None
        if n in (0, 2):
            escalate_from = strategy if n else None
            decision = decide(
                RULES, decision_facts(assessment), generation=n + 1, escalate_from=escalate_from
            )
            row = decision_row(
                decision, customer_id="cust-001", journey_id=WORKFLOW, journey_key=KEY,
                current=strategy, escalate_from=escalate_from, key=f"{KEY}/{n}",
            )  # fmt: skip
            row.decided_at, strategy = hours(n), decision.strategy
        record_assessment(engine, WORKFLOW, assessment, f"{KEY}/{n}", decision=row)
    for action, owner, channel in [
        ("retention_offer", "automated", "email"),
        ("executive_call", "csm", "csm_task"),
    ]:
        step = make_step(action, owner=owner, channel=channel, fallback_channel=None)
        deliver(engine, outbox, RULES.templates, make_request(step, customer))
    task = list_tasks(engine, customer_id="cust-001")[0]
    assert task.id is not None
    complete_task(engine, task.id, "csm-jordan", "call booked")
    with session(engine) as db:
        db.add(
            InboxRow(
                source="zendesk", source_event_id="z-1", kind="ticket.created",
                customer_id="cust-001", event_type="support_ticket", status="forwarded",
                workflow_id=WORKFLOW, received_at=hours(1.5),
            )
        )  # fmt: skip
    changes = [
        StrategyChange(at=hours(0), from_strategy=None, to_strategy="standard", why=""),
        StrategyChange(at=hours(2), from_strategy="standard", to_strategy="critical_save", why=""),
    ]
    journey = JourneyState(
        customer_id="cust-001", journey_key=KEY, started_at=hours(0), stage="closed",
        strategy="critical_save", risk_tier="critical", rules_version="r" * 40,
        model_version="churn-default@3", outcome="churned", exit_reason="event:churned",
        finished_at=hours(5), strategy_history=changes,
    )  # fmt: skip
    record_sent(engine, "cli", "cust-001", CustomerEvent(type="login"), "request-1")
    answer = CommandResult(stage="paused", strategy="critical_save", message="paused: exec call")
    record_command(engine, "cust-001", "pause", "alice", PauseRequest(reason="exec call"), answer)
    for action in ("journey_started", "journey_closed"):
        audit = AuditRow(
            actor="system", action=action, journey_id=WORKFLOW, customer_id="cust-001",
            entry_key=f"{KEY}:{action}",
        )  # fmt: skip
        record_journey(engine, WORKFLOW, journey, audit)


@pytest.mark.database
def test_every_kind_recorded_is_on_the_timeline(engine: Engine, tmp_path: Path) -> None:
    seed(engine, tmp_path / "outbox")

    built = build_timeline(read_timeline(engine, "cust-001", 200))

    assert built.company == "Acme Analytics"
    assert built.recorded == {
        "score": 3, "journey": 1, "decision": 2, "message": 2, "task": 1, "event": 2, "audit": 3,
    }  # fmt: skip
    assert [e.at for e in built.entries] == sorted((e.at for e in built.entries), reverse=True)
    by_kind = {e.kind: e for e in reversed(built.entries)}  # the newest of each
    score = by_kind["score"]
    assert isinstance(score, ScoreEntry) and score.health is not None
    assert score.at == hours(2) and score.churn_probability == pytest.approx(0.52)
    journey = by_kind["journey"].model_dump()
    assert journey["strategy_path"] == ["standard", "critical_save"]
    assert (journey["rules_version"], journey["outcome"]) == ("r" * 40, "churned")
    task = by_kind["task"].model_dump()
    assert (task["status"], task["completed_by"], task["note"]) == (
        "done",
        "csm-jordan",
        "call booked",
    )
    messages = [e.model_dump() for e in built.entries if e.kind == "message"]
    assert {(m["channel"], m["recipient"], m["status"]) for m in messages} == {
        ("email", "dana@acme.example", "captured"),
        ("csm_task", "csm-jordan", "captured"),
    }
    events = [e.model_dump() for e in built.entries if e.kind == "event"]
    assert {(e["sender"], e["event_type"]) for e in events} == {
        ("zendesk", "support_ticket"), ("cli", "login"),
    }  # fmt: skip
    audit = [
        (e.model_dump()["actor"], e.model_dump()["action"])
        for e in built.entries
        if e.kind == "audit"
    ]
    assert sorted(audit) == [
        ("operator:alice", "pause"), ("system", "journey_closed"), ("system", "journey_started"),
    ]  # fmt: skip
    decisions = [e for e in built.entries if isinstance(e, DecisionEntry)]
    assert [(d.reason, d.from_strategy, d.to_strategy) for d in decisions] == [
        ("escalation", "nurture", "proactive_engagement"), ("first_plan", None, "nurture"),
    ]  # fmt: skip
    assert all(d.rules_version == RULES.version and d.fired_rules for d in decisions)


@pytest.mark.database
def test_a_customer_the_database_never_heard_of_is_unknown(engine: Engine) -> None:
    with pytest.raises(CustomerNotFound, match="'nobody'"):
        build_timeline(read_timeline(engine, "nobody", 200))


@pytest.mark.database
def test_a_chatty_customer_reads_only_the_newest(engine: Engine, tmp_path: Path) -> None:
    seed(engine, tmp_path / "outbox", assessments=12)

    built = build_timeline(read_timeline(engine, "cust-001", 5), limit=5)

    assert len(built.entries) == 5
    assert sum(built.left_out.values()) == sum(built.recorded.values()) - 5
    assert built.recorded["score"] == 12


# ---- the command -------------------------------------------------------------------------


@pytest.fixture
def seeded_cli(tmp_path: Path, cli_database: str) -> None:
    engine = make_engine(cli_database)
    seed(engine, tmp_path / "outbox")
    engine.dispose()


@pytest.mark.usefixtures("seeded_cli")
def test_starter_timeline_prints_newest_first_and_what_it_left_out() -> None:
    result = CliRunner().invoke(starter.app, ["timeline", "cust-001", "--limit", "4"])

    assert result.exit_code == 0, result.output
    assert "timeline of Acme Analytics (cust-001): 4 entries" in result.stdout
    assert "left out (past --limit 4): " in result.stdout


@pytest.mark.usefixtures("seeded_cli")
def test_starter_timeline_json_holds_every_entry_and_the_counts() -> None:
    result = CliRunner().invoke(starter.app, ["timeline", "cust-001", "--json"])

    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)
    assert len(document["entries"]) == 14 and document["left_out"] == {}
    assert {e["kind"] for e in document["entries"]} == set(KINDS)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["nobody"], "error: customer 'nobody': nothing is recorded for it in the database"),
        (["cust-001", "--limit", "0"], "error: --limit: 0 is not between 1 and 10,000"),
    ],
)
def test_an_unknown_customer_or_a_bad_limit_is_one_line_and_exit_2(
    cli_database: str, args: list[str], message: str
) -> None:
    result = CliRunner().invoke(starter.app, ["timeline", *args])

    assert result.exit_code == 2
    assert result.stderr.strip() == message


# ---- the report's links ------------------------------------------------------------------


def churned_portfolio() -> list[JourneyRow]:
    return [journey_row("big", outcome="churned"), journey_row("small", outcome="churned")]


def test_the_report_names_churned_customers_and_links_their_timeline_pages(
    tmp_path: Path,
) -> None:
    period_records = records(
        customers=[customer_row("big", acv=90_000), customer_row("small", acv=5_000)],
        journeys=churned_portfolio(),
    )
    report = build_report(
        period_records, RULES.kpis, RULES.version, datetime(2026, 12, 1, tzinfo=UTC)
    )
    timelines = [
        build_timeline(TimelineRecords(customer_id=c.customer_id, known=True))
        for c in report.churned_customers
    ]
    html = tmp_path / "report.html"

    write_report(report, html, None, timelines)

    assert [c.customer_id for c in report.churned_customers] == ["big", "small"]
    text = html.read_text(encoding="utf-8")
    assert text.index('href="timelines/big.html"') < text.index('href="timelines/small.html"')
    page = (tmp_path / "timelines" / "big.html").read_text(encoding="utf-8")
    assert 'href="../report.html"' in page and "Nothing is recorded for this customer." in page
    assert PERIOD.contains(report.churned_customers[0].churned_at)


@pytest.mark.browser
@pytest.mark.usefixtures("seeded_cli")
def test_the_reports_customer_link_opens_their_timeline_in_chromium(
    browser: Any, tmp_path: Path
) -> None:
    html = tmp_path / "site" / "report.html"
    result = CliRunner().invoke(
        starter.app, ["report", "--from", "2026-11-01", "--to", "2026-11-30", "--html", str(html)]
    )
    assert result.exit_code == 0, result.output
    assert "wrote 1 timeline pages" in result.stdout
    browser.get(html.as_uri())

    browser.find_element("css selector", '[data-customer="cust-001"] a').click()

    assert browser.current_url == (html.parent / "timelines" / "cust-001.html").as_uri()
    assert "Timeline of Acme Analytics (cust-001)" in browser.find_element("tag name", "h1").text
    kinds = browser.execute_script(ENTRY_KINDS)
    assert len(kinds) == 14 and set(kinds) == set(KINDS)
    page = browser.find_element("tag name", "main").text
    assert "strategy nurture → proactive_engagement (rules: " in page
    assert "pause by operator:alice · reason: exec call" in page
    assert browser.execute_script("return performance.getEntriesByType('resource').length") == 0
    browser.find_element("link text", "back to the report").click()
    assert browser.current_url == html.as_uri()


ENTRY_KINDS = "return [...document.querySelectorAll('tr[data-entry]')].map(r => r.dataset.entry);"
