"""The report's charts as inline SVG (matplotlib, Agg): one file that opens offline.

Okabe–Ito colours (safe for the common colour-vision deficiencies); every chart has a title,
units on its axes, its target where there is one, and says "no data yet" rather than break.
"""

from __future__ import annotations

import io
import re
from collections.abc import Callable, Sequence
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402 - the backend is chosen first
from matplotlib.axes import Axes  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from retention.analytics.figures import (  # noqa: E402
    TIERS,
    CalibrationBin,
    FunnelStep,
    HistogramBin,
    InterventionStats,
    TierCounts,
)
from retention.analytics.lift import Lift  # noqa: E402

BLUE, ORANGE, GREEN, VERMILION = "#0072B2", "#E69F00", "#009E73", "#D55E00"
SKY, PURPLE, GREY, INK = "#56B4E9", "#CC79A7", "#8C8C8C", "#222222"
TIER_COLOURS = {"critical": VERMILION, "high": ORANGE, "medium": SKY, "low": BLUE}
SIZE = (7.2, 3.6)

plt.rcParams.update(
    {
        "svg.fonttype": "none",  # text stays text: small, searchable, the reader's own fonts
        "font.family": "sans-serif",
        "font.size": 10,
        "axes.spines.top": False,
        "axes.spines.right": False,
        "axes.titleweight": "bold",
        "axes.titlelocation": "left",
        "axes.edgecolor": GREY,
    }
)


def to_svg(figure: Figure, name: str) -> str:
    """The figure as an `<svg>` element; ids salted by `name` so charts on one page never share
    an id."""
    buffer = io.StringIO()
    with plt.rc_context({"svg.hashsalt": name}):
        figure.savefig(buffer, format="svg")  # fixed size: every chart at the same scale
    plt.close(figure)
    text = buffer.getvalue()
    svg = re.sub(r"<metadata>.*?</metadata>", "", text[text.index("<svg") :], flags=re.S)
    return re.sub(r"<svg ", f'<svg data-chart="{name}" role="img" ', svg, count=1)


def _figure(title: str, rows: int = 0) -> tuple[Figure, Axes]:
    """A figure of the report's width; a bar per row gets taller with more rows."""
    height = max(SIZE[1], 0.26 * rows + 1.2)
    figure, axes = plt.subplots(figsize=(SIZE[0], height), layout="constrained")
    figure.suptitle(title, x=0.01, ha="left", fontweight="bold", fontsize=12)
    return figure, axes


def no_data(name: str, title: str, why: str) -> str:
    figure, axes = _figure(title)
    axes.axis("off")
    axes.text(0.5, 0.5, f"No data yet\n{why}", ha="center", va="center", color=GREY, fontsize=12)
    return to_svg(figure, name)


def chart(
    name: str, title: str, data: Sequence[Any], why: str, rows: int = 0
) -> Callable[[Callable[[Axes, Sequence[Any]], None]], str]:
    """Draw with `draw(axes, data)`, or say why there is nothing to draw."""

    def render(draw: Callable[[Axes, Sequence[Any]], None]) -> str:
        if not data:
            return no_data(name, title, why)
        figure, axes = _figure(title, rows)
        draw(axes, data)
        return to_svg(figure, name)

    return render


def health_chart(bins: list[HistogramBin]) -> str:
    def draw(axes: Axes, data: Sequence[HistogramBin]) -> None:
        colours = [VERMILION if b.high <= 40 else ORANGE if b.high <= 70 else GREEN for b in data]
        axes.bar(
            [b.low for b in data], [b.customers for b in data], width=9, align="edge", color=colours
        )
        axes.set_xlabel("health score (0–100), each customer's latest in the period")
        axes.set_ylabel("customers")
        axes.set_xlim(0, 100)

    why = "no health score was recorded in the period"
    return chart("health", "Health distribution", bins, why)(draw)


def tiers_chart(series: list[TierCounts]) -> str:
    def draw(axes: Axes, data: Sequence[TierCounts]) -> None:
        x = list(range(len(data)))
        below = [0] * len(data)
        for tier in reversed(TIERS):
            heights = [t.counts[tier] for t in data]
            axes.bar(x, heights, bottom=below, label=tier, color=TIER_COLOURS[tier], width=0.8)
            below = [b + h for b, h in zip(below, heights, strict=True)]
        axes.set_ylabel("customers scored")
        axes.set_xticks(x, [f"{t.start:%d %b}" for t in data])
        axes.tick_params(axis="x", labelrotation=45 if len(data) > 10 else 0)
        axes.set_xlabel("day or week starting (UTC), each customer's latest score in it")
        axes.legend(frameon=False, loc="upper left", bbox_to_anchor=(1.0, 1.0), title="tier")

    why = "no churn prediction was recorded in the period"
    return chart("tiers", "Risk tiers over time", series, why)(draw)


def funnel_chart(steps: list[FunnelStep]) -> str:
    def draw(axes: Axes, data: Sequence[FunnelStep]) -> None:
        labels = [f"{s.strategy} · {s.step}" for s in data]
        colours = [_strategy_colour(s.strategy, data) for s in data]
        y = list(range(len(data)))[::-1]
        axes.barh(y, [s.journeys for s in data], color=colours)
        axes.set_yticks(y, labels)
        for row, step in zip(y, data, strict=True):
            axes.annotate(
                f"{step.journeys}",
                (step.journeys, row),
                xytext=(3, 0),
                textcoords="offset points",
                va="center",
                fontsize=8,
            )
        axes.set_xlabel("treated journeys reaching the step")

    why = "no treated journey ran in the period"
    return chart("funnel", "Journey funnel per strategy step", steps, why, len(steps))(draw)


def _strategy_colour(strategy: str, steps: Sequence[FunnelStep]) -> str:
    palette = [BLUE, ORANGE, GREEN, PURPLE, SKY, VERMILION]
    order = list(dict.fromkeys(s.strategy for s in steps))
    return palette[order.index(strategy) % len(palette)]


def success_chart(stats: list[InterventionStats], target: float | None) -> str:
    def draw(axes: Axes, data: Sequence[InterventionStats]) -> None:
        y = list(range(len(data)))[::-1]
        axes.barh(y, [s.success_rate * 100 for s in data], color=BLUE)
        axes.set_yticks(y, [f"{s.action} (n={s.delivered})" for s in data])
        axes.set_xlim(0, 100)
        axes.set_xlabel("success rate (%): journey saved, recovered or exited well")
        if target is not None:
            axes.axvline(target * 100, color=VERMILION, linestyle="--", label="target")
            axes.legend(frameon=False, loc="lower right")

    why = "no intervention was delivered in the period"
    return chart("success", "Intervention success by type", stats, why, len(stats))(draw)


def lift_chart(lifts: list[Lift]) -> str:
    measured = [lift for lift in lifts if lift.difference is not None]

    def draw(axes: Axes, data: Sequence[Lift]) -> None:
        y = list(range(len(data)))[::-1]
        for row, lift in zip(y, data, strict=True):
            assert lift.difference is not None and lift.low is not None and lift.high is not None
            colour = GREEN if lift.conclusive else GREY
            axes.plot([lift.low * 100, lift.high * 100], [row, row], color=colour, linewidth=3)
            axes.plot(lift.difference * 100, row, "o", color=colour, markersize=8)
            axes.annotate(
                f"{lift.difference * 100:+.1f}",
                (lift.difference * 100, row),
                xytext=(0, 7),
                textcoords="offset points",
                ha="center",
                fontsize=9,
            )
        axes.axvline(0, color=INK, linewidth=1)
        labels = [
            f"{lift.scope} ({lift.treated.customers} vs {lift.holdout.customers})" for lift in data
        ]
        axes.set_yticks(y, labels)
        axes.set_xlabel("retention lift, treated − holdout (percentage points, 95 % interval)")
        axes.set_ylim(-0.7, len(data) - 0.3)

    why = "no journey with a holdout reached an outcome in the period"
    return chart("lift", "Lift over the holdout", measured, why)(draw)


def calibration_chart(bins: list[CalibrationBin]) -> str:
    def draw(axes: Axes, data: Sequence[CalibrationBin]) -> None:
        axes.plot([0, 100], [0, 100], color=GREY, linestyle="--", label="perfect calibration")
        axes.plot(
            [b.predicted * 100 for b in data],
            [b.observed * 100 for b in data],
            "o-",
            color=BLUE,
            label="untreated customers, by decile",
        )
        axes.set_xlim(0, 100)
        axes.set_ylim(0, 100)
        axes.set_xlabel("predicted churn probability (%)")
        axes.set_ylabel("observed churn (%)")
        axes.legend(frameon=False, loc="upper left")

    why = "no untreated customer was scored in the period"
    return chart("calibration", "Model calibration", bins, why)(draw)
