"""Data protection: `forget` erases a customer's personal data from every table and the outbox
folder and keeps anonymised numbers for the KPIs; the purge keeps data only as long as the
settings say."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from uuid import NAMESPACE_OID, uuid4, uuid5

import pytest
from conftest import JourneyWorld
from factories import count, make_customer, make_request, make_step, outbox_row
from sqlalchemy import Engine, MetaData, Table, inspect
from sqlmodel import select
from typer.testing import CliRunner

import starter
from activities.privacy import PurgeRequest
from activities.scan import ScanActivities
from retention.delivery.send import deliver
from retention.delivery.templates import TemplateSet
from retention.errors import InvalidInput
from retention.rulebook.decide import decide, decision_facts
from retention.rulebook.loader import load_rulebook
from retention.rulebook.source import RulebookSource
from retention.runtime.settings import ROOT, Settings
from retention.scan.requests import ScanFailure, ScanResult
from retention.scoring.assessment import assess_customer
from retention.store.contact_erasure import forget_contact
from retention.store.db import make_engine, session
from retention.store.decisions import decision_row
from retention.store.erasure import ERASED, ERASED_REASON, PSEUDONYMISED, forget_customer
from retention.store.purge import DATED, RetentionPeriods, purge_expired
from retention.store.records import (
    keep_journey_snapshot,
    load_customer,
    record_assessment,
    save_customer,
)
from retention.store.scans import customer_page, list_scan_runs, record_page, recorded_page
from retention.store.suppressions import add_suppression
from retention.store.tables import (
    AuditRow,
    DeliveryAttemptRow,
    HealthScoreRow,
    InboxRow,
    JourneyRow,
    OutboxRow,
    ScanPageRow,
    SentimentRow,
    table_name,
)
from retention.suppression import SuppressRequest
from workflows.data_purge import DataPurge

pytestmark = pytest.mark.database

RULEBOOK = load_rulebook(ROOT / "rules")
TEMPLATES = TemplateSet.read(ROOT / "rules" / "templates")
NOW = datetime(2026, 11, 26, 12, tzinfo=UTC)
FORGOTTEN, NEIGHBOUR = "cust-001", "cust-0011"  # one id the prefix of the other
# The forgotten account's champion, a contact of theirs whose details name them nowhere else.
CHAMPION = {"contact_id": "c-7", "name": "Noor Haddad", "email": "noor@acme-finance.example"}
MENTIONS_FORGOTTEN = re.compile(r"cust-001(?!1)|dana@acme|Noor Haddad|noor@acme-finance")
# Tables that hold rule files, models and the schema's revision: never a customer.
# crm_marks: how far a CRM has been read, one row per CRM
NEVER_NAME_A_CUSTOMER = {"rule_sets", "model_versions", "alembic_version", "crm_marks"}
runner = CliRunner()


def _customer_with_history(
    engine: Engine, outbox: Path, customer_id: str, email: str, contacts: list[Any]
) -> None:
    """Rows in every table a journey writes, as the worker writes them."""
    customer = make_customer(
        profile={"customer_id": customer_id, "email": email},
        usage={"active_users": 45, "max_users": 50},  # an expansion opportunity
        contacts=contacts,
    )
    save_customer(engine, customer)
    journey_id, journey_key = f"retention-{customer_id}", f"retention-{customer_id}/run-1"
    keep_journey_snapshot(engine, journey_key, customer)
    assessment = assess_customer(customer, RULEBOOK, NOW)
    decision = decision_row(
        decide(RULEBOOK, decision_facts(assessment)), customer_id=customer_id,
        journey_id=journey_id, journey_key=journey_key, current=None, escalate_from=None,
        key=f"{journey_key}/3",
    )  # fmt: skip
    # the rescore activity's one write, under its key
    record_assessment(engine, journey_id, assessment, f"{journey_key}/3", decision=decision)
    request = make_request(customer=customer, journey_id=journey_id, journey_key=journey_key)
    receipt = deliver(engine, outbox, TEMPLATES, request)
    add_suppression(
        engine, SuppressRequest(customer_id=customer_id, channel="sms", reason="STOP", source="t")
    )
    with session(engine) as db:
        db.add(DeliveryAttemptRow(
            idempotency_key=receipt.idempotency_key, channel="email", provider="sendgrid",
            outcome="delivered", status_code=202,
        ))  # fmt: skip
        db.add(
            SentimentRow(customer_id=customer_id, source="ticket_message", score=-0.6, label="x")
        )
        db.add(InboxRow(
            source="stripe", source_event_id=f"evt-{customer_id}", kind="invoice.payment_failed",
            customer_id=customer_id, event={"type": "payment_failed", "data": {"email": email}},
            status="forwarded",
        ))  # fmt: skip
        db.add(JourneyRow(
            journey_key=journey_key, workflow_id=journey_id, customer_id=customer_id,
            stage="closed", outcome="saved", started_at=NOW, finished_at=NOW,
        ))  # fmt: skip
        db.add(AuditRow(
            actor="operator", action="cancel", journey_id=journey_id, customer_id=customer_id,
            detail={"reason": f"{email} asked us to stop"},
            entry_key=f"{journey_key}:cancel",
        ))  # fmt: skip
    _scans_naming(engine, customer_id, email)


def _scans_naming(engine: Engine, customer_id: str, email: str) -> None:
    """A finished scan that failed on the customer, and the page a running scan recorded with
    them at risk and as its cursor, as the scan's activities record them."""
    failure = ScanFailure(customer_id=customer_id, reason=f"customers[{customer_id}]: {email}")
    ScanActivities(engine, RulebookSource(ROOT / "rules")).record_scan(ScanResult(
        scan_id=scan_id(customer_id, "finished"), workflow_id="portfolio-scan", status="completed",
        started_at=NOW, finished_at=NOW, scored=1, failed=1, failures=[failure],
    ))  # fmt: skip
    page = ScanPageRow(
        scan_id=scan_id(customer_id, "running"), page=1, last_customer_id=customer_id, read=1,
        scored=1, at_risk_ids=[customer_id], failures=[failure.model_dump()],
    )  # fmt: skip
    record_page(engine, page, [])


def scan_id(customer_id: str, kind: str) -> str:
    """A scan's id is its first run's id: a uuid, one per customer and kind of scan here."""
    return str(uuid5(NAMESPACE_OID, f"{kind}/{customer_id}"))


def _everything(engine: Engine) -> str:
    """Every row of every table in the database, every text and JSON column, as text."""
    return json.dumps([row for table in _database_tables(engine) for row in _rows(engine, table)])


def _database_tables(engine: Engine) -> list[Table]:
    """What the database holds, mapped or not (so a table added without a model counts too)."""
    metadata = MetaData()
    metadata.reflect(engine)
    return list(metadata.sorted_tables)


def _rows(engine: Engine, table: Table) -> list[dict[str, Any]]:
    with engine.connect() as connection:
        rows = connection.execute(select(table).order_by(*table.primary_key.columns)).mappings()
        return [{name: _text(value) for name, value in row.items()} for row in rows]


def _text(value: Any) -> Any:
    return value.isoformat() if isinstance(value, datetime) else value


@pytest.fixture
def outbox(tmp_path: Path) -> Path:
    return tmp_path / "outbox"


@pytest.fixture
def history(engine: Engine, outbox: Path) -> Engine:
    _customer_with_history(engine, outbox, FORGOTTEN, "dana@acme.example", [CHAMPION])
    _customer_with_history(engine, outbox, NEIGHBOUR, "sam@initech.example", [])
    return engine


def test_forget_leaves_no_trace_of_the_customer_and_keeps_the_numbers(
    history: Engine, outbox: Path
) -> None:
    health_rows = count(history, HealthScoreRow)
    call = make_step("executive_call", channel="csm_task", fallback_channel="internal", owner="csm")
    customer = make_customer(profile={"customer_id": FORGOTTEN})
    journey = {"journey_id": f"retention-{FORGOTTEN}", "journey_key": f"retention-{FORGOTTEN}/1"}
    deliver(history, outbox, TEMPLATES, make_request(call, customer, **journey))  # a CSM task
    # the search below can only find what was there: a table left empty proves nothing
    empty = {table.name for table in _database_tables(history) if not _rows(history, table)}
    assert empty <= NEVER_NAME_A_CUSTOMER, "fill it in _customer_with_history"
    assert _everything(history).count("noor@acme-finance") == 2  # customers, journey_snapshots

    erasure = forget_customer(history, outbox, FORGOTTEN, actor="cli:privacy-officer")

    assert MENTIONS_FORGOTTEN.search(_everything(history)) is None
    assert not (outbox / f"retention-{FORGOTTEN}").exists()
    assert (outbox / f"retention-{NEIGHBOUR}").is_dir()
    assert erasure.erased == {
        "customers": 1,
        "journey_snapshots": 1,
        "outbox": 2,
        "suppressions": 1,
        "delivery_attempts": 1,
        "inbox": 1,
        "csm_tasks": 1,
    }
    assert erasure.pseudonymised["customer_health_scores"] == 1
    assert (erasure.pseudonymised["scan_runs"], erasure.pseudonymised["scan_pages"]) == (1, 1)
    [scan] = [run for run in list_scan_runs(history) if run.id == scan_id(FORGOTTEN, "finished")]
    assert scan.failed == 1  # the scan's figures stay
    assert scan.failures == [{"customer_id": erasure.pseudonym, "reason": ERASED_REASON}]
    assert count(history, HealthScoreRow) == health_rows  # the KPIs still count it
    with session(history) as db:
        journey = db.exec(
            select(JourneyRow).where(JourneyRow.customer_id == erasure.pseudonym)
        ).one()
        entries = db.exec(select(AuditRow).where(AuditRow.customer_id == erasure.pseudonym)).all()
    assert journey.journey_key == f"retention-{erasure.pseudonym}/run-1"
    assert journey.outcome == "saved"
    assert [(e.action, e.detail) for e in entries][0] == ("cancel", {})
    assert entries[-1].action == "customer_forgotten"
    assert entries[-1].actor == "cli:privacy-officer"


def test_a_running_scan_pages_on_from_where_it_was(history: Engine, outbox: Path) -> None:
    save_customer(history, make_customer(profile={"customer_id": "cust-000"}))
    next_page = [customer_id for customer_id, _ in customer_page(history, FORGOTTEN, 10)]

    forget_customer(history, outbox, FORGOTTEN, actor="cli")

    page = recorded_page(history, scan_id(FORGOTTEN, "running"), 1)
    assert page is not None and page.at_risk_ids == []  # no journey for them
    assert page.last_customer_id == "cust-000"  # the id before theirs
    after = customer_page(history, page.last_customer_id, 10)
    assert [customer_id for customer_id, _ in after] == next_page == [NEIGHBOUR]


def test_the_neighbour_whose_id_starts_the_same_is_untouched(history: Engine, outbox: Path) -> None:
    before = _neighbour_rows(history)

    forget_customer(history, outbox, FORGOTTEN, actor="cli")

    assert _neighbour_rows(history) == before


def _neighbour_rows(engine: Engine) -> list[str]:
    rows = json.loads(_everything(engine))
    return sorted(json.dumps(r) for r in rows if NEIGHBOUR in json.dumps(r))


def test_a_dry_run_counts_and_changes_nothing(history: Engine, outbox: Path) -> None:
    before = _everything(history)

    erasure = forget_customer(history, outbox, FORGOTTEN, actor="cli", dry_run=True)

    assert erasure.erased["customers"] == 1
    assert _everything(history) == before
    assert (outbox / f"retention-{FORGOTTEN}").is_dir()


def test_an_unknown_customer_is_found_nowhere_and_nothing_is_written(
    engine: Engine, outbox: Path
) -> None:
    erasure = forget_customer(engine, outbox, "nobody", actor="cli")

    assert not erasure.found
    assert count(engine, AuditRow) == 0


# ---- forgetting one contact -----------------------------------------------------------------

NAMES_NOOR = re.compile(r'noor@acme-finance|Noor Haddad|\+447700900123|"contact_id": "c-7"')
NOOR_PHONE = "+447700900123"


def _noor_history(engine: Engine, outbox: Path) -> Path:
    """What names the champion alone, besides the stored snapshots: a message sent to her (its
    file and a delivery attempt), her suppression and a webhook."""
    message = outbox / f"retention-{FORGOTTEN}" / "g1-02-checkin.txt"
    message.write_text("To: noor@acme-finance.example\n\nHello Noor Haddad")
    key = f"retention-{FORGOTTEN}/run-1:g1-02-checkin"
    add_suppression(engine, SuppressRequest(
        customer_id=FORGOTTEN, channel="sms", person=NOOR_PHONE, source="t",
    ))  # fmt: skip
    with session(engine) as db:
        db.add(outbox_row(
            "g1-02-checkin", f"retention-{FORGOTTEN}/run-1", recipient=CHAMPION["email"],
            subject="Hi", body="Hello Noor Haddad", path=str(message),
        ))  # fmt: skip
        db.add(DeliveryAttemptRow(
            idempotency_key=key, channel="email", provider="sendgrid", outcome="delivered",
        ))  # fmt: skip
        db.add(InboxRow(
            source="generic", source_event_id="evt-noor", kind="contact_changed",
            customer_id=FORGOTTEN, status="forwarded",
            event={"type": "contact_changed", "data": {**NOOR, "active": False}},
        ))  # fmt: skip
    return message


NOOR = {**CHAMPION, "phone": NOOR_PHONE, "roles": ["champion", "admin"]}


@pytest.fixture
def noor(engine: Engine, outbox: Path) -> Engine:
    _customer_with_history(engine, outbox, FORGOTTEN, "dana@acme.example", [NOOR])
    _customer_with_history(engine, outbox, NEIGHBOUR, "sam@initech.example", [{**NOOR}])
    return engine


def test_forgetting_a_contact_leaves_no_trace_of_them_and_keeps_the_account(
    noor: Engine, outbox: Path
) -> None:
    message = _noor_history(noor, outbox)
    neighbour = _neighbour_rows(noor)
    account_files = {p for p in (outbox / f"retention-{FORGOTTEN}").iterdir() if p != message}

    erasure = forget_contact(noor, outbox, FORGOTTEN, "c-7", actor="cli:privacy-officer")

    ours = [r for r in json.loads(_everything(noor)) if NEIGHBOUR not in json.dumps(r)]
    assert NAMES_NOOR.search(json.dumps(ours)) is None
    assert erasure.rows == {
        "customers": 1,
        "journey_snapshots": 1,
        "outbox": 1,
        "delivery_attempts": 1,
        "suppressions": 1,
        "inbox": 1,
    }
    assert (erasure.outbox_files_removed, message.exists()) == (1, False)
    assert set((outbox / f"retention-{FORGOTTEN}").iterdir()) == account_files
    customer = load_customer(noor, FORGOTTEN)
    assert customer.contacts == [] and customer.profile.email == "dana@acme.example"
    assert count(noor, OutboxRow) == 2 and count(noor, InboxRow) == 2  # the account's stay
    assert _neighbour_rows(noor) == neighbour  # the same person at another account too
    with session(noor) as db:
        entry = db.exec(select(AuditRow).where(AuditRow.action == "contact_forgotten")).one()
    assert (entry.actor, entry.customer_id) == ("cli:privacy-officer", FORGOTTEN)
    assert entry.detail == {"erased": erasure.rows}


def test_a_contact_dry_run_counts_and_changes_nothing(noor: Engine, outbox: Path) -> None:
    _noor_history(noor, outbox)
    before = _everything(noor)

    erasure = forget_contact(noor, outbox, FORGOTTEN, "c-7", actor="cli", dry_run=True)

    assert erasure.rows["outbox"] == 1 and erasure.rows["customers"] == 1
    assert _everything(noor) == before


@pytest.mark.parametrize(
    ("customer_id", "contact_id", "named"),
    [
        ("nobody", "c-7", "CUSTOMER_ID: customer 'nobody' is not in the database"),
        (FORGOTTEN, "c-8", "--contact 'c-8': not a contact of customer 'cust-001'"),
        (FORGOTTEN, "c-1", "--contact 'c-1' is the primary contact (profile.email)"),
    ],
)
def test_a_contact_that_cannot_be_forgotten_is_refused_naming_it(
    engine: Engine, outbox: Path, customer_id: str, contact_id: str, named: str
) -> None:
    dana = {"contact_id": "c-1", "name": "Dana", "email": "dana@acme.example"}
    _customer_with_history(engine, outbox, FORGOTTEN, "dana@acme.example", [dana, NOOR])
    before = _everything(engine)

    with pytest.raises(InvalidInput, match=re.escape(named)):
        forget_contact(engine, outbox, customer_id, contact_id, actor="cli")

    assert _everything(engine) == before


def test_forget_one_contact_from_the_cli(cli_database: str) -> None:
    engine = make_engine(cli_database)
    save_customer(engine, make_customer(contacts=[NOOR]))

    shown = runner.invoke(starter.app, ["forget", "cust-001", "--contact", "c-7"])
    done = runner.invoke(starter.app, ["forget", "cust-001", "--contact", "c-7", "--yes"])
    again = runner.invoke(starter.app, ["forget", "cust-001", "--contact", "c-7", "--yes"])

    assert shown.exit_code == 0 and "nothing changed" in shown.stdout
    assert done.exit_code == 0, done.output
    assert "forgotten" in done.stdout and "Temporal" in done.stdout
    assert load_customer(engine, "cust-001").contacts == []
    assert again.exit_code == 2 and "not a contact of customer 'cust-001'" in again.stderr
    engine.dispose()


def test_every_table_that_names_a_customer_is_erased_or_pseudonymised(engine: Engine) -> None:
    named = {
        table
        for table in inspect(engine).get_table_names()
        if "customer_id" in {c["name"] for c in inspect(engine).get_columns(table)}
    }
    handled = {table_name(t) for t in (*ERASED, *PSEUDONYMISED)}
    assert named == handled, "say in retention/store/erasure.py what forget does to them"


# ---- the purge -----------------------------------------------------------------------------


def _aged(engine: Engine, days: int) -> None:
    """Every dated row `days` old."""
    with session(engine) as db:
        for table, (_, column) in DATED.items():
            for row in db.exec(select(table)).all():
                setattr(row, column, NOW - timedelta(days=days))
                db.add(row)


def test_the_purge_removes_what_is_older_than_its_category_keeps(
    history: Engine, outbox: Path
) -> None:
    _aged(history, days=400)  # past support's year, inside usage's two years
    rows = {table: count(history, table) for table in DATED}

    purge = purge_expired(history, outbox, RetentionPeriods(), NOW)

    for table, (category, _) in DATED.items():
        gone = rows[table] if category == "support" else 0
        assert purge.deleted[table_name(table)] == gone, table_name(table)
        assert count(history, table) == rows[table] - gone
    assert rows[OutboxRow] == 2 and rows[HealthScoreRow] == 2
    assert purge.outbox_files_removed == 2
    assert not list(outbox.rglob("*.txt"))
    with session(history) as db:
        audited = db.exec(select(AuditRow).where(AuditRow.action == "data_purged")).one()
    assert audited.detail["deleted"]["outbox"] == 2


def test_a_purge_dry_run_deletes_nothing(history: Engine, outbox: Path) -> None:
    _aged(history, days=3000)
    before = _everything(history)

    purge = purge_expired(history, outbox, RetentionPeriods(), NOW, dry_run=True)

    assert purge.deleted["customers"] == 2
    assert _everything(history) == before


async def test_the_scheduled_purge_workflow_deletes_what_has_expired(
    world: JourneyWorld, history: Engine
) -> None:
    _aged(history, days=400)

    handle = await world.client.start_workflow(
        DataPurge.run, PurgeRequest(), id=f"purge-{uuid4()}", task_queue=world.task_queue
    )
    world.workflows.append(handle)
    purge = await handle.result()

    assert purge.deleted["outbox"] == 2 and purge.deleted["customer_health_scores"] == 0
    assert count(history, OutboxRow) == 0


@pytest.mark.parametrize(
    ("given", "every"),
    [
        ("P1D", timedelta(days=1)),
        ("3600", timedelta(hours=1)),
        ("0", timedelta(0)),
        ("off", timedelta(0)),
    ],
)
def test_the_purge_interval_reads_as_an_operator_writes_it(
    monkeypatch: pytest.MonkeyPatch, given: str, every: timedelta
) -> None:
    monkeypatch.setenv("RETENTION_DATA_PURGE_EVERY", given)

    assert Settings().data_purge_every == every
