"""`starter.py rules check` and `rules test`: what a rule author sees for good and bad changes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from factories import replace_once
from typer.testing import CliRunner

from retention.nesting import MAX_NESTING
from retention.rulebook.cases import CaseResult, run_cases
from retention.rulebook.check import check
from retention.rulebook.loader import load_rulebook
from starter import app

RULES = Path(__file__).resolve().parent.parent / "rules"
CASES = run_cases(load_rulebook(RULES), RULES / "tests")


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_shipped_rule_case(case: CaseResult) -> None:
    assert case.passed, "\n".join(case.failures)


def run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, list(args))
    return result.exit_code, result.output


def test_the_shipped_rule_set_is_sound() -> None:
    assert check(RULES) == []
    code, output = run("rules", "check", str(RULES))
    assert code == 0 and "OK · version" in output


def test_overlapping_probability_bands_are_refused(rules_copy: Path) -> None:
    replace_once(
        rules_copy / "strategies.yaml",
        "{churn_probability: {gt: 0.6, lte: 0.8}}",
        "{churn_probability: {gt: 0.55, lte: 0.8}}",
    )
    findings = check(rules_copy)
    assert len(findings) == 1
    assert "strategies.yaml:" in findings[0]
    assert "proactive_engagement's band (0.55, 0.8] overlaps" in findings[0]


def test_a_probability_gap_is_refused(rules_copy: Path) -> None:
    replace_once(
        rules_copy / "strategies.yaml",
        "{churn_probability: {gt: 0.4, lte: 0.6}}",
        "{churn_probability: {gt: 0.45, lte: 0.6}}",
    )
    assert [f.split(": ", 1)[1] for f in check(rules_copy)] == [
        "churn probability (0.4, 0.45] matches no strategy"
    ]


def test_a_gap_at_the_top_is_refused(rules_copy: Path) -> None:
    replace_once(
        rules_copy / "strategies.yaml",
        "when: {churn_probability: {gt: 0.8}}",
        "when: {churn_probability: {gt: 0.8, lt: 0.95}}",
    )
    assert check(rules_copy)[-1].endswith("churn probability [0.95, 1] matches no strategy")


def test_a_shadowed_severity_tier_is_refused(rules_copy: Path) -> None:
    replace_once(
        rules_copy / "timelines.yaml",
        "  - {name: high,",
        "  - {name: huge, when: {severity_value: {gte: 80000}, churn_probability: {gt: 0.5}}}\n"
        "  - {name: high,",
    )
    (finding,) = check(rules_copy)
    assert "timelines.yaml:" in finding
    assert "huge can never fire: critical above it matches first" in finding


def test_an_impossible_condition_is_refused(rules_copy: Path) -> None:
    replace_once(
        rules_copy / "strategies.yaml",
        "{churn_probability: {gt: 0.4, lte: 0.6}}",
        "{churn_probability: {gt: 0.6, lte: 0.4}}",
    )
    findings = check(rules_copy)
    assert any("nurture can never fire: its `when` is impossible" in f for f in findings)


def test_check_reports_load_errors_with_file_and_line_and_exits_1(rules_copy: Path) -> None:
    replace_once(rules_copy / "strategies.yaml", "channel: in_app,", "channel: fax,")
    code, output = run("rules", "check", str(rules_copy))
    assert code == 1
    assert "strategies.yaml:" in output and "channel" in output
    assert "1 problem in" in output


def test_check_and_test_refuse_a_rule_file_nested_too_deep_in_one_line(rules_copy: Path) -> None:
    deep = "[" * 10_000 + "]" * 10_000
    (rules_copy / "tests" / "deep.yaml").write_text(
        f"cases:\n  - name: deep\n    expect: {{}}\n    given: {{x: {deep}}}\n"
    )
    code, output = run("rules", "test", str(rules_copy))
    assert code == 1 and "RecursionError" not in output
    assert f"deep.yaml:4:76: nested deeper than the limit of {MAX_NESTING} levels" in output

    replace_once(rules_copy / "strategies.yaml", "{churn_probability: {gt: 0.8}}", deep)
    code, output = run("rules", "check", str(rules_copy))
    assert code == 1 and "RecursionError" not in output
    assert f"nested deeper than the limit of {MAX_NESTING} levels" in output
    assert "strategies.yaml:" in output and "1 problem in" in output


def test_rules_test_reports_like_a_test_runner(rules_copy: Path) -> None:
    code, output = run("rules", "test", str(rules_copy))
    assert code == 0
    assert f"{len(CASES)} passed, 0 failed" in output

    replace_once(
        rules_copy / "strategies.yaml",
        "{churn_probability: {gt: 0.8}}",
        "{churn_probability: {gt: 0.85}}",
    )
    replace_once(
        rules_copy / "strategies.yaml",
        "{churn_probability: {gt: 0.6, lte: 0.8}}",
        "{churn_probability: {gt: 0.6, lte: 0.85}}",
    )
    code, output = run("rules", "test", str(rules_copy))
    assert code == 1
    assert "FAIL just above 0.8 is a critical save" in output
    assert "expected strategy critical_save, got proactive_engagement" in output
    # the renewal discount case (0.83) also lost its critical_save plan, and with it the offer
    assert "FAIL a mid-market customer gets a renewal discount" in output
    assert "expected an offer, got none" in output
    assert "2 failed" in output


def test_a_case_with_an_unknown_fact_names_it(rules_copy: Path) -> None:
    (rules_copy / "tests" / "broken.yaml").write_text(
        "cases:\n  - name: typo\n    given: {churn_probabilty: 0.9}\n"
        "    expect: {strategy: nurture}\n"
    )
    code, output = run("rules", "test", str(rules_copy))
    assert code == 1
    assert "FAIL typo" in output and "churn_probabilty" in output


def test_a_malformed_case_file_names_file_and_line(rules_copy: Path) -> None:
    (rules_copy / "tests" / "broken.yaml").write_text("cases:\n  - name: x\n    expect: {}\n")
    code, output = run("rules", "test", str(rules_copy))
    assert code == 1
    assert "broken.yaml:2:" in output and "given" in output


def widen_nurture(rules: Path) -> Path:
    """Nurture up to 0.74: proactive customers between 0.6 and 0.74 move down."""
    replace_once(
        rules / "strategies.yaml",
        "{churn_probability: {gt: 0.6, lte: 0.8}}",
        "{churn_probability: {gt: 0.74, lte: 0.8}}",
    )
    replace_once(
        rules / "strategies.yaml",
        "{churn_probability: {gt: 0.4, lte: 0.6}}",
        "{churn_probability: {gt: 0.4, lte: 0.74}}",
    )
    return rules


def test_simulate_shows_who_a_change_would_move(rules_copy: Path) -> None:
    widen_nurture(rules_copy)

    code, output = run("rules", "simulate", str(rules_copy), "--against", str(RULES), "--json")

    assert code == 0, output
    result = json.loads(output)
    assert result["customers"] == len(list((RULES.parent / "examples" / "customers").glob("*")))
    moved = {c["customer_id"]: (c["before"], c["after"]) for c in result["changed"]}
    assert moved and all(m == ("proactive_engagement", "nurture") for m in moved.values())
    assert all(0.6 < c["churn_probability"] <= 0.74 for c in result["changed"])
    assert result["moves"]["proactive_engagement"]["nurture"] == len(moved)
    assert list(result["moves"]["critical_save"]) == ["critical_save"]  # untouched by the change


def test_simulate_a_csv_population_like_the_json_one(rules_copy: Path) -> None:
    widen_nurture(rules_copy)
    examples = RULES.parent / "examples"
    answers = [
        run("rules", "simulate", str(rules_copy), "--against", str(RULES), "--json", *customers)
        for customers in (
            ["--customers", str(examples / "population.csv")],
            ["--customers", str(examples / "customers")],
        )
    ]

    assert answers[0][0] == 0, answers[0][1]
    assert answers[0] == answers[1]
    assert json.loads(answers[0][1])["changed"]


def test_simulate_names_the_line_of_a_bad_csv_population(tmp_path: Path) -> None:
    bad = tmp_path / "pop.csv"
    bad.write_text("profile.customer_id,usage.foo\nacme,1\n", encoding="utf-8")

    code, output = run("rules", "simulate", "--against", str(RULES), "--customers", str(bad))

    assert code == 2 and f"{bad}:1: unknown column 'usage.foo'" in output


def test_simulate_against_a_git_ref_and_a_bad_one() -> None:
    code, output = run("rules", "simulate", "--against", "HEAD")
    assert code == 0 and "of 11 customers change" in output
    code, output = run("rules", "simulate", "--against", "no-such-ref")
    assert code == 2 and "neither a folder nor a git ref" in output
