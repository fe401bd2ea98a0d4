"""rules/scoring.yaml: edits change scores and risk factors; broken edits name file and line."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from factories import make_customer, replace_once
from sqlalchemy import Engine
from typer.testing import CliRunner

from activities.assess import AssessActivities, AssessInput
from retention.errors import RulebookError
from retention.rulebook.check import check
from retention.rulebook.loader import load_rulebook
from retention.rulebook.source import RulebookSource
from retention.runtime.settings import get_settings
from retention.scoring.health import score_health
from retention.scoring.risk import risk_factors
from starter import app

AT = datetime(2025, 3, 1, 9, 30, tzinfo=UTC)
RULES = Path(__file__).resolve().parent.parent / "rules"
SEED_WEIGHTS = """\
    product_usage: 0.25
    engagement: 0.20
    support: 0.15
    financial: 0.20
    relationship: 0.20"""
USAGE_HEAVY_WEIGHTS = """\
    product_usage: 0.45
    engagement: 0.10
    support: 0.15
    financial: 0.10
    relationship: 0.20"""
DETAIL_FIELDS = r"factors\.2\.detail: .*only \{value\} can be filled in"
DETAIL_FORMAT = r"factors\.0\.detail: .*cannot fill in \{value\}"
INACTIVE_AFTER_14 = "metric: days_since_last_login\n      comparison: above\n      threshold: 14"


def test_a_weight_edit_changes_the_overall(rules_copy: Path) -> None:
    shipped = load_rulebook(rules_copy)
    replace_once(rules_copy / "scoring.yaml", SEED_WEIGHTS, USAGE_HEAVY_WEIGHTS)
    edited = load_rulebook(rules_copy)

    customer = make_customer()  # product usage 86.5 beats its other categories
    before = score_health(customer, AT, shipped.scoring.health)
    after = score_health(customer, AT, edited.scoring.health)
    assert before.categories == after.categories
    assert (before.overall, after.overall) == (74.5, 80.5)
    assert edited.version != shipped.version


def test_a_risk_threshold_edit_changes_which_factors_fire(rules_copy: Path) -> None:
    customer = make_customer(usage={"days_since_last_login": 10})
    assert risk_factors(customer, load_rulebook(rules_copy).scoring.risk) == []

    replace_once(rules_copy / "scoring.yaml", INACTIVE_AFTER_14, INACTIVE_AFTER_14[:-2] + "7")
    factors = risk_factors(customer, load_rulebook(rules_copy).scoring.risk)
    assert [(f.name, f.detail) for f in factors] == [("inactive", "No login for 10 days.")]


def test_a_new_risk_factor_can_be_added(rules_copy: Path) -> None:
    with (rules_copy / "scoring.yaml").open("a") as scoring:
        scoring.write(
            "    - {name: long_silence, metric: days_since_last_login, comparison: above,\n"
            "       threshold: 60, severity: critical, impact: 0.5, action: executive_call,\n"
            '       detail: "Silent for {value} days."}\n'
        )
    customer = make_customer(usage={"days_since_last_login": 61})
    factors = risk_factors(customer, load_rulebook(rules_copy).scoring.risk)
    assert [f.name for f in factors] == ["long_silence", "inactive"]


@pytest.mark.parametrize(
    ("old", "new", "where", "named"),
    [
        ("support: 0.15", "support: 0.25", 8, r"health\.weights: .*add up to 1, .* 1\.1"),
        ("support: 0.15", "suport: 0.15", 11, r"health\.weights\.suport: Extra inputs"),
        ("metric: usage_decline\n", "metric: logins\n", 87, "factors.0.metric: .*metric 'logins'"),
        ("threshold: 14", "threshold: two weeks", 98, "factors.1.threshold: .*is a number"),
        ("threshold: 0\n", "threshold: yes\n", 116, "factors.3.threshold: .*is a number"),
        ("threshold: left", "threshold: gone", 125, "factors.4.threshold: .*active, at_risk"),
        ("    band: 5\n", "    band: 5\n    bands: 6\n", 62, r"health\.trend\.bands: Extra inputs"),
        ("impact: 0.20", "impact: 1.2", 109, "factors.2.impact: .*less than or equal to 1"),
        ("email_opens: 50", "email_opens: yes", 33, r"health\.engagement\.email_opens: .*number"),
        ("feature_adoption: 30", "feature_adoption: 40", 20, "product_usage: .*add up to 100"),
        (
            '"Average support ticket sentiment is {value:.2f}."',
            '"{value.real}"',
            111,
            DETAIL_FIELDS,
        ),
        ('"Weekly logins fell {value:.0%}', '"Weekly logins fell {value:d}', 93, DETAIL_FORMAT),
    ],
)
def test_a_broken_scoring_file_names_file_line_and_field(
    rules_copy: Path, old: str, new: str, where: int, named: str
) -> None:
    replace_once(rules_copy / "scoring.yaml", old, new)
    with pytest.raises(RulebookError) as refused:
        load_rulebook(rules_copy)
    message = str(refused.value)
    assert message.startswith(f"{rules_copy / 'scoring.yaml'}:{where}:"), message
    assert re.search(named, message), message


def test_rules_check_refuses_a_broken_scoring_file(rules_copy: Path) -> None:
    replace_once(rules_copy / "scoring.yaml", "threshold: 0.3", "threshold: high")
    assert check(rules_copy)[0].startswith(f"{rules_copy / 'scoring.yaml'}:")

    result = CliRunner().invoke(app, ["rules", "check", str(rules_copy)])
    assert result.exit_code == 1
    assert "scoring.yaml:" in result.output and "risk.factors.0.threshold" in result.output


@pytest.fixture
def baseline_model(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Settings that score with baseline-0, whose weights are the rule set's risk impacts."""
    monkeypatch.setenv("RETENTION_MODEL_DIR", "baseline")
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


@pytest.mark.usefixtures("baseline_model")
def test_simulate_scores_with_each_rule_sets_own_scoring(rules_copy: Path) -> None:
    # a usage decline that weighs more moves customers whose usage fell up a strategy
    replace_once(rules_copy / "scoring.yaml", "impact: 0.35", "impact: 0.60")
    result = CliRunner().invoke(
        app, ["rules", "simulate", str(rules_copy), "--against", str(RULES), "--json"]
    )
    assert result.exit_code == 0, result.output
    changed = {c["customer_id"]: c for c in json.loads(result.output)["changed"]}
    for name in ("stark", "wayne"):
        assert (changed[name]["before"], changed[name]["after"]) == (
            "nurture",
            "proactive_engagement",
        )
    assert all(c["churn_probability"] > c["churn_probability_before"] for c in changed.values())


def test_assess_scores_with_the_rule_set_in_force(engine: Engine, rules_copy: Path) -> None:
    assess = AssessActivities(engine, RulebookSource(rules_copy, look_every=0)).assess
    request = AssessInput(journey_id="j-1", customer_id="cust-001", customer=make_customer())
    assert assess(request).health.overall == 74.5

    replace_once(rules_copy / "scoring.yaml", SEED_WEIGHTS, USAGE_HEAVY_WEIGHTS)
    assert assess(request).health.overall == 80.5
