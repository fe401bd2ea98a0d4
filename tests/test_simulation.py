"""`simulate`: a generated portfolio through the real RetentionJourney on the time-skipping
server, with a known response to treatment: the truth must sit inside the measured interval."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
from conftest import RULES_DIR
from sqlmodel import select
from typer.testing import CliRunner

import starter
from cli.simulate import run_simulation
from retention.analytics.response import (
    DEFAULT_EFFECT,
    EFFECTS,
    CustomerResponse,
    untreated_churn,
)
from retention.analytics.simulation import SimulationRequest
from retention.rulebook.loader import load_rulebook
from retention.store.db import make_engine, session
from retention.store.tables import InterventionRow, JourneyRow, OutboxRow

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def day(n: float) -> datetime:
    return T0 + timedelta(days=n)


def test_delivered_actions_cut_the_hazard_once_each_from_the_next_day() -> None:
    response = CustomerResponse(probability=0.5, threshold=1.0)
    response.deliver("executive_call", "csm_task", day(0.5))
    response.deliver("executive_call", "phone", day(3))  # a second one adds nothing
    response.deliver("alert_csm", "internal", day(0.5))
    response.deliver("executive_outreach", "internal", day(0.5))  # reached no customer
    response.deliver("re_engagement_away", "email", day(2))  # a campaign message

    assert response.multiplier(day(0)) == 1
    assert response.multiplier(day(1)) == pytest.approx(1 - EFFECTS["executive_call"])
    assert response.multiplier(day(5)) == pytest.approx(
        (1 - EFFECTS["executive_call"]) * (1 - DEFAULT_EFFECT)
    )
    assert untreated_churn(0.5, 180) == pytest.approx(0.5)
    assert untreated_churn(0.5, 90) == pytest.approx(1 - math.sqrt(0.5))


@pytest.mark.slow  # 20,000 customers for 90 days: the 4-sd bound needs that many
@pytest.mark.parametrize("treated", [False, True])
def test_expected_churn_is_what_the_customers_go_on_to_do(treated: bool) -> None:
    """The compensator each customer accumulates averages to the share who churn, treated or
    not: the truth the simulation compares the measured lift with is unbiased."""
    days, n = 90, 20_000
    thresholds = np.random.default_rng(7).standard_exponential(n)
    responses = [CustomerResponse(0.7, float(e)) for e in thresholds]
    for d in range(1, days + 1):
        for response in responses:
            if treated and d in (2, 10) and response.stays:  # delivered while they stay
                response.deliver("retention_offer" if d == 2 else "csm_checkin", "email", day(d))
            response.live_day(d, day(d - 1))

    churned = sum(not r.stays for r in responses) / n
    expected = sum(r.expected_churn for r in responses) / n
    sd = math.sqrt(expected * (1 - expected) / n)
    assert abs(churned - expected) < 4 * sd
    untreated = untreated_churn(0.7, days)
    if treated:
        assert expected < untreated - 0.05
    else:
        assert abs(churned - untreated) < 4 * sd


@pytest.mark.temporal  # the simulation runs the journeys on the time-skipping server
async def test_journeys_run_and_the_measured_lift_holds_the_true_lift(tmp_path: Path) -> None:
    request = SimulationRequest(customers=400, days=35, seed=1)
    engine = make_engine(f"sqlite:///{tmp_path / 'sim.db'}")
    outbox = tmp_path / "sim-outbox"

    result = await run_simulation(
        engine, RULES_DIR, outbox, load_rulebook(RULES_DIR), request, scorer=None
    )

    with session(engine) as db:
        journeys = db.exec(select(JourneyRow)).all()
        steps = db.exec(
            select(JourneyRow.holdout, InterventionRow.status).join(
                JourneyRow, JourneyRow.journey_key == InterventionRow.journey_key
            )
        ).all()  # fmt: skip
        captured = db.exec(select(OutboxRow.path).where(OutboxRow.status == "captured")).all()
        reached = db.exec(
            select(InterventionRow.customer_id, InterventionRow.action).distinct().where(
                InterventionRow.status == "captured", InterventionRow.channel != "internal"
            )
        ).all()  # fmt: skip
    engine.dispose()
    assert len(journeys) == result.journeys == result.report.journeys
    assert len({j.customer_id for j in journeys}) == result.at_risk > 0
    assert result.journeys > result.at_risk  # closed journeys were followed by new ones
    assert {"churned", "saved"} <= {j.outcome for j in journeys}
    assert all(j.outcome and j.finished_at for j in journeys)
    assert 0 < result.held_out < result.at_risk
    assert {status for held, status in steps if held} == {"held_out"}
    assert {status for held, status in steps if not held} == {"captured"}
    assert captured and all(Path(path).is_file() for path in captured)
    assert result.delivered == len(reached)  # the truth counted what the journeys delivered
    assert result.misread == 0  # every churn the truth decided is a churned journey, no more
    by_scope = {lift.scope: lift for lift in result.lifts}
    overall = by_scope["overall"]
    assert overall.covered is True, (overall.true_lift, overall.measured.verdict)
    # what the journeys delivered counts: the strongest actions go to the riskiest customers
    assert by_scope["critical_save"].true_lift > by_scope["nurture"].true_lift > 0


@pytest.mark.temporal
def test_starter_simulate_prints_truth_beside_measure_and_never_overwrites(
    tmp_path: Path, cli_database: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RETENTION_MODEL_DIR", "baseline")  # settings are read afresh
    target = tmp_path / "sim.db"
    args = ["simulate", "--customers", "120", "--days", "5", "--database", str(target)]

    first = CliRunner().invoke(starter.app, [*args, "--json", str(tmp_path / "sim.json")])
    again = CliRunner().invoke(starter.app, args)

    assert first.exit_code == 0, first.output
    assert "true lift" in first.stdout and "overall" in first.stdout
    assert "at-risk customers" in first.stdout
    assert (tmp_path / "sim.json").exists()
    assert (tmp_path / "sim-outbox").is_dir()
    assert again.exit_code == 2
    assert f"--database: {target} exists" in again.stderr
