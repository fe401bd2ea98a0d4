"""The report over what real journeys wrote: a treated and a held-out journey on the
time-skipping server, with the real activities and database."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from analytics_data import RULES
from conftest import JourneyWorld
from journey_stories import critical_customer, start, until
from sqlmodel import select

from retention.analytics.period import Period
from retention.analytics.reader import read_period
from retention.analytics.report import build_report
from retention.journey_state import JourneyState
from retention.store.db import session
from retention.store.records import save_customer
from retention.store.tables import InterventionRow, JourneyRow
from workflows.retention_journey import RetentionJourney

pytestmark = pytest.mark.database


def offer_sent(state: JourneyState) -> bool:
    return any(s.step.action == "retention_offer" and s.status == "done" for s in state.steps)


async def test_the_report_reads_what_real_journeys_wrote(world: JourneyWorld) -> None:
    kept, lost = critical_customer(held_out=False), critical_customer(held_out=True)
    for customer in (kept, lost):
        save_customer(world.engine, customer)  # 90,000 a year each
    outcomes = {}
    for customer, event in ((kept, "renewed"), (lost, "churned")):
        handle = await start(world, customer)
        await until(world, handle, offer_sent)
        await handle.signal(RetentionJourney.customer_event, {"type": event, "data": {}})
        outcomes[customer.customer_id] = await handle.result()
    last = max(final.finished_at or final.started_at for final in outcomes.values())
    today = datetime.now(UTC).date()
    period = Period.from_days(today - timedelta(days=1), last.date() + timedelta(days=1))

    report = build_report(
        read_period(world.engine, period, RULES.strategy_order), RULES.kpis, RULES.version, last
    )

    with session(world.engine) as db:
        journeys = {j.customer_id: j for j in db.exec(select(JourneyRow)).all()}
        sent = db.exec(select(InterventionRow).where(InterventionRow.status == "captured")).all()
    assert {c: (j.holdout, j.outcome) for c, j in journeys.items()} == {
        kept.customer_id: (False, "saved"),
        lost.customer_id: (True, "churned"),
    }
    assert journeys[kept.customer_id].strategy_path == ["critical_save"]
    overall = report.lift[0]
    assert (overall.treated.customers, overall.treated.retained) == (1, 1)
    assert (overall.holdout.customers, overall.holdout.retained) == (1, 0)
    assert overall.difference == 1.0 and not overall.conclusive
    kpis = {k.name: k for k in report.kpis}
    assert kpis["logo_retention"].value == 0.5
    assert kpis["saved_revenue"].value == 90_000  # lift 1.0 × the one treated contract
    assert "too wide to conclude" in (kpis["saved_revenue"].reason or "")
    assert kpis["coverage"].value == 1.0
    # only the treated journey's delivered steps count; the held-out ones were never sent
    assert {i.customer_id for i in sent} == {kept.customer_id}
    assert sum(s.delivered for s in report.interventions) == len(sent)
    assert report.funnel[0].model_dump() == {
        "strategy": "critical_save", "step": "journeys started", "journeys": 1,
    }  # fmt: skip
    assert report.funnel[-1].step == "kept" and report.funnel[-1].journeys == 1
