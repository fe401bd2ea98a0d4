"""KPI targets live in rules/kpis.yaml: the design's numbers, checked like every rule file."""

from __future__ import annotations

from pathlib import Path

import pytest
from factories import refused_at, replace_once

from retention.errors import RulebookError
from retention.kpis import KpiTarget
from retention.rulebook.loader import load_rulebook
from retention.runtime.settings import ROOT


def test_the_shipped_targets_are_the_designs() -> None:
    targets = load_rulebook(ROOT / "rules").kpis.targets

    bounds = {name: (t.at_least, t.at_most, t.below) for name, t in targets.items()}
    assert bounds == {
        "gross_retention": (0.90, None, None),
        "net_retention": (1.10, None, None),
        "logo_retention": (0.85, None, None),
        "prevented_churn": (0.40, None, None),
        "false_positive_rate": (None, None, 0.10),
        "early_warning_days": (60, None, None),
        "coverage": (0.95, None, None),
        "high_risk_response_hours": (None, 24, None),
        "intervention_success": (0.60, None, None),
        "automation_rate": (0.75, None, None),
        "escalation_rate": (None, 0.15, None),
    }


@pytest.mark.parametrize(
    ("target", "value", "met"),
    [
        (KpiTarget(at_least=0.9), 0.9, True),
        (KpiTarget(at_least=0.9), 0.89, False),
        (KpiTarget(at_most=24), 24, True),
        (KpiTarget(at_most=24), 24.5, False),
        (KpiTarget(below=0.1), 0.1, False),
        (KpiTarget(below=0.1), 0.09, True),
    ],
)
def test_a_target_is_met_on_the_right_side_of_its_bound(
    target: KpiTarget, value: float, met: bool
) -> None:
    assert target.met(value) is met


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        ("gross_retention: {at_least: 0.90,", "gross_retention: {at_least: 0.90, at_most: 1,",
         "exactly one of at_least, at_most or below"),
        ("coverage: {at_least: 0.95,", "coverage: {at_least: most,", "valid number"),
        ("coverage:", "coverag:", "coverag"),
        ("  csm: 120", "  csm: -5", "greater than or equal to 0"),
    ],
)  # fmt: skip
def test_a_broken_target_is_refused_at_its_line(
    rules_copy: Path, old: str, new: str, message: str
) -> None:
    path = rules_copy / "kpis.yaml"
    replace_once(path, old, new)

    with pytest.raises(RulebookError, match=refused_at(path, new.split(":")[0]) + ".*" + message):
        load_rulebook(rules_copy)
