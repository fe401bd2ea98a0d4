"""The report from a database seeded the way journeys write it: customers, assessments, journey
records and delivered steps, through the store's own functions."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from analytics_data import RULES
from factories import make_customer, make_request, make_step
from sqlalchemy import Engine
from sqlmodel import select
from typer.testing import CliRunner

import starter
from retention.analytics.period import Period
from retention.analytics.reader import read_period
from retention.analytics.report import Report, build_report, write_report
from retention.delivery.send import deliver
from retention.journey_state import JourneyState, StrategyChange
from retention.scoring.assessment import assess_customer
from retention.store.db import make_engine, session
from retention.store.records import record_assessment, record_journey, save_customer
from retention.store.tables import JourneyRow

NOW = datetime.now(UTC)
STARTED, FINISHED = NOW - timedelta(hours=3), NOW + timedelta(hours=1)
PERIOD = Period.from_days((NOW - timedelta(days=2)).date(), (NOW + timedelta(days=1)).date())

# customer → (contract value, expansion revenue, churn probability, journey: None, or
# (held out, outcome, [(action, owner, channel)]))
PORTFOLIO = {
    "acme": (30_000, 0, 0.9, (False, "churned", [("retention_offer", "automated", "email"),
                                                 ("executive_call", "csm", "csm_task")])),
    "birch": (10_000, 0, 0.85, (False, "saved", [("retention_offer", "automated", "email")])),
    "cedar": (10_000, 0, 0.7, (True, "saved", [("retention_offer", "automated", "email")])),
    "delta": (10_000, 2_000, 0.1, None),
}  # fmt: skip


def seed(engine: Engine, outbox: Path) -> dict[str, float]:
    """Write the portfolio; returns each customer's health score as assessed."""
    health = {}
    for customer_id, (acv, expansion, probability, journey) in PORTFOLIO.items():
        customer = make_customer(
            profile={"customer_id": customer_id},
            financial={"annual_contract_value": acv, "expansion_revenue": expansion},
        )
        save_customer(engine, customer)
        workflow_id = f"retention-{customer_id}"
        assessment = assess_customer(customer, RULES, STARTED, upstream_probability=probability)
        record_assessment(engine, workflow_id if journey else None, assessment)
        health[customer_id] = assessment.health.overall
        if journey is not None:
            held_out, outcome, steps = journey
            key = f"{workflow_id}:run-1"
            for action, owner, channel in steps:
                step = make_step(action, owner=owner, channel=channel, fallback_channel=None)
                request = make_request(step, customer, held_out=held_out).model_copy(
                    update={"journey_id": workflow_id, "journey_key": key}
                )
                deliver(engine, outbox, RULES.templates, request)
            record_journey(engine, workflow_id, closed_journey(customer_id, key, held_out, outcome))
    return health


def closed_journey(customer_id: str, key: str, held_out: bool, outcome: str) -> JourneyState:
    change = StrategyChange(at=STARTED, from_strategy=None, to_strategy="critical_save", why="")
    return JourneyState(
        customer_id=customer_id, journey_key=key, started_at=STARTED, stage="closed",
        strategy="critical_save", risk_tier="critical", holdout=held_out, outcome=outcome,
        finished_at=FINISHED, strategy_history=[change],
    )  # fmt: skip


@pytest.mark.database
def test_journeys_record_their_holdout_and_strategy_path(engine: Engine, tmp_path: Path) -> None:
    seed(engine, tmp_path / "outbox")

    with session(engine) as db:
        rows = {r.customer_id: r for r in db.exec(select(JourneyRow)).all()}
    assert {c: (r.holdout, r.strategy_path) for c, r in rows.items()} == {
        "acme": (False, ["critical_save"]),
        "birch": (False, ["critical_save"]),
        "cedar": (True, ["critical_save"]),
    }


@pytest.mark.database
def test_the_report_from_the_database(engine: Engine, tmp_path: Path) -> None:
    health = seed(engine, tmp_path / "outbox")

    records = read_period(engine, PERIOD, RULES.strategy_order)
    report = build_report(records, RULES.kpis, RULES.version, NOW)

    kpis = {k.name: k.value for k in report.kpis}
    assert kpis == pytest.approx(kpis | {
        "logo_retention": 3 / 4,
        "gross_retention": 1 - 30_000 / 60_000,
        "net_retention": (60_000 - 30_000 + 2_000) / 60_000,
        "coverage": 1.0,
        "average_health": sum(health.values()) / 4,
        "automation_rate": 2 / 3,  # cedar's offer was held out, not sent
        "intervention_success": 1 / 3,  # birch's offer
        "prediction_accuracy": 1 / 2,  # untreated: cedar (0.7, stayed) wrong, delta right
        "false_positive_rate": 1 / 2,
        "early_warning_days": 4 / 24,  # assessed 3 h before the start, churned 1 h after it
        "escalation_rate": 0.0,
    })  # fmt: skip
    assert 3 <= (kpis["high_risk_response_hours"] or 0) < 3.5  # delivered as the test ran
    overall = report.lift[0]
    assert (overall.treated.customers, overall.treated.retained) == (2, 1)
    assert (overall.holdout.customers, overall.holdout.retained) == (1, 1)
    assert not overall.conclusive and "too wide to conclude" in overall.verdict
    assert report.churn_reasons and sum(report.churn_reasons.values()) == 1

    write_report(report, tmp_path / "r.html", tmp_path / "r.json")
    assert Report.model_validate_json((tmp_path / "r.json").read_text()) == report


def test_starter_report_prints_kpis_and_writes_both_files(
    tmp_path: Path, cli_database: str
) -> None:
    engine = make_engine(cli_database)
    seed(engine, tmp_path / "outbox")
    engine.dispose()
    first, last = PERIOD.start.date().isoformat(), PERIOD.last_day.isoformat()
    html, out = tmp_path / "report.html", tmp_path / "report.json"

    result = CliRunner().invoke(
        starter.app,
        ["report", "--from", first, "--to", last, "--html", str(html), "--json", str(out)],
    )

    assert result.exit_code == 0, result.output
    assert "Logo retention" in result.stdout and "75.0 %" in result.stdout
    document = json.loads(out.read_text())
    assert next(k for k in document["kpis"] if k["name"] == "logo_retention")["value"] == 0.75
    assert html.read_text().count("<svg") == 6


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--from", "2026-11-30", "--to", "2026-11-01"], "--to: 2026-11-01 is before --from"),
        (["--from", "2026-13-01", "--to", "2026-11-01"], "--from"),
    ],
)
def test_a_bad_period_is_refused_naming_the_option(
    tmp_path: Path, cli_database: str, args: list[str], message: str
) -> None:
    html = tmp_path / "report.html"

    result = CliRunner().invoke(starter.app, ["report", *args, "--html", str(html)])

    assert result.exit_code == 2
    assert message in result.output
    assert not html.exists()


def test_an_unwritable_report_path_is_one_line_naming_it(tmp_path: Path, cli_database: str) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")

    result = CliRunner().invoke(
        starter.app,
        ["report", "--from", "2026-11-01", "--to", "2026-11-30", "--html", f"{blocker}/r.html"],
    )

    assert result.exit_code == 1
    assert result.stderr.startswith(f"error: {blocker}/r.html: cannot write the report: ")
    assert len(result.stderr.strip().splitlines()) == 1
