"""KPIs, lift and chart data from plain records, with figures computed by hand."""

from __future__ import annotations

import random
import re

import pytest
from analytics_data import (
    PERIOD,
    RULES,
    customer_row,
    day,
    health_row,
    intervention_row,
    journey_row,
    prediction_row,
    records,
)

from retention.analytics.catalogue import KPI_CATALOGUE
from retention.analytics.figures import (
    calibration,
    health_distribution,
    intervention_success,
    journey_funnel,
    risk_tiers_over_time,
)
from retention.analytics.lift import (
    GroupRetention,
    measure_lift,
    newcombe_interval,
    wilson_interval,
)
from retention.analytics.period import PeriodRecords
from retention.analytics.scorecard import Scorecard, scorecard
from retention.analytics.values import KpiValue
from retention.runtime.settings import ROOT


def group(customers: int, retained: int) -> GroupRetention:
    return GroupRetention(customers=customers, retained=retained)


# ---- the interval ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("treated", "holdout", "expected"),
    [  # Newcombe (1998), Statistics in Medicine 17:873, table II, method 10
        (group(70, 56), group(80, 48), (0.2, 0.0524, 0.3339)),
        (group(10, 9), group(10, 3), (0.6, 0.1705, 0.8090)),
    ],
)
def test_the_interval_is_newcombes_hybrid_score(
    treated: GroupRetention, holdout: GroupRetention, expected: tuple[float, float, float]
) -> None:
    assert newcombe_interval(treated, holdout) == pytest.approx(expected, abs=5e-5)


def test_the_wilson_interval_stays_inside_zero_and_one() -> None:
    assert wilson_interval(0, 10) == pytest.approx((0.0, 0.2775), abs=5e-5)
    assert wilson_interval(10, 10) == pytest.approx((0.7225, 1.0), abs=5e-5)


def test_a_clear_lift_with_enough_customers_is_conclusive() -> None:
    lift = measure_lift("overall", group(100, 90), group(100, 60))

    assert lift.conclusive
    assert lift.difference == pytest.approx(0.3)
    assert lift.low is not None and lift.low > 0
    assert "keeps more customers than the holdout" in lift.verdict


def test_an_interval_around_zero_is_too_wide_to_conclude() -> None:
    lift = measure_lift("nurture", group(100, 60), group(100, 55))

    assert not lift.conclusive
    assert lift.low is not None and lift.high is not None and lift.low < 0 < lift.high
    assert "contains 0 — too wide to conclude" in lift.verdict


def test_too_few_held_out_customers_is_too_wide_to_conclude_whatever_the_interval() -> None:
    lift = measure_lift("critical_save", group(200, 190), group(19, 2))

    assert lift.low is not None and lift.low > 0  # the interval alone would conclude
    assert not lift.conclusive
    assert "too few customers (under 20 in a group)" in lift.verdict


def test_no_held_out_outcome_means_no_lift() -> None:
    lift = measure_lift("overall", group(12, 10), group(0, 0))

    assert (lift.difference, lift.low, lift.high, lift.conclusive) == (None, None, None, False)
    assert "no holdout customer has an outcome yet" in lift.verdict


# ---- a small portfolio, every KPI by hand ----------------------------------------------------


def small_portfolio() -> PeriodRecords:
    """Ten customers. c1 (50,000) churns treated, c3 churns held out; c2 (treated) and c4
    (held out) are saved; c5's journey is open and was escalated from nurture."""
    c1, c2, c3, c4 = (
        journey_row("c1", outcome="churned", finished=20),
        journey_row("c2", outcome="saved"),
        journey_row("c3", outcome="churned", holdout=True, finished=25),
        journey_row("c4", outcome="saved", holdout=True),
    )
    c5 = journey_row("c5", path=("nurture", "critical_save"))
    return records(
        customers=[customer_row("c1", acv=50_000, users=25), customer_row("c2", expansion=5_000)]
        + [customer_row(f"c{n}") for n in range(3, 11)],
        journeys=[c1, c2, c3, c4, c5],
        predictions=[
            prediction_row("c1", 0.90, 1, time_to_churn=30, factor="champion_risk"),
            prediction_row("c1", 0.95, 15, factor="inactive"),
            prediction_row("c3", 0.85, 1, time_to_churn=10, factor="usage_decline"),
            prediction_row("c4", 0.70, 3),
            prediction_row("c6", 0.20, 5),
            prediction_row("c7", 0.50, 5),
            prediction_row("c8", 0.10, 5),
        ],
        health=[health_row("c9", 80, 4), health_row("c2", 40, 3), health_row("c2", 60, 10)],
        interventions=[
            intervention_row(c1, "retention_offer", 2.1),
            intervention_row(c1, "executive_call", 2.5, owner="csm"),
            intervention_row(c2, "retention_offer", 3),
            intervention_row(c3, "retention_offer", 2.1, status="held_out"),
            intervention_row(c5, "email_campaign", 3, status="suppressed"),
        ],
    )


def values(card: Scorecard) -> dict[str, KpiValue]:
    return {k.name: k for k in card.kpis}


def test_every_kpi_of_a_small_portfolio() -> None:
    kpis = values(scorecard(small_portfolio(), RULES.kpis))

    expected = {
        "logo_retention": 1 - 2 / 10,
        "churn_rate": 2 / 10,
        "gross_retention": 1 - 60_000 / 140_000,  # c1 50,000 + c3 10,000 of 140,000
        "net_retention": (140_000 - 60_000 + 5_000) / 140_000,
        "prevented_churn": 0.0,  # 1/2 kept either side
        "prevented_customers": 0.0,
        "saved_revenue": 0.0,
        "cost_per_save": None,
        "coverage": 8 / 10,  # c9 and c2 by health, c1 c3 c4 c6 c7 c8 by prediction
        "prediction_accuracy": 3 / 5,  # untreated: c3 right, c4 wrong, c6 right, c7 wrong, c8
        "prediction_base_rate": 4 / 5,
        "false_positive_rate": 2 / 4,  # c4 and c7 of c4, c6, c7, c8
        "early_warning_days": (19 + 24) / 2,  # c1 day 1 → 20, c3 day 1 → 25
        "churn_date_error_days": ((30 - 19) + (10 - 24)) / 2,
        "average_health": (80 + 60) / 2,
        "active_users": 25 + 9 * 10,
        "high_risk_response_hours": (0.1 * 24 + 1 * 24) / 2,  # c1 after 2.4 h, c2 after 24 h
        "intervention_success": 1 / 3,  # c2's offer; c1's two ended churned
        "automation_rate": 2 / 3,
        "escalation_rate": 1 / 5,  # c5, nurture → critical_save
    }
    assert {name: kpis[name].value for name in expected} == pytest.approx(expected)
    assert set(kpis) == {k.name for k in KPI_CATALOGUE}


def test_each_kpi_is_judged_against_its_target() -> None:
    kpis = values(scorecard(small_portfolio(), RULES.kpis))

    judged = {name: k.met for name, k in kpis.items() if k.target is not None}
    assert judged == {
        "gross_retention": False,
        "net_retention": False,
        "logo_retention": False,
        "prevented_churn": None,  # 2 against 2 customers: not conclusive, so not judged
        "false_positive_rate": False,
        "early_warning_days": False,
        "coverage": False,
        "high_risk_response_hours": True,
        "intervention_success": False,
        "automation_rate": False,
        "escalation_rate": False,
    }
    assert "too wide to conclude" in (kpis["prevented_churn"].reason or "")
    assert kpis["cost_per_save"].reason and "too wide to conclude" in kpis["cost_per_save"].reason


def test_churn_reasons_are_the_strongest_factor_before_the_churn() -> None:
    card = scorecard(small_portfolio(), RULES.kpis)

    assert card.churn_reasons == {"inactive": 1, "usage_decline": 1}


def conclusive_portfolio() -> PeriodRecords:
    """30 treated (24 kept) against 25 held out (10 kept), every contract 10,000; one CSM task
    per treated journey."""
    out = records()
    for n in range(55):
        held_out = n >= 30
        kept = n < 24 or 30 <= n < 40
        journey = journey_row(f"g{n}", outcome="saved" if kept else "churned", holdout=held_out)
        out.customers.append(customer_row(f"g{n}"))
        out.journeys.append(journey)
        if not held_out:
            out.interventions.append(intervention_row(journey, "executive_call", 3, owner="csm"))
    return out


def test_prevented_churn_and_saved_revenue_come_from_the_lift() -> None:
    card = scorecard(conclusive_portfolio(), RULES.kpis)
    kpis = values(card)

    assert card.lift[0].conclusive and card.lift[0].difference == pytest.approx(0.8 - 0.4)
    assert kpis["prevented_churn"].value == pytest.approx(0.4 / 0.6)
    assert kpis["prevented_churn"].met is True
    assert kpis["prevented_customers"].value == pytest.approx(0.4 * 30)  # not the 24 kept
    assert kpis["saved_revenue"].value == pytest.approx(0.4 * 30 * 10_000)
    low, high = card.lift[0].low, card.lift[0].high
    assert (kpis["saved_revenue"].low, kpis["saved_revenue"].high) == (
        low * 300_000,
        high * 300_000,
    )
    assert kpis["cost_per_save"].value == pytest.approx(30 * 120 / 12)  # csm: 120 a task


def test_lift_is_given_per_starting_strategy_and_overall() -> None:
    out = conclusive_portfolio()
    out.journeys.append(journey_row("n1", outcome="saved", path=("nurture", "critical_save")))
    out.journeys.append(journey_row("s1", outcome="saved", path=("standard",)))

    lifts = {lift.scope: lift for lift in scorecard(out, RULES.kpis).lift}

    assert set(lifts) == {"overall", "critical_save", "nurture", "standard"}
    # a strategy without held-out customers is left out of the overall comparison
    assert lifts["overall"].treated.customers == 30
    assert lifts["nurture"].difference is None


def test_an_empty_database_gives_reasons_not_errors() -> None:
    kpis = values(scorecard(records(), RULES.kpis))

    missing = {name for name, k in kpis.items() if k.value is None}
    assert missing == {k.name for k in KPI_CATALOGUE} - {"active_users"}
    assert all(kpis[name].reason for name in missing)
    assert all(k.met is None for k in kpis.values())


# ---- chart data ------------------------------------------------------------------------------


def test_health_distribution_counts_each_customers_latest_score() -> None:
    bins = health_distribution(small_portfolio())

    assert [(b.low, b.customers) for b in bins if b.customers] == [(60, 1), (80, 1)]
    assert sum(b.customers for b in bins) == 2


def test_risk_tiers_by_day_for_a_short_period() -> None:
    out = small_portfolio()
    out.period = type(PERIOD).from_days(day(1).date(), day(7).date())

    tiers = risk_tiers_over_time(out)

    assert len(tiers) == 7
    assert tiers[0].counts == {"critical": 2, "high": 0, "medium": 0, "low": 0}  # c1, c3
    assert tiers[2].counts == {"critical": 0, "high": 1, "medium": 0, "low": 0}  # c4 at 0.70
    assert tiers[4].counts == {"critical": 0, "high": 0, "medium": 1, "low": 2}


def test_the_funnel_follows_treated_journeys_through_their_steps() -> None:
    steps = [(s.strategy, s.step, s.journeys) for s in journey_funnel(small_portfolio())]

    assert steps == [
        ("critical_save", "journeys started", 2),  # c1, c2; c3 and c4 are held out
        ("critical_save", "retention_offer", 2),
        ("critical_save", "executive_call", 1),
        ("critical_save", "kept", 1),
        ("nurture", "journeys started", 1),  # c5: its only step was suppressed
        ("nurture", "kept", 0),
    ]


def test_intervention_success_by_type_with_time_to_resolution() -> None:
    stats = {s.action: s for s in intervention_success(small_portfolio())}

    assert (stats["retention_offer"].delivered, stats["retention_offer"].succeeded) == (2, 1)
    # c2's offer on day 3, its journey saved on day 20
    assert stats["retention_offer"].median_hours_to_resolution == pytest.approx(17 * 24)
    assert stats["executive_call"].success_rate == 0


def test_calibration_compares_predicted_with_observed_churn_per_decile() -> None:
    bins = calibration(small_portfolio())

    # five untreated customers, one per group, lowest first: c8 c6 c7 c4 c3 (c3 churned)
    assert [b.predicted for b in bins] == pytest.approx([0.1, 0.2, 0.5, 0.7, 0.85])
    assert [b.observed for b in bins] == [0, 0, 0, 0, 1]


# ---- documentation ---------------------------------------------------------------------------


def test_the_analytics_docs_define_every_kpi_as_the_report_does() -> None:
    readme = re.sub(r"\s+", " ", (ROOT / "docs" / "analytics.md").read_text(encoding="utf-8"))

    for kpi in KPI_CATALOGUE:
        assert f"`{kpi.name}` | {kpi.definition} |" in readme, kpi.name


def test_the_interval_covers_the_true_lift_about_95_times_in_100() -> None:
    """A 10 % holdout is small; the interval must still hold the truth as often as it says."""
    rng = random.Random(11)
    truth, covered, draws = 0.70 - 0.55, 0, 1000
    for _ in range(draws):
        treated = group(270, sum(rng.random() < 0.70 for _ in range(270)))
        holdout = group(30, sum(rng.random() < 0.55 for _ in range(30)))
        _, low, high = newcombe_interval(treated, holdout)
        covered += low <= truth <= high
    assert 0.93 <= covered / draws <= 0.975
