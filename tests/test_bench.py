"""The benchmarks still run and print their one JSON line (figures are not asserted: timing)."""

from __future__ import annotations

import json
import subprocess
import sys

from retention.settings import ROOT


def test_rules_benchmark_prints_its_figures() -> None:
    run = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "rules.py"), "--decisions", "400"],
        capture_output=True,
        text=True,
        timeout=240,
        check=True,
    )

    figures = json.loads(run.stdout.strip().splitlines()[-1])
    assert figures["bench"] == "rules" and figures["decisions"] == 400
    assert figures["live_sessions_after"] == 0
    assert figures["full_per_s"] > 0 and figures["floor_per_s"] > 0
