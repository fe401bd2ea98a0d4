"""`simulate`: a generated portfolio with a known treatment effect, written like journeys write,
measured by the report: the truth must sit inside the measured intervals."""

from __future__ import annotations

from pathlib import Path

import pytest
from analytics_data import RULES
from sqlalchemy import Engine
from sqlmodel import select
from typer.testing import CliRunner

import starter
from retention.analytics.simulation import (
    TREATMENT_EFFECT,
    SimulationRequest,
    simulate,
)
from retention.store.db import session
from retention.store.tables import InterventionRow, JourneyRow


@pytest.mark.database
def test_the_measured_lift_holds_the_true_lift(engine: Engine) -> None:
    request = SimulationRequest(customers=1200, days=90, seed=1)

    result = simulate(engine, RULES, request)  # baseline-0 scores: fast

    with session(engine) as db:
        journeys = db.exec(select(JourneyRow)).all()
        held_steps = db.exec(
            select(InterventionRow.status).join(
                JourneyRow, JourneyRow.journey_key == InterventionRow.journey_key
            ).where(JourneyRow.holdout == True)  # noqa: E712 - SQL, not Python
        ).all()  # fmt: skip
    assert len(journeys) == result.journeys == result.report.journeys
    assert {j.outcome for j in journeys} == {"churned", "completed"}
    assert 0.05 < result.held_out / result.journeys < 0.15  # the rules' 10 %, by hash
    assert held_steps and set(held_steps) == {"held_out"}
    by_scope = {lift.scope: lift for lift in result.lifts}
    assert set(by_scope) == {"overall", *TREATMENT_EFFECT}
    for lift in result.lifts:
        assert 0 < lift.true_lift < max(TREATMENT_EFFECT.values())
        assert lift.covered is True, (lift.scope, lift.true_lift, lift.measured.verdict)
    # the strongest effect on the riskiest customers shows as the largest true lift
    assert by_scope["critical_save"].true_lift > by_scope["nurture"].true_lift


def test_starter_simulate_prints_truth_beside_measure_and_never_overwrites(
    tmp_path: Path, cli_database: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RETENTION_MODEL_DIR", "baseline")  # settings are read afresh
    target = tmp_path / "sim.db"
    args = ["simulate", "--customers", "300", "--days", "60", "--database", str(target)]

    first = CliRunner().invoke(starter.app, [*args, "--json", str(tmp_path / "sim.json")])
    again = CliRunner().invoke(starter.app, args)

    assert first.exit_code == 0, first.output
    assert "true lift" in first.stdout and "overall" in first.stdout
    assert (tmp_path / "sim.json").exists()
    assert again.exit_code == 2
    assert f"--database: {target} exists" in again.stderr
