"""Sentiment: per-interaction scores, the reading, each alert at its boundary, the rule file."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from factories import make_customer, refused_at, replace_once
from pydantic import ValidationError

from retention.customer import CustomerSnapshot, Interaction
from retention.errors import RulebookError
from retention.rulebook.loader import load_rulebook, load_yaml_model
from retention.scoring.sentiment import (
    SentimentPolicy,
    SentimentReading,
    detect_emotions,
    read_sentiment,
    vader_score,
)

RULES = Path(__file__).resolve().parent.parent / "rules"
START = datetime(2025, 3, 1, 9, 0, tzinfo=UTC)
NEUTRAL = "Please see the attached export."
ANGRY = "This is unacceptable. Your product is broken again and I am furious."
THANKFUL = "Thank you so much, the team was wonderful and really helpful!"


@pytest.fixture(scope="module")
def policy() -> SentimentPolicy:
    return load_yaml_model(RULES / "sentiment.yaml", SentimentPolicy)


def interaction(n: int, score: float | None = None, text: str = NEUTRAL) -> dict[str, Any]:
    return {"at": START + timedelta(hours=n), "channel": "ticket", "text": text, "sentiment": score}


def customer(*interactions: dict[str, Any], average: float = 0.3) -> CustomerSnapshot:
    return make_customer(
        support={"avg_ticket_sentiment": average, "interactions": list(interactions)}
    )


def scored(*scores: float) -> CustomerSnapshot:
    """Pre-scored interactions, an hour apart, oldest first."""
    return customer(*(interaction(n, s) for n, s in enumerate(scores)))


def alerts(reading: SentimentReading) -> list[str]:
    return [alert.name for alert in reading.alerts]


# ---- scoring one interaction -------------------------------------------------------------------


def test_vader_reads_the_sign_of_clear_sentences() -> None:
    assert vader_score(ANGRY) < -0.05
    assert vader_score(THANKFUL) > 0.05
    assert vader_score("I can't log in since yesterday, this is terrible.") < 0


def test_vader_scores_interactions_without_an_upstream_score(policy: SentimentPolicy) -> None:
    reading = read_sentiment(customer(interaction(0, text=ANGRY)), policy)
    assert reading.overall < 0 and reading.source == "interactions"
    reading = read_sentiment(customer(interaction(0, text=THANKFUL)), policy)
    assert reading.overall > 0


def test_an_upstream_score_wins_over_vader(policy: SentimentPolicy) -> None:
    reading = read_sentiment(customer(interaction(0, -0.8, text=THANKFUL)), policy)
    assert reading.overall == reading.recent == -0.8


def test_another_scorer_plugs_in(policy: SentimentPolicy) -> None:
    reading = read_sentiment(customer(interaction(0, text=THANKFUL)), policy, lambda text: -0.5)
    assert reading.overall == -0.5


@pytest.mark.parametrize(
    ("text", "emotions"),
    [
        ("I am so FRUSTRATED with this", {"frustration"}),
        ("It is still   not\nworking", {"frustration"}),
        ("We are furious. Unacceptable!", {"anger"}),
        ("Fed up and angry", {"frustration", "anger"}),
        ("We played angrybirds all day", set()),  # whole words only
        ("Thanks, all good now", set()),
    ],
)
def test_emotions_come_from_the_lexicon(
    policy: SentimentPolicy, text: str, emotions: set[str]
) -> None:
    assert detect_emotions(text, policy.emotions) == emotions


# ---- the reading -------------------------------------------------------------------------------


def test_without_interactions_the_ticket_average_stands_in(policy: SentimentPolicy) -> None:
    reading = read_sentiment(customer(average=-0.6), policy)
    assert (reading.overall, reading.recent) == (-0.6, -0.6)
    assert reading.change is None and reading.negative_share is None
    assert (reading.trend, reading.alerts, reading.interactions_scored) == ("stable", [], 0)
    assert reading.source == "avg_ticket_sentiment"


def test_interactions_are_read_in_time_order(policy: SentimentPolicy) -> None:
    # Given newest first: the one at hour 0 is the only "earlier" interaction.
    reading = read_sentiment(
        customer(*(interaction(n, 0.2) for n in range(5, 0, -1)), interaction(0, 0.8)), policy
    )
    assert (reading.recent, reading.change, reading.trend) == (0.2, -0.6, "declining")
    assert reading.overall == 0.3 and reading.interactions_scored == 6


def test_a_time_without_a_zone_is_utc(policy: SentimentPolicy) -> None:
    naive = interaction(0, -0.9) | {"at": datetime(2025, 3, 2, 9, 0)}
    snapshot = customer(naive, interaction(1, 0.9))  # naive one is a day later
    assert snapshot.support.interactions[0].at.tzinfo is UTC
    assert read_sentiment(snapshot, policy).recent == 0.0


def test_negative_share_and_recent_emotions(policy: SentimentPolicy) -> None:
    snapshot = customer(
        interaction(0, -0.5, "I am angry"),  # outside the recent 5
        *(interaction(n, 0.4) for n in range(1, 5)),
        interaction(5, -0.2, "So frustrating"),
    )
    reading = read_sentiment(snapshot, policy)
    assert reading.negative_share == round(2 / 6, 4)
    assert reading.emotions == ["frustration"]


@pytest.mark.parametrize(
    ("recent", "trend"),
    [(0.6, "stable"), (0.6001, "improving"), (0.4, "stable"), (0.3999, "declining")],
)
def test_trend_band(policy: SentimentPolicy, recent: float, trend: str) -> None:
    reading = read_sentiment(scored(0.5, *[recent] * 5), policy)
    assert reading.trend == trend


def test_no_earlier_interactions_means_no_change(policy: SentimentPolicy) -> None:
    reading = read_sentiment(scored(0.9, 0.9, -0.9), policy)
    assert (reading.change, reading.trend) == (None, "stable")
    assert "negative_shift" not in alerts(reading)


# ---- alerts, each at and either side of its line ------------------------------------------


@pytest.mark.parametrize(("recent", "fires"), [(0.2, False), (0.1999, True), (0.2001, False)])
def test_negative_shift_below_minus_0_3(
    policy: SentimentPolicy, recent: float, fires: bool
) -> None:
    reading = read_sentiment(scored(0.5, *[recent] * 5), policy)
    assert ("negative_shift" in alerts(reading)) is fires
    if fires:
        alert = reading.alerts[0]
        assert (alert.severity, alert.action) == ("high", "immediate_engagement")
        assert "-0.30" not in alert.detail and "0.30 below" in alert.detail


@pytest.mark.parametrize(
    ("scores", "fires"),
    [
        ([-0.5, -0.5, 0.3, 0.3, 0.3], False),  # 2 of 5
        ([-0.5, -0.5, -0.5, 0.3, 0.3], True),  # 3 of 5
        ([-0.5, -0.5, -0.05, 0.3, 0.3], False),  # -0.05 itself is not negative
        ([-0.5, -0.5, -0.0501, 0.3, 0.3], True),
        ([-0.5, 0.3, -0.5, -0.5, 0.3, 0.3, 0.3], False),  # the oldest one is outside the last 5
        ([-0.5, -0.5, -0.5], True),  # fewer than 5: 3 of 3
        ([-0.5, -0.5], False),
    ],
)
def test_persistent_negative_three_of_the_last_five(
    policy: SentimentPolicy, scores: list[float], fires: bool
) -> None:
    reading = read_sentiment(scored(*scores), policy)
    assert ("persistent_negative" in alerts(reading)) is fires
    if fires:
        alert = next(a for a in reading.alerts if a.name == "persistent_negative")
        assert (alert.severity, alert.action) == ("critical", "escalation")


@pytest.mark.parametrize(
    ("position", "text", "fires"),
    [
        (5, "I am really frustrated", True),
        (1, "We are furious", True),  # the oldest of the last 5
        (0, "We are furious", False),  # the one before them
        (5, "All sorted, thanks", False),
    ],
)
def test_frustration_in_the_last_five(
    policy: SentimentPolicy, position: int, text: str, fires: bool
) -> None:
    snapshot = customer(
        *(interaction(n, 0.3, text if n == position else NEUTRAL) for n in range(6))
    )
    reading = read_sentiment(snapshot, policy)
    assert alerts(reading) == (["frustration"] if fires else [])
    if fires:
        alert = reading.alerts[0]
        assert (alert.severity, alert.action) == ("high", "proactive_support")


def test_alerts_come_in_the_design_order(policy: SentimentPolicy) -> None:
    snapshot = customer(
        interaction(0, 0.8), *(interaction(n, -0.6, "angry again") for n in range(1, 6))
    )
    assert alerts(read_sentiment(snapshot, policy)) == [
        "negative_shift",
        "persistent_negative",
        "frustration",
    ]


# ---- the snapshot --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "change",
    [
        {"text": "x" * 10_001},
        {"sentiment": 1.5},
        {"channel": "Carrier Pigeon"},
        {"mood": "bad"},
    ],
)
def test_a_bad_interaction_is_refused(change: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        Interaction.model_validate(interaction(0) | change)


# ---- the rule file -------------------------------------------------------------------------


def test_the_shipped_rule_file_loads() -> None:
    policy = load_rulebook(RULES).sentiment
    assert (policy.negative_below, policy.recent_window) == (-0.05, 5)
    assert policy.alerts.negative_shift.change_below == -0.3
    assert (policy.alerts.persistent_negative.at_least, policy.alerts.frustration.window) == (3, 5)
    assert set(policy.emotions) == {"frustration", "anger"}


@pytest.mark.parametrize(
    ("old", "new", "at", "refusal"),
    [
        ("change_below: -0.3", "change_below: lots", "lots", "alerts.negative_shift.change_below"),
        ("recent_window: 5", "recent_window: 0", "recent_window", "recent_window: .*greater"),
        ("trend_band: 0.1", "trend_band: 0.1\nmood: grumpy", "mood", "mood: Extra inputs"),
        (
            "at_least: 3",
            "at_least: 6",
            "at_least: 6",
            "alerts.persistent_negative.at_least: .*window",
        ),
        ("severity: critical", "severity: severe", "severe", "alerts.persistent_negative.severity"),
        ("[frustration, anger]", "[frustration, rage]", "alerts:", "alerts: .*'rage'"),
        ("    - livid\n", '    - "!!"\n', "!!", r"emotions.anger.\d+: .*pattern"),
    ],
)
def test_a_broken_sentiment_file_names_file_line_and_column(
    rules_copy: Path, old: str, new: str, at: str, refusal: str
) -> None:
    path = rules_copy / "sentiment.yaml"
    replace_once(path, old, new)
    with pytest.raises(RulebookError, match=refused_at(path, at) + refusal):
        load_rulebook(rules_copy)
