"""Every test file is in an area (tests/areas.py), so `make area AREA=x` runs all of x's tests."""

from __future__ import annotations

from pathlib import Path

import pytest
from areas import AREAS, TEST_AREAS

TESTS = Path(__file__).resolve().parent


def test_every_test_file_is_mapped_to_an_area() -> None:
    files = {path.name for path in TESTS.glob("test_*.py")}
    unmapped = sorted(files - TEST_AREAS.keys())
    assert not unmapped, f"add these to TEST_AREAS in tests/areas.py with their areas: {unmapped}"


def test_the_table_names_only_areas_that_are_known() -> None:
    # A name may come before its file (a test file another branch is adding), so names are not
    # checked against the folder; a typo in one leaves its real file unmapped, which fails above.
    unknown = sorted({a for areas in TEST_AREAS.values() for a in areas} - AREAS.keys())
    assert unknown == []
    assert all(TEST_AREAS.values()), "a file mapped to no area"
    assert all(name.startswith("test_") and name.endswith(".py") for name in TEST_AREAS)


def test_the_checks_of_the_layout_run_with_every_area(request: pytest.FixtureRequest) -> None:
    # this file is in every area, so its own tests carry every area's marker
    assert {m.name for m in request.node.iter_markers()} >= set(AREAS)
