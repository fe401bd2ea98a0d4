"""Customer sentiment from support interactions: scores, trend, emotions and alerts.

Every threshold, window, severity and action comes from `rules/sentiment.yaml`
(`SentimentPolicy`). Per interaction:

- score: the interaction's upstream `sentiment` if given, else the scorer's (by default VADER's
  compound score, -1 very negative to +1 very positive, rounded to 4 decimals);
- negative: score < `negative_below`;
- emotions: each lexicon entry whose word or phrase occurs in the text (case-insensitive, whole
  words only).

Over the interactions in time order (the last `recent_window` are "recent", the ones before them
"earlier"): overall = mean of all scores; recent = mean of the recent ones; change = recent -
earlier (none without earlier interactions); trend: change > `trend_band` improving,
< -`trend_band` declining, else stable; negative_share = negative ones / all.
Alerts, in this order: `negative_shift` (change < `change_below`), `persistent_negative`
(at least `at_least` negative among the last `window`, or among all when there are fewer),
`frustration` (one of its `emotions` in the last `window`).

Without interactions the reading falls back to the snapshot's `support.avg_ticket_sentiment`
for overall and recent, with no alerts.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from functools import cache, lru_cache
from statistics import mean
from typing import Annotated, Any, Literal, Protocol

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator

from retention.customer import CustomerSnapshot, Interaction
from retention.risk_factor import Severity

Trend = Literal["improving", "stable", "declining"]
AlertName = Literal["negative_shift", "persistent_negative", "frustration"]
Name = Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]*$")]
Score = Annotated[float, Field(ge=-1, le=1)]
# A lexicon entry: a word or phrase with at least one letter or digit.
Phrase = Annotated[str, Field(min_length=1, max_length=100, pattern=r"\w")]


class InteractionScorer(Protocol):
    """Text → sentiment in -1..1. The seam where a transformer/ONNX model can plug in later."""

    def __call__(self, text: str) -> float: ...


@cache
def _vader() -> Any:  # vaderSentiment ships no type hints
    # Imported and built once, on first use: loading the lexicon takes ~50 ms; offline.
    from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

    return SentimentIntensityAnalyzer()


def vader_score(text: str) -> float:
    """VADER's compound score: -1 (most negative) to +1 (most positive)."""
    return round(float(_vader().polarity_scores(text)["compound"]), 4)


# ---- the policy: rules/sentiment.yaml --------------------------------------------------------


class _Policy(BaseModel):
    model_config = ConfigDict(extra="forbid")


class _Alert(_Policy):
    severity: Severity
    action: Name


class NegativeShiftAlert(_Alert):
    change_below: Score


class PersistentNegativeAlert(_Alert):
    window: int = Field(ge=1)
    at_least: int = Field(ge=1)

    @field_validator("at_least")
    @classmethod
    def _fits_window(cls, at_least: int, info: ValidationInfo) -> int:
        window = info.data.get("window")
        if window is not None and at_least > window:
            raise ValueError(f"cannot be more than window ({window})")
        return at_least


class EmotionAlert(_Alert):
    window: int = Field(ge=1)
    emotions: list[Name] = Field(min_length=1)


class SentimentAlerts(_Policy):
    negative_shift: NegativeShiftAlert
    persistent_negative: PersistentNegativeAlert
    frustration: EmotionAlert


class SentimentPolicy(_Policy):
    negative_below: Score
    recent_window: int = Field(ge=1)
    trend_band: float = Field(ge=0, le=1)
    emotions: dict[Name, Annotated[list[Phrase], Field(min_length=1)]] = Field(min_length=1)
    alerts: SentimentAlerts

    @field_validator("alerts")
    @classmethod
    def _known_emotions(cls, alerts: SentimentAlerts, info: ValidationInfo) -> SentimentAlerts:
        lexicon = info.data.get("emotions") or {}
        unknown = [e for e in alerts.frustration.emotions if e not in lexicon]
        if lexicon and unknown:
            raise ValueError(f"frustration.emotions: {unknown} not in the emotions lexicon")
        return alerts


# ---- the reading -----------------------------------------------------------------------------


class SentimentAlert(BaseModel):
    name: AlertName
    severity: Severity
    action: str
    detail: str


class SentimentReading(BaseModel):
    overall: Score
    recent: Score
    change: float | None = Field(default=None, description="recent - earlier; none if no earlier")
    trend: Trend
    negative_share: float | None = Field(default=None, ge=0, le=1)
    emotions: list[str] = Field(default_factory=list, description="detected in the recent window")
    alerts: list[SentimentAlert] = Field(default_factory=list)
    interactions_scored: int = Field(ge=0)
    source: Literal["interactions", "avg_ticket_sentiment"]


class _Scored(BaseModel):
    score: float
    negative: bool
    emotions: frozenset[str]


@lru_cache(maxsize=64)
def _phrase_pattern(phrases: tuple[str, ...]) -> re.Pattern[str]:
    """Whole words or phrases, any case, any run of spaces between a phrase's words."""
    alternatives = (r"\s+".join(map(re.escape, p.split())) for p in phrases)
    return re.compile(r"(?<!\w)(?:" + "|".join(alternatives) + r")(?!\w)", re.IGNORECASE)


def detect_emotions(text: str, lexicon: dict[str, list[str]]) -> frozenset[str]:
    """The lexicon's emotions whose words or phrases occur in `text` (a lexicon, not a model)."""
    return frozenset(
        emotion
        for emotion, phrases in lexicon.items()
        if _phrase_pattern(tuple(phrases)).search(text)
    )


def _score(interaction: Interaction, policy: SentimentPolicy, scorer: InteractionScorer) -> _Scored:
    score = interaction.sentiment if interaction.sentiment is not None else scorer(interaction.text)
    return _Scored(
        score=score,
        negative=score < policy.negative_below,
        emotions=detect_emotions(interaction.text, policy.emotions),
    )


def _mean(scored: Sequence[_Scored]) -> float:
    return round(mean(s.score for s in scored), 4)


def _trend(change: float | None, band: float) -> Trend:
    if change is None or -band <= change <= band:
        return "stable"
    return "improving" if change > band else "declining"


def _alert(name: AlertName, rule: _Alert, detail: str) -> SentimentAlert:
    return SentimentAlert(name=name, severity=rule.severity, action=rule.action, detail=detail)


def _negative_shift(
    recent: float, earlier: float | None, change: float | None, rule: NegativeShiftAlert
) -> SentimentAlert | None:
    if change is None or earlier is None or not change < rule.change_below:
        return None
    return _alert(
        "negative_shift",
        rule,
        f"Recent sentiment {recent:+.2f} is {-change:.2f} below the earlier {earlier:+.2f}.",
    )


def _persistent_negative(
    scored: Sequence[_Scored], rule: PersistentNegativeAlert
) -> SentimentAlert | None:
    window = scored[-rule.window :]
    negatives = sum(s.negative for s in window)
    if negatives < rule.at_least:
        return None
    return _alert(
        "persistent_negative",
        rule,
        f"{negatives} of the last {len(window)} interactions were negative.",
    )


def _frustration(scored: Sequence[_Scored], rule: EmotionAlert) -> SentimentAlert | None:
    seen = set().union(*(s.emotions for s in scored[-rule.window :]))
    found = [emotion for emotion in rule.emotions if emotion in seen]
    if not found:
        return None
    return _alert(
        "frustration",
        rule,
        f"{' and '.join(found).capitalize()} in the last {rule.window} interactions.",
    )


def _fallback(snapshot: CustomerSnapshot) -> SentimentReading:
    average = snapshot.support.avg_ticket_sentiment
    return SentimentReading(
        overall=average,
        recent=average,
        trend="stable",
        interactions_scored=0,
        source="avg_ticket_sentiment",
    )


def read_sentiment(
    snapshot: CustomerSnapshot,
    policy: SentimentPolicy,
    scorer: InteractionScorer = vader_score,
) -> SentimentReading:
    """The customer's sentiment reading under `policy` (see the module docstring)."""
    interactions = sorted(snapshot.support.interactions, key=lambda i: i.at)  # stable on ties
    if not interactions:
        return _fallback(snapshot)
    scored = [_score(interaction, policy, scorer) for interaction in interactions]
    recent_part = scored[-policy.recent_window :]
    earlier_part = scored[: -policy.recent_window]
    recent = _mean(recent_part)
    earlier = _mean(earlier_part) if earlier_part else None
    change = None if earlier is None else round(recent - earlier, 4)
    alerts = [
        _negative_shift(recent, earlier, change, policy.alerts.negative_shift),
        _persistent_negative(scored, policy.alerts.persistent_negative),
        _frustration(scored, policy.alerts.frustration),
    ]
    emotions = set().union(*(s.emotions for s in recent_part))
    return SentimentReading(
        overall=_mean(scored),
        recent=recent,
        change=change,
        trend=_trend(change, policy.trend_band),
        negative_share=round(sum(s.negative for s in scored) / len(scored), 4),
        emotions=[emotion for emotion in policy.emotions if emotion in emotions],
        alerts=[alert for alert in alerts if alert is not None],
        interactions_scored=len(scored),
        source="interactions",
    )
