"""The rule set: strategy boundaries, timelines, plans, and refusals that name file and line."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from factories import case_facts, replace_once

from retention.errors import RulebookError
from retention.nesting import MAX_NESTING
from retention.rulebook.cases import CASE_DEFAULTS, CaseFile
from retention.rulebook.conditions import PostedFacts
from retention.rulebook.decide import decide
from retention.rulebook.engine import HOST, MAX_LIVE_SESSIONS
from retention.rulebook.loader import Rulebook, load_rulebook, load_yaml_model
from retention.rulebook.schema import DecisionFacts
from retention.rulebook.source import RulebookSource

RULES = Path(__file__).resolve().parent.parent / "rules"


@pytest.fixture(scope="module")
def rulebook() -> Rulebook:
    return load_rulebook(RULES)


def facts(probability: float, severity_value: float = 0.0, **other: object) -> DecisionFacts:
    """An unremarkable customer (the rule cases' defaults) at this probability and severity."""
    return case_facts(churn_probability=probability, severity_value=severity_value, **other)


@pytest.mark.parametrize(
    ("probability", "strategy", "tier"),
    [
        (0.0, "standard", "low"),
        (0.4, "standard", "low"),
        (0.4001, "nurture", "medium"),
        (0.6, "nurture", "medium"),
        (0.6001, "proactive_engagement", "high"),
        (0.8, "proactive_engagement", "high"),
        (0.8001, "critical_save", "critical"),
        (1.0, "critical_save", "critical"),
    ],
)
def test_strategy_boundaries(
    rulebook: Rulebook, probability: float, strategy: str, tier: str
) -> None:
    decision = decide(rulebook, facts(probability))
    assert (decision.strategy, decision.risk_tier) == (strategy, tier)
    assert f"strategy:{strategy}" in decision.fired_rules
    assert decision.rules_version == rulebook.version


@pytest.mark.parametrize(
    ("probability", "severity_value", "tier"),
    [
        (0.9, 40_000, "critical"),
        (0.9, 39_999, "high"),
        (0.7, 10_000, "high"),
        (0.7, 9_999, "medium"),
        (0.3, 50_000, "medium"),  # not at risk: no multi-channel timeline
        (0.1, 100, "low"),
    ],
)
def test_severity_tiers(
    rulebook: Rulebook, probability: float, severity_value: float, tier: str
) -> None:
    assert decide(rulebook, facts(probability, severity_value)).severity_tier == tier


def test_critical_save_plan_merges_the_critical_timeline(rulebook: Rulebook) -> None:
    plan = decide(rulebook, facts(0.9, 90_000)).plan

    timing = [(s.action, s.at_hours, s.channel, s.owner) for s in plan.steps]
    assert timing[:4] == [
        ("executive_call", 0, "csm_task", "csm"),
        ("retention_offer", 0, "email", "automated"),
        ("alert_csm", 0, "internal", "internal"),
        ("executive_outreach", 0, "phone", "csm"),
    ]
    assert ("feature_training", 24, "csm_task", "csm") in timing
    assert ("success_plan_review", 48, "csm_task", "csm") in timing
    assert [s.action for s in plan.steps].count("retention_offer") == 1  # not planned twice
    assert [s.at_hours for s in plan.steps] == sorted(s.at_hours for s in plan.steps)
    assert all(s.fallback_channel and s.success_criteria and s.escalation_path for s in plan.steps)
    assert plan.steps[0].step_id == "g1-01-executive_call"


def test_high_timeline_days(rulebook: Rulebook) -> None:
    steps = decide(rulebook, facts(0.7, 20_000)).plan.steps
    by_action = {s.action: s for s in steps if s.source == "timeline:high"}
    assert {a: s.at_hours for a, s in by_action.items()} == {
        "personalized_email": 24,
        "usage_tips": 24,
        "webinar_invite": 72,
        "success_story": 168,
        "feature_unlock": 168,
    }
    # csm_checkin is the strategy's own step (24 h), so the timeline's day-3 one is not repeated
    assert [s.action for s in steps].count("csm_checkin") == 1


def test_standard_plan_repeats_weekly_and_monthly(rulebook: Rulebook) -> None:
    steps = decide(rulebook, facts(0.1)).plan.steps
    assert [s.at_hours for s in steps if s.action == "newsletter"] == [0, 168, 336, 504]
    assert [s.at_hours for s in steps if s.action == "feature_updates"] == [0, 720]
    assert len({s.step_id for s in steps}) == len(steps)


def test_escalation_moves_one_strategy_up_at_least(rulebook: Rulebook) -> None:
    assert decide(rulebook, facts(0.1), escalate_from="standard").strategy == "nurture"
    assert decide(rulebook, facts(0.9), escalate_from="nurture").strategy == "critical_save"
    with pytest.raises(RulebookError, match="already the most intensive"):
        decide(rulebook, facts(0.9), escalate_from="critical_save")


def test_policy_carries_exits_checkpoints_and_order(rulebook: Rulebook) -> None:
    policy = decide(rulebook, facts(0.5)).policy
    assert policy.outcome_for("renewed") == "saved"
    assert policy.outcome_for("churned") == "churned"
    assert policy.outcome_for("meeting_booked") == "exited:meeting_booked"
    assert policy.outcome_for("login") is None
    assert policy.checkpoint_hours == [72, 168, 336, 672]
    assert policy.strategy_order == ["standard", "nurture", "proactive_engagement", "critical_save"]


def assert_no_live_sessions(rulebook: Rulebook) -> None:
    """durable_rules cannot count its sessions, but takes only MAX_LIVE_SESSIONS: all of them
    fit only when none is left over. (Never go past the limit: its MemoryError leaves the
    engine broken for the rest of the process.)"""
    ruleset = f"retention_{rulebook.version}"
    posted = PostedFacts.of(placed.when for placed in rulebook.conditions())
    host, fact = HOST, posted.post(CASE_DEFAULTS)  # fires strategy:standard
    taken: list[str] = []
    try:
        for n in range(MAX_LIVE_SESSIONS):
            host.assert_fact(ruleset, {**fact, "sid": f"probe-{n}"})
            taken.append(f"probe-{n}")
    finally:
        for sid in taken:
            host.delete_state(ruleset, sid)


def test_sessions_are_deleted_so_thousands_of_decisions_fit(rulebook: Rulebook) -> None:
    # durable_rules raises MemoryError past 1,024 live sessions per ruleset
    for n in range(3_000):
        decide(
            rulebook,
            facts(
                (n % 100) / 100,
                (n % 7) * 9_000,
                customer_id=f"c-{n}",
                days_since_last_login=n % 20,
                nps=n % 11,
                onboarding_progress=n % 120 if n % 3 else None,
                feature_adoption=(n % 10) / 10,
                segment=("smb", "enterprise", "mid_market")[n % 3],
                risk_factors=["inactive", "champion_risk"][: n % 3],
                recent_events=["login"] if n % 2 else [],
            ),
        )
    assert_no_live_sessions(rulebook)


def test_decisions_from_many_threads_at_once(rulebook: Rulebook) -> None:
    results: list[str] = []
    errors: list[BaseException] = []

    def decide_many() -> None:
        try:
            results.extend(decide(rulebook, facts(0.7)).strategy for _ in range(200))
        except BaseException as exc:  # noqa: BLE001 - reported by the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=decide_many) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    assert results == ["proactive_engagement"] * 1_600


# ---- refusals: a broken rule set names the file, line and column -----------------------------


def test_yaml_syntax_error_names_file_line_and_column(rules_copy: Path) -> None:
    replace_once(rules_copy / "journey.yaml", "checkpoints: [72h", "checkpoints: [72h: {")
    with pytest.raises(RulebookError, match=r"journey\.yaml:\d+:\d+: YAML syntax error"):
        load_rulebook(rules_copy)


def test_unknown_channel_names_the_line(rules_copy: Path) -> None:
    path = rules_copy / "strategies.yaml"
    line = next(n for n, t in enumerate(path.read_text().splitlines(), 1) if "retention_offer" in t)
    replace_once(
        path,
        'owner: automated, channel: email, fallback: in_app,\n         success: "offer',
        'owner: automated, channel: carrier_pigeon, fallback: in_app,\n         success: "offer',
    )
    with pytest.raises(RulebookError) as refused:
        load_rulebook(rules_copy)
    message = str(refused.value)
    assert f"strategies.yaml:{line}:" in message
    assert "strategies.0.interventions.1.channel" in message


def test_unknown_fact_is_refused(rules_copy: Path) -> None:
    replace_once(
        rules_copy / "strategies.yaml",
        "when: {churn_probability: {gt: 0.8}}",
        "when: {churn_probabilty: {gt: 0.8}}",
    )
    with pytest.raises(RulebookError, match="unknown fact 'churn_probabilty'"):
        load_rulebook(rules_copy)


def test_bad_duration_is_refused(rules_copy: Path) -> None:
    replace_once(rules_copy / "journey.yaml", "observation: 2w", "observation: two weeks")
    with pytest.raises(RulebookError, match=r"journey\.yaml:\d+:\d+: observation: .*24h, 3d, 1w"):
        load_rulebook(rules_copy)


def test_missing_template_is_refused(rules_copy: Path) -> None:
    (rules_copy / "templates" / "usage_tips.j2").unlink()
    with pytest.raises(
        RulebookError, match=r"timelines\.yaml:\d+:\d+: template .usage_tips. not found"
    ):
        load_rulebook(rules_copy)


def test_unknown_exit_event_is_refused(rules_copy: Path) -> None:
    replace_once(
        rules_copy / "journey.yaml",
        "{event: renewed, outcome: saved}",
        "{event: renewal, outcome: saved}",
    )
    with pytest.raises(
        RulebookError, match=r"journey\.yaml:\d+:\d+: exit event .renewal. is not a customer event"
    ):
        load_rulebook(rules_copy)


def test_a_yaml_bomb_is_refused_at_its_first_alias(rules_copy: Path) -> None:
    bomb = "a: &a [x, x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]\n"
    bomb += "c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b]\nexits: [*c, *c, *c, *c, *c, *c, *c]\n"
    (rules_copy / "journey.yaml").write_text(bomb)
    with pytest.raises(RulebookError, match=r"journey\.yaml:2:\d+: YAML aliases \(\*a\)"):
        load_rulebook(rules_copy)


DEEP = 10_000
DEEPLY_NESTED = {  # a `when` 10,000 deep, written three ways; where its 65th level opens
    "lists": ("[" * DEEP + "]" * DEEP, "3:72"),
    "mappings": ("{a: " * DEEP + "1" + "}" * DEEP, "3:255"),
    "block lists": ("\n    " + "- " * DEEP + "x", "4:127"),
}


@pytest.mark.parametrize(("value", "place"), DEEPLY_NESTED.values(), ids=DEEPLY_NESTED.keys())
def test_a_rule_file_nested_too_deep_is_refused_naming_the_line_and_the_limit(
    rules_copy: Path, value: str, place: str
) -> None:
    path = rules_copy / "strategies.yaml"
    path.write_text(f"strategies:\n  - name: deep\n    when: {value}\n")
    with pytest.raises(RulebookError) as refused:
        load_rulebook(rules_copy)
    assert (
        str(refused.value)
        == f"{path}:{place}: nested deeper than the limit of {MAX_NESTING} levels"
    )


def case_file(lists: int) -> str:
    """A rule case whose `given` holds lists `lists` deep, under four levels of the file's own."""
    deep = "[" * lists + "1" + "]" * lists
    return f"cases:\n  - name: deep\n    expect: {{}}\n    given: {{x: {deep}}}\n"


def test_a_rule_case_file_nested_to_the_limit_loads_and_one_level_more_is_refused(
    tmp_path: Path,
) -> None:
    path = tmp_path / "deep.yaml"
    path.write_text(case_file(MAX_NESTING - 4))
    value = load_yaml_model(path, CaseFile).cases[0].given["x"]
    for _ in range(MAX_NESTING - 5):
        value = value[0]
    assert value == [1]

    path.write_text(case_file(MAX_NESTING - 3))
    with pytest.raises(RulebookError, match=rf"deep\.yaml:4:\d+: .* limit of {MAX_NESTING} levels"):
        load_yaml_model(path, CaseFile)


def test_a_huge_rule_file_is_refused(rules_copy: Path) -> None:
    with (rules_copy / "strategies.yaml").open("a") as f:
        f.write("# padding\n" * 120_000)
    with pytest.raises(RulebookError, match=r"strategies\.yaml: .* more than a rule file may hold"):
        load_rulebook(rules_copy)


def test_a_non_numeric_threshold_names_the_line(rules_copy: Path) -> None:
    replace_once(
        rules_copy / "timelines.yaml",
        "{severity_value: {gte: 10000}",
        "{severity_value: {gte: lots}",
    )
    with pytest.raises(
        RulebookError,
        match=r"timelines\.yaml:5:\d+: severity_tiers\.1\.when: .*severity_value\.gte: needs a num",
    ):
        load_rulebook(rules_copy)


def test_a_broken_edit_keeps_the_last_good_rule_set(rules_copy: Path) -> None:
    source = RulebookSource(rules_copy, look_every=0)
    good = source.current()

    replace_once(rules_copy / "strategies.yaml", "risk_tier: critical", "risk_tier: [critical")
    assert source.current() is good

    replace_once(rules_copy / "strategies.yaml", "risk_tier: [critical", "risk_tier: severe")
    fixed = source.current()
    assert fixed.version != good.version
    assert fixed.strategy("critical_save").risk_tier == "severe"
