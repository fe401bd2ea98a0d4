"""The HTML report: self-contained, every chart drawn (or "no data yet"), and — opened in
headless Chromium — every chart rendered with a size and the headline figures equal to the
JSON's."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from analytics_data import RULES, portfolio, records

from retention.analytics.report import HEADLINE, Report, build_report, write_report

CHARTS = {"lift", "health", "tiers", "funnel", "success", "calibration"}


def report_files(tmp_path: Path, report: Report, name: str) -> tuple[Path, dict[str, Any]]:
    html, out = tmp_path / f"{name}.html", tmp_path / f"{name}.json"
    write_report(report, html, out)
    return html, json.loads(out.read_text(encoding="utf-8"))


def generated_report() -> Report:
    """800 generated customers: treatment halves churn, so the overall lift is conclusive (and
    every chart has data) at a fraction of the cost of 1,500: the report's early-warning figure
    grows with churned customers times predictions."""
    report = build_report(
        portfolio(800), RULES.kpis, RULES.version, datetime(2026, 12, 1, tzinfo=UTC)
    )
    assert report.lift[0].scope == "overall" and report.lift[0].conclusive
    return report


def empty_report() -> Report:
    return build_report(records(), RULES.kpis, RULES.version, datetime(2026, 12, 1, tzinfo=UTC))


def test_the_html_needs_nothing_from_outside(tmp_path: Path) -> None:
    html, _ = report_files(tmp_path, generated_report(), "report")
    text = html.read_text(encoding="utf-8")

    # namespace names and url(#clip) references to the same document are not fetched
    without_namespaces = re.sub(r'xmlns(:\w+)?="[^"]*"', "", text)
    assert not re.search(r"https?://|<script|<link|@import|url\((?!#)|\bsrc=", without_namespaces)
    assert set(re.findall(r'data-chart="(\w+)"', text)) == CHARTS
    assert "No data yet" not in text  # every chart drawn, none left empty


def test_an_empty_period_says_no_data_yet_in_every_chart(tmp_path: Path) -> None:
    html, document = report_files(tmp_path, empty_report(), "empty")
    text = html.read_text(encoding="utf-8")

    assert text.count("No data yet") == len(CHARTS)
    assert document["lift"][0]["difference"] is None


def test_values_are_escaped(tmp_path: Path) -> None:
    report = empty_report()
    report.churn_reasons = {"<img src=x onerror=alert(1)>": 1}

    html, _ = report_files(tmp_path, report, "escaped")

    assert "&lt;img src=x onerror=alert(1)&gt;" in html.read_text(encoding="utf-8")


# ---- in the browser ----------------------------------------------------------------------


RENDERED_CHARTS = """
return [...document.querySelectorAll('svg[data-chart]')].map(svg => {
  const box = svg.getBoundingClientRect();
  return {name: svg.dataset.chart, width: box.width, height: box.height,
          marks: svg.querySelectorAll('path, rect, text, use').length};
});"""

TILES = """
return [...document.querySelectorAll('[data-kpi]')].map(tile => ({
  name: tile.dataset.kpi, value: tile.dataset.value,
  shown: tile.querySelector('.value').textContent.trim()}));"""


def shown_number(text: str) -> float | None:
    """The figure a tile shows, as the JSON holds it: 91.9 % → 0.919, 1,846,005 → 1846005."""
    if text == "—":
        return None
    number = float(re.sub(r"[^0-9.\-]", "", text))
    return number / 100 if text.endswith("%") else number


def tolerance(text: str) -> float:
    """Half of the last digit shown."""
    decimals = len(text.split(".")[1].split()[0]) if "." in text else 0
    return 0.5 * 10**-decimals / (100 if text.endswith("%") else 1) + 1e-9


@pytest.mark.browser
def test_the_report_renders_in_chromium_with_the_jsons_figures(
    browser: Any, tmp_path: Path
) -> None:
    html, document = report_files(tmp_path, generated_report(), "report")
    browser.get(html.as_uri())

    charts = {c["name"]: c for c in browser.execute_script(RENDERED_CHARTS)}
    assert set(charts) == CHARTS
    for chart in charts.values():
        assert chart["width"] > 300 and chart["height"] > 150, chart
        assert chart["marks"] > 10, chart  # drawn, not an empty frame
    assert browser.execute_script("return performance.getEntriesByType('resource').length") == 0

    expected = {k["name"]: k["value"] for k in document["kpis"]}
    tiles = browser.execute_script(TILES)
    assert [t["name"] for t in tiles] == list(HEADLINE)
    for tile in tiles:
        value = expected[tile["name"]]
        assert (float(tile["value"]) if tile["value"] else None) == value, tile
        shown = shown_number(tile["shown"])
        assert (shown is None) == (value is None), tile
        if value is not None:
            assert shown == pytest.approx(value, abs=tolerance(tile["shown"])), tile
    assert document["lift"][0]["conclusive"]
    overall = browser.find_element("css selector", '[data-lift="overall"]').text
    assert "treatment keeps more customers than the holdout" in overall

    height = browser.execute_script("return document.documentElement.scrollHeight")
    browser.set_window_size(1400, height)
    screenshot = tmp_path / "report.png"
    assert browser.save_screenshot(str(screenshot))
    assert screenshot.stat().st_size > 50_000


@pytest.mark.browser
def test_an_empty_report_renders_every_chart_as_no_data_yet(browser: Any, tmp_path: Path) -> None:
    html, _ = report_files(tmp_path, empty_report(), "empty")
    browser.get(html.as_uri())

    charts = browser.execute_script(RENDERED_CHARTS)
    assert {c["name"] for c in charts} == CHARTS
    assert all(c["width"] > 300 and c["height"] > 150 for c in charts)
    assert browser.find_element("css selector", '[data-kpi="gross_retention"] .value').text == "—"
