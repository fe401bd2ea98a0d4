"""`rules check` renders every template: a variable the renderer does not provide is a finding
at templates/NAME.j2:LINE, before any message is due."""

from __future__ import annotations

from pathlib import Path

from factories import replace_once
from typer.testing import CliRunner

from retention.rulebook.check import check
from starter import app

RULES = Path(__file__).resolve().parent.parent / "rules"


def line_of(path: Path, text: str) -> int:
    return next(n for n, line in enumerate(path.read_text().splitlines(), 1) if text in line)


def test_a_misspelt_variable_is_named_at_its_line(rules_copy: Path) -> None:
    template = rules_copy / "templates" / "re_engagement_checkin.j2"
    replace_once(template, "{{ csm_booking_link }}", "{{ csm_booking_url }}")

    findings = check(rules_copy)

    line = line_of(template, "csm_booking_url")
    assert findings == [f"{template}:{line}: undefined variable: 'csm_booking_url' is undefined"]


def test_a_missing_attribute_and_an_unguarded_offer_are_found(rules_copy: Path) -> None:
    tips = rules_copy / "templates" / "usage_tips.j2"
    tips.write_text(
        "{% block subject %}Tips for {{ customer.profile.compnay }}{% endblock %}\n"
        "{% block body %}\nHi {{ customer.profile.name }}\n{% endblock %}\n"
    )
    unlock = rules_copy / "templates" / "feature_unlock.j2"
    unlock.write_text(
        "{% block subject %}Unlocked{% endblock %}\n"
        "{% block body %}\nHi {{ customer.profile.name }},\n\n"
        "you save {{ offer.value }} this year.\n{% endblock %}\n"
    )

    findings = check(rules_copy)

    assert findings[0] == f"{unlock}:5: undefined variable: 'None' has no attribute 'value'"
    # the sample customer who got no offer: `offer.value` has nothing to read
    assert findings[1:] == [
        f"{tips}:1: undefined variable: 'dict object' has no attribute 'compnay'"
    ]


def test_a_sandbox_escape_and_a_broken_filter_are_findings_not_crashes(rules_copy: Path) -> None:
    tips = rules_copy / "templates" / "usage_tips.j2"
    tips.write_text(
        "{% block subject %}x{% endblock %}{% block body %}\n"
        "{{ ''.__class__.__mro__ }}\n{% endblock %}\n"
    )
    checkin = rules_copy / "templates" / "csm_checkin.j2"
    replace_once(
        checkin, "{{ journey.health_score | round | int }}", "{{ journey.strategy | round }}"
    )

    findings = check(rules_copy)

    assert any(f.startswith(f"{tips}:2: refused by the sandbox") for f in findings)
    line = line_of(checkin, "journey.strategy | round")
    assert any(f.startswith(f"{checkin}:{line}: cannot render: TypeError") for f in findings)


def test_rules_check_exits_1_on_a_broken_template(rules_copy: Path) -> None:
    template = rules_copy / "templates" / "retention_offer.j2"
    with template.open("a") as file:
        file.write("{% block footer %}{{ unsubscribe_link }}{% endblock %}\n")
    replace_once(template, "{{ offer.duration_months }}", "{{ offer.duration_month }}")

    result = CliRunner().invoke(app, ["rules", "check", str(rules_copy)])

    assert result.exit_code == 1
    line = line_of(template, "offer.duration_month }}")
    assert f"{template}:{line}: undefined variable: 'dict object' has no attribute" in result.output
    assert "1 problem in" in result.output  # the unused footer block is never rendered


def test_the_shipped_templates_all_render() -> None:
    assert check(RULES) == []
