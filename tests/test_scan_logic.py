"""The portfolio scan's logic without Temporal: who is at risk, paging, counting, recording."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from conftest import RULES_DIR
from factories import case_facts, count, make_customer, refused_at, replace_once
from journey_stories import AT_RISK, WAVERING
from populations import at_risk_by_rules, save_customers_bulk
from pydantic import ValidationError
from sqlalchemy import Engine
from sqlmodel import select

from activities.scan import ScanActivities
from retention.errors import RulebookError
from retention.model.generator import generate_population
from retention.model.scorer import load_scorer
from retention.rulebook.decide import decide, starts_journey
from retention.rulebook.loader import load_rulebook
from retention.rulebook.source import RulebookSource
from retention.runtime.settings import ROOT, Settings
from retention.scan.requests import (
    MAX_FAILURES_KEPT,
    PageRequest,
    ScanFailure,
    ScanFigures,
    ScanResult,
    ScoredPage,
    StartedJourneys,
)
from retention.scan.scoring import score_page
from retention.scoring.assessment import assess_customer, assess_customers
from retention.store.db import session
from retention.store.records import save_customer
from retention.store.scans import list_scan_runs, page_ends, recorded_page
from retention.store.tables import ChurnPredictionRow, CustomerRow, HealthScoreRow

# ---- at risk, per the rules (journey.yaml `scan:`) -------------------------------------------


@pytest.mark.parametrize(
    ("probability", "starts"),
    [(0.9, True), (0.61, True), (0.41, True), (0.4, False), (0.05, False)],
)
def test_the_shipped_rules_start_a_journey_for_every_strategy_but_standard(
    probability: float, starts: bool
) -> None:
    rulebook = load_rulebook(RULES_DIR)
    decision = decide(rulebook, case_facts(churn_probability=probability))
    assert starts_journey(rulebook, decision) is starts


def test_a_scan_condition_must_hold_too(rules_copy: Path) -> None:
    replace_once(
        rules_copy / "journey.yaml",
        "  skip_strategies: [standard]",
        "  skip_strategies: [standard]\n  start_journey_when: {annual_contract_value: {gte: 5000}}",
    )
    rulebook = load_rulebook(rules_copy)
    small = decide(rulebook, case_facts(churn_probability=0.9, annual_contract_value=4_000.0))
    large = decide(rulebook, case_facts(churn_probability=0.9, annual_contract_value=6_000.0))
    calm = decide(rulebook, case_facts(churn_probability=0.1, annual_contract_value=90_000.0))
    assert (small.strategy, large.strategy) == ("critical_save", "critical_save")
    assert [starts_journey(rulebook, d) for d in (small, large, calm)] == [False, True, False]


def test_without_a_scan_section_the_least_intensive_strategy_is_skipped(rules_copy: Path) -> None:
    replace_once(rules_copy / "journey.yaml", "scan:\n  skip_strategies: [standard]\n", "")
    rulebook = load_rulebook(rules_copy)
    assert rulebook.scan_skips == ["standard"]
    assert not starts_journey(rulebook, decide(rulebook, case_facts(churn_probability=0.3)))


def test_an_unknown_skipped_strategy_is_refused_with_its_line(rules_copy: Path) -> None:
    path = rules_copy / "journey.yaml"
    replace_once(path, "skip_strategies: [standard]", "skip_strategies: [standrd]")
    with pytest.raises(RulebookError, match=refused_at(path, "skip_strategies: [") + ".*'standrd'"):
        load_rulebook(rules_copy)


def test_an_unknown_fact_in_the_scan_condition_is_refused_with_its_line(rules_copy: Path) -> None:
    path = rules_copy / "journey.yaml"
    replace_once(
        path,
        "  skip_strategies: [standard]",
        "  skip_strategies: [standard]\n  start_journey_when: {contract_value: {gte: 5000}}",
    )
    with pytest.raises(RulebookError, match=refused_at(path, "start_journey_when: {contract")):
        load_rulebook(rules_copy)


# ---- counting --------------------------------------------------------------------------------


def _failures(n: int, prefix: str) -> list[ScanFailure]:
    return [ScanFailure(customer_id=f"{prefix}-{i}", reason="bad") for i in range(n)]


def test_figures_add_up_page_by_page_and_keep_a_bounded_list_of_failures() -> None:
    figures = ScanFigures()
    for n in range(1, 4):
        page = ScoredPage(
            page=n, read=10, scored=9, at_risk_ids=["a", "b", "c"], failures=_failures(1, f"p{n}")
        )
        starts = StartedJourneys(started=1, skipped=1, failures=_failures(1, f"s{n}"))
        figures = figures.plus(page, starts)
    assert (figures.pages, figures.scored, figures.at_risk) == (3, 27, 9)
    assert (figures.started, figures.skipped, figures.failed) == (3, 3, 6)
    many = figures.plus(
        ScoredPage(page=4, read=50, scored=0, failures=_failures(50, "x")), StartedJourneys()
    )
    assert many.failed == 56
    assert len(many.failures) == MAX_FAILURES_KEPT
    assert many.failures[0].customer_id == "p1-0"  # the first ones are kept


def test_the_scan_schedule_interval_reads_like_the_other_schedules() -> None:
    assert Settings(portfolio_scan_every="off").portfolio_scan_every == timedelta(0)
    assert Settings().portfolio_scan_every == timedelta(days=1)
    assert Settings(portfolio_scan_every="P1W").portfolio_scan_every == timedelta(weeks=1)
    with pytest.raises(ValidationError, match="portfolio_scan_every"):
        Settings(portfolio_scan_every="daily")


# ---- a page: scored, decided, recorded once --------------------------------------------------


def _customers(n: int) -> list:
    risky = [
        make_customer(profile={"customer_id": f"c-{i:03d}"}, **AT_RISK) for i in range(0, n, 3)
    ]
    wavering = [
        make_customer(profile={"customer_id": f"c-{i:03d}"}, **WAVERING) for i in range(1, n, 3)
    ]
    calm = [make_customer(profile={"customer_id": f"c-{i:03d}"}) for i in range(2, n, 3)]
    return risky + wavering + calm


@pytest.mark.database
def test_pages_by_id_cover_every_customer_once_and_find_the_at_risk(engine: Engine) -> None:
    customers = _customers(25)
    save_customers_bulk(engine, customers)
    rulebook = load_rulebook(RULES_DIR)
    pages, after = [], None
    for n in range(1, 10):
        page = score_page(
            engine, rulebook, None, PageRequest(scan_id="s1", page=n, after=after, page_size=10)
        )
        pages.append(page)
        after = page.last_customer_id
        if page.read < 10:
            break
    assert [p.read for p in pages] == [10, 10, 5]
    assert sum(p.scored for p in pages) == 25
    found = [c for p in pages for c in p.at_risk_ids]
    assert sorted(found) == sorted(at_risk_by_rules(customers, rulebook, None))
    assert len(found) == len(set(found))
    assert count(engine, HealthScoreRow) == count(engine, ChurnPredictionRow) == 25


@pytest.mark.database
def test_planned_pages_end_on_full_pages_and_a_customer_added_since_stays_in_its_page(
    engine: Engine,
) -> None:
    save_customers_bulk(engine, _customers(25))
    rulebook = load_rulebook(RULES_DIR)
    assert page_ends(engine, None, 10, 3) == ["c-009", "c-019"]  # the last 5 fill no page
    assert page_ends(engine, "c-019", 10, 3) == []
    save_customer(engine, make_customer(profile={"customer_id": "c-004b"}))  # after the plan
    planned = PageRequest(scan_id="s4", page=1, page_size=10, until="c-009")
    page = score_page(engine, rulebook, None, planned)
    assert (page.read, page.last_customer_id) == (11, "c-009")


@pytest.mark.database
def test_a_retried_page_is_answered_from_its_record_and_writes_nothing_more(engine: Engine) -> None:
    save_customers_bulk(engine, _customers(6))
    rulebook = load_rulebook(RULES_DIR)
    request = PageRequest(scan_id="s2", page=1, after=None, page_size=50)
    first = score_page(engine, rulebook, None, request)
    # the customers change between the attempts: the retry must still answer as the first did
    save_customer(engine, make_customer(profile={"customer_id": "c-002"}, **AT_RISK))
    again = score_page(engine, rulebook, None, request)
    assert again == first
    assert count(engine, HealthScoreRow) == 6


@pytest.mark.database
def test_an_unreadable_stored_customer_is_a_named_failure_not_a_crash(engine: Engine) -> None:
    save_customers_bulk(engine, _customers(3))
    broken = make_customer(profile={"customer_id": "c-001b"}).model_dump(mode="json")
    broken["usage"]["total_features"] = 0
    with session(engine) as db:
        db.add(CustomerRow(customer_id="c-001b", snapshot=broken))
    page = score_page(
        engine, load_rulebook(RULES_DIR), None, PageRequest(scan_id="s3", page=1, page_size=50)
    )
    assert (page.read, page.scored) == (4, 3)
    assert [f.customer_id for f in page.failures] == ["c-001b"]
    assert "usage.total_features" in page.failures[0].reason


@pytest.mark.database
def test_accounts_with_contacts_are_at_risk_in_a_scan_as_in_their_own_assessment(
    engine: Engine,
) -> None:
    customers = generate_population(40, seed=11, contacts=25).customers
    save_customers_bulk(engine, customers)
    rulebook = load_rulebook(RULES_DIR)
    page = score_page(engine, rulebook, None, PageRequest(scan_id="s5", page=1, page_size=50))
    assert (page.read, page.scored, page.failures) == (40, 40, [])
    expected = at_risk_by_rules(customers, rulebook, None)
    assert 0 < len(expected) < 40
    assert sorted(page.at_risk_ids) == sorted(expected)


@pytest.mark.database
def test_a_scan_scores_the_champion_status_the_contacts_settled(engine: Engine) -> None:
    gone = {"contact_id": "ana", "name": "Ana", "email": "ana@example.com", "roles": ["champion"]}
    customer = make_customer(
        relationship={"champion_status": "active"}, contacts=[gone | {"active": False}]
    )
    assert customer.relationship.champion_status == "left"
    save_customer(engine, customer)
    score_page(
        engine, load_rulebook(RULES_DIR), None, PageRequest(scan_id="s6", page=1, page_size=50)
    )
    with session(engine) as db:
        [prediction] = db.exec(select(ChurnPredictionRow)).all()
    assert "champion_risk" in [factor["name"] for factor in prediction.risk_factors]


@pytest.mark.database
def test_recording_a_scan_twice_keeps_one_row_with_the_latest_figures(engine: Engine) -> None:
    save_customers_bulk(engine, _customers(3))
    activities = ScanActivities(engine, RulebookSource(RULES_DIR))
    rulebook = load_rulebook(RULES_DIR)
    for scan_id in ("run-1", "other"):
        score_page(engine, rulebook, None, PageRequest(scan_id=scan_id, page=1, page_size=50))
    started = datetime(2026, 11, 26, 3, 0, tzinfo=UTC)
    running = ScanResult(
        scan_id="run-1", workflow_id="portfolio-scan-x", status="running", started_at=started,
        scored=500, at_risk=120, started=100, skipped=20, pages=1,
    )  # fmt: skip
    activities.record_scan(running)
    activities.record_scan(running)  # a retried activity
    assert recorded_page(engine, "run-1", 1) is not None  # kept while the scan may retry it
    done = running.model_copy(
        update={"status": "completed", "finished_at": started + timedelta(minutes=3), "runs": 2}
    )
    activities.record_scan(done)
    [row] = list_scan_runs(engine)
    assert (row.id, row.status, row.scored, row.started, row.runs) == (
        "run-1",
        "completed",
        500,
        100,
        2,
    )
    assert row.started_at == started and row.finished_at == started + timedelta(minutes=3)
    assert recorded_page(engine, "run-1", 1) is None  # the ended scan's pages are gone
    assert recorded_page(engine, "other", 1) is not None  # another scan's stay


def test_a_batch_is_assessed_exactly_as_one_customer_at_a_time() -> None:
    """The scan scores a page in one model call; a journey scores its customer alone. Only the
    drivers differ: the scan computes them for the customers the model flags."""
    customers = generate_population(40, seed=11).customers
    rulebook, scorer = load_rulebook(RULES_DIR), load_scorer(ROOT / "models" / "churn-default")
    assert scorer is not None
    at = datetime.now(UTC)
    batch = assess_customers(customers, rulebook, at, scorer)
    alone = [assess_customer(customer, rulebook, at, None, scorer) for customer in customers]
    flagged = [a.prediction.probability >= scorer.model.threshold for a in alone]
    assert 0 < sum(flagged) < len(flagged)
    for in_batch, one, shown in zip(batch, alone, flagged, strict=True):
        assert one.prediction.drivers
        expected = (
            one
            if shown
            else one.model_copy(
                update={
                    "prediction": one.prediction.model_copy(
                        update={"drivers": [], "driver_bias": None}
                    )
                }
            )
        )
        assert in_batch == expected
    assert len({a.prediction.probability for a in batch}) > 10  # a population, not one customer
