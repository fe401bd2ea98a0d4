"""Hypothesis strategies for bad input: arbitrary JSON and mutations of a valid document."""

from __future__ import annotations

import copy
from typing import Any

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

# Deterministic in CI: the same examples every run, no example database on disk.
settings.register_profile(
    "properties",
    derandomize=True,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
PROFILE = settings.get_profile("properties")

Path = tuple[str | int, ...]

# Values that break numbers and text the way upstream systems do: NaN, infinities, huge and
# negative numbers, unicode (incl. NUL and surrogates-free astral characters), empty text.
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([-1, 0, 10**20, -1e308, 1e308, "", " ", "NaN", "inf", "-1", "2026-13-45"]),
    st.text(max_size=30),
)
json_values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=12), inner, max_size=4)
    ),
    max_leaves=12,
)
json_objects = st.dictionaries(st.text(max_size=12), json_values, max_size=6)


def paths_of(document: Any, prefix: Path = ()) -> list[Path]:
    """Every path to a value inside `document` (dict keys and list indexes)."""
    found: list[Path] = []
    items = (
        document.items()
        if isinstance(document, dict)
        else enumerate(document)
        if isinstance(document, list)
        else ()
    )
    for key, value in items:
        found.append((*prefix, key))
        found.extend(paths_of(value, (*prefix, key)))
    return found


def _parent(document: Any, path: Path) -> Any:
    node = document
    for key in path[:-1]:
        node = node[key]
    return node


@st.composite
def mutations(draw: st.DrawFn, valid: dict[str, Any]) -> tuple[dict[str, Any], Path]:
    """`valid` with one value deleted, replaced or joined by an unknown key; and where."""
    document = copy.deepcopy(valid)
    path = draw(st.sampled_from(paths_of(document)))
    parent = _parent(document, path)
    action = draw(st.sampled_from(["delete", "replace", "extra"]))
    if action == "delete" and isinstance(parent, dict):
        del parent[path[-1]]
    elif action == "extra" and isinstance(parent, dict):
        key = draw(st.text(min_size=1, max_size=12).filter(lambda k: k not in parent))
        parent[key] = draw(json_values)
        path = (*path[:-1], key)
    else:
        parent[path[-1]] = draw(json_values)
    return document, path
