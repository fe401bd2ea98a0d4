"""One page of the portfolio: read, assess, decide, record — the way a journey's first
assessment does it, but for hundreds of customers at once."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime
from itertools import islice
from typing import Any

from sqlalchemy import Engine
from sqlmodel import SQLModel

from retention.customer import CustomerSnapshot, parse_customer
from retention.errors import RetentionError
from retention.rulebook.decide import decide, decision_facts, starts_journey
from retention.rulebook.loader import Rulebook
from retention.scan.requests import PageRequest, ScanFailure, ScoredPage
from retention.scoring.assessment import Assessment, ChurnScorer, assess_customers
from retention.scoring.sentiment import InteractionScorer, vader_score
from retention.store.records import assessment_rows
from retention.store.scans import customer_page, record_page, recorded_page
from retention.store.tables import ScanPageRow

BATCH = 100  # customers scored per model call; the activity heartbeats after each batch


def score_page(
    engine: Engine,
    rulebook: Rulebook,
    scorer: ChurnScorer | None,
    request: PageRequest,
    heartbeat: Callable[[int], None] = lambda scored: None,
    sentiment: InteractionScorer = vader_score,
) -> ScoredPage:
    """Score the page after `request.after` (up to `request.until` when planned) and record it;
    a page already recorded (a retried activity) is answered from its record, so nothing is
    scored or counted twice."""
    if (earlier := recorded_page(engine, request.scan_id, request.page)) is not None:
        return _answer(earlier)
    rows = customer_page(engine, request.after, request.page_size, request.until)
    customers, failures = _readable(rows)
    scored: list[Assessment] = []
    at_risk: list[str] = []
    for batch in _batches(customers, BATCH):
        for assessment in assess_customers(batch, rulebook, datetime.now(UTC), scorer, sentiment):
            try:
                decision = decide(rulebook, decision_facts(assessment))
            except RetentionError as exc:
                customer_id = assessment.customer.customer_id
                failures.append(ScanFailure(customer_id=customer_id, reason=str(exc)))
                continue
            scored.append(assessment)
            if starts_journey(rulebook, decision):
                at_risk.append(assessment.customer.customer_id)
        heartbeat(len(scored))
    record = ScanPageRow(
        scan_id=request.scan_id,
        page=request.page,
        last_customer_id=rows[-1][0] if rows else None,
        read=len(rows),
        scored=len(scored),
        at_risk_ids=at_risk,
        failures=[failure.model_dump() for failure in failures],
    )
    kept = record_page(engine, record, _score_rows(scored))
    return _answer(kept)


def _readable(rows: list[tuple[str, Any]]) -> tuple[list[CustomerSnapshot], list[ScanFailure]]:
    """Valid snapshots, and a failure naming the field for each stored one that is not."""
    customers, failures = [], []
    for customer_id, raw in rows:
        try:
            customers.append(
                parse_customer(_without_contacts(raw), source=f"customers[{customer_id}]")
            )
        except RetentionError as exc:
            failures.append(ScanFailure(customer_id=customer_id, reason=str(exc)))
    return customers, failures


def _without_contacts(raw: Any) -> Any:
    """The stored snapshot as scoring reads it. No score reads the contacts: health, risk, the
    model and the rules read `champion_status`, which the contacts settled when the snapshot was
    validated and saved. They are kept in a column of their own that the page does not read
    (`customer_page`); a row written whole (before migration 0020, or by a bulk insert) still
    holds them, and validating every person again cost a page time in proportion to them. The
    journey that addresses them reads them whole (`load_customer`)."""
    if isinstance(raw, dict) and "contacts" in raw:
        return {field: value for field, value in raw.items() if field != "contacts"}
    return raw


def _score_rows(assessments: Sequence[Assessment]) -> list[SQLModel]:
    """Health, prediction, sentiment and expansion rows, as a journey's assessment writes them
    (no journey id: the scan's scores belong to no journey)."""
    return [row for assessment in assessments for row in assessment_rows(None, assessment)]


def _answer(record: ScanPageRow) -> ScoredPage:
    return ScoredPage(
        page=record.page,
        read=record.read,
        scored=record.scored,
        last_customer_id=record.last_customer_id,
        at_risk_ids=list(record.at_risk_ids),
        failures=[ScanFailure.model_validate(failure) for failure in record.failures],
    )


def _batches(items: Sequence[CustomerSnapshot], size: int) -> Iterator[list[CustomerSnapshot]]:
    it = iter(items)
    while batch := list(islice(it, size)):
        yield batch
