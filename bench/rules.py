"""Rule decisions: our full path against the durable_rules floor, measured in the same run.

    .venv/bin/python bench/rules.py [--decisions 100000]

Prints one JSON line:
- full_per_s: assessment (pydantic) → facts → compiled ruleset → validated intervention plan;
- floor_per_s: the same facts, already serialised, asserted into the same conditions with actions
  that do nothing, plus delete_state — the engine's own cost;
- ratio = full ÷ floor, the median over 20 alternating rounds (the project's overhead may at most
  double the engine's cost: ≥ 0.5);
- plain_python_per_s: the same strategy choice by a plain function, for scale;
- live_sessions_after: sessions durable_rules still holds after all decisions (must be 0);
- rss_growth_pct: resident memory after the last decision against after the first tenth.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import statistics
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from durable.engine import MessageNotHandledException

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from retention.customer import parse_customer  # noqa: E402
from retention.rulebook.conditions import PostedFacts  # noqa: E402
from retention.rulebook.decide import decide, decision_facts, first_match_only  # noqa: E402
from retention.rulebook.engine import HOST, LOCK, MAX_LIVE_SESSIONS, compile_condition  # noqa: E402
from retention.rulebook.loader import Rulebook, load_rulebook  # noqa: E402
from retention.scoring.assessment import Assessment, assess_customer  # noqa: E402


def population(rulebook: Rulebook) -> list[Assessment]:
    """The sample customers, assessed once (health, churn, sentiment, expansion)."""
    now = datetime.now(UTC)
    return [
        assess_customer(parse_customer(json.loads(path.read_text())), rulebook, now)
        for path in sorted((ROOT / "examples" / "customers").glob("*.json"))
    ]


def rate(work: Callable[[int], None], n: int) -> float:
    start = time.perf_counter()
    for i in range(n):
        work(i)
    return n / (time.perf_counter() - start)


def floor_ruleset(rulebook: Rulebook) -> str:
    """The rule set's conditions registered again with actions that do nothing."""
    name = f"floor_{rulebook.version}"
    rules = first_match_only(rulebook.conditions())
    with LOCK:
        HOST.register_rulesets(
            {name: {r: {"all": [compile_condition(w)], "run": _nothing} for r, w in rules.items()}}
        )
    return name


def _nothing(_context: Any) -> None:
    """The floor's action: durable_rules still dispatches it, but it does no work."""


def floor_post(ruleset: str, facts: dict[str, Any], sid: str) -> None:
    with LOCK:
        with contextlib.suppress(MessageNotHandledException):
            HOST.assert_fact(ruleset, {**facts, "sid": sid})
        HOST.delete_state(ruleset, sid)


def live_sessions(ruleset: str) -> int:
    """Sessions still held: fill the free slots until durable_rules refuses, then free them."""
    host, opened = HOST, []
    try:
        for n in range(MAX_LIVE_SESSIONS + 1):
            host.assert_fact(ruleset, {"sid": f"probe-{n}", "churn_probability": 0.5})
            opened.append(f"probe-{n}")
    except MemoryError:
        pass
    for sid in opened:
        host.delete_state(ruleset, sid)
    return max(0, MAX_LIVE_SESSIONS - len(opened))


def rss_kib() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def plain_strategy(probability: float) -> str:
    if probability > 0.8:
        return "critical_save"
    if probability > 0.6:
        return "proactive_engagement"
    return "nurture" if probability > 0.4 else "standard"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--decisions", type=int, default=100_000)
    n = parser.parse_args().decisions
    rulebook = load_rulebook(ROOT / "rules")
    people = population(rulebook)
    posted = PostedFacts.of(first_match_only(rulebook.conditions()).values())
    facts = [posted.post(decision_facts(p)) for p in people]
    floor = floor_ruleset(rulebook)

    def full(i: int) -> None:
        decide(rulebook, decision_facts(people[i % len(people)]))

    def engine_only(i: int) -> None:
        floor_post(floor, facts[i % len(facts)], f"f{i}")

    full(0)  # compile outside the clock
    # Floor and full path alternate in rounds, so drifting machine noise hits both alike.
    rounds, per_round = 20, max(1, n // 20)
    floor_rates, full_rates, ratios = [], [], []
    rss_first = 0
    for r in range(rounds):
        offset = r * per_round
        floor_rates.append(rate(lambda i, o=offset: engine_only(o + i), per_round // 4 or 1))
        full_rates.append(rate(lambda i, o=offset: full(o + i), per_round))
        ratios.append(full_rates[-1] / floor_rates[-1])
        if r == rounds // 10:
            rss_first = rss_kib()
    rss_last = rss_kib()
    full_rate, floor_rate = statistics.median(full_rates), statistics.median(floor_rates)
    probabilities = [f["churn_probability"] for f in facts]
    plain_rate = rate(lambda i: plain_strategy(probabilities[i % len(probabilities)]), n)
    print(
        json.dumps(
            {
                "bench": "rules",
                "decisions": rounds * per_round,
                "population": len(people),
                "full_per_s": round(full_rate),
                "floor_per_s": round(floor_rate),
                "ratio": round(statistics.median(ratios), 3),
                "plain_python_per_s": round(plain_rate),
                "portfolio_100k_s": round(100_000 / full_rate, 1),
                "live_sessions_after": live_sessions(f"retention_{rulebook.version}"),
                "rss_growth_pct": round(100 * (rss_last - rss_first) / rss_first, 2),
            }
        )
    )


if __name__ == "__main__":
    main()
