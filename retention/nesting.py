"""How deep nested JSON or YAML from outside may go, counted before it is parsed.

Python's `json` and PyYAML build nested values by recursion: a few kilobytes of `[[[[...` exhaust
the stack (RecursionError), PyYAML only after seconds of scanning. So openings are counted
against closings first, a pass without recursion that stops at the first one too deep.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import TypeVar

# The shipped rule files nest at most 6 levels, the sample customers 2, the sample webhooks 4:
# 64 leaves honest input room to grow and stays far below the ~1,000 frames Python allows.
MAX_NESTING = 64
TOO_DEEP = f"nested deeper than the limit of {MAX_NESTING} levels"

Place = TypeVar("Place")

# A string, taken whole so that brackets inside it do not count, or a bracket.
_JSON_TOKEN = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"?|[][{}]', re.DOTALL)


def too_deep(steps: Iterable[tuple[int, Place]]) -> Place | None:
    """The place of the first opening past MAX_NESTING, from +1 per opening and -1 per closing
    (each with its place); None when the input never goes that deep."""
    depth = 0
    for step, place in steps:
        depth += step
        if depth > MAX_NESTING:
            return place
    return None


def json_too_deep(text: str) -> int | None:
    """The line (from 1) of the first bracket past MAX_NESTING in JSON text, or None."""
    if text.count("[") + text.count("{") <= MAX_NESTING:
        return None  # too few openings to go that deep, as most input: no scan needed
    steps = (
        (1 if token in "[{" else -1, match.start())
        for match in _JSON_TOKEN.finditer(text)
        if (token := match.group()) in ("[", "{", "]", "}")
    )
    at = too_deep(steps)
    return None if at is None else text.count("\n", 0, at) + 1
