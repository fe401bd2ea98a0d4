"""A running journey's messages use the templates of the rule set that made its plan."""

from __future__ import annotations

import os
import time
from functools import partial
from pathlib import Path

import pytest
from factories import make_request, make_step, replace_once
from sqlalchemy import Engine

from activities.deliver import DeliverActivities
from retention.rulebook import source
from retention.rulebook.archive import archive_rule_set
from retention.rulebook.source import RulebookSource

pytestmark = pytest.mark.database

SUBJECT = "Something for {{ customer.profile.company }}, as a thank-you"


def test_a_template_edit_waits_for_the_journeys_next_plan(
    engine: Engine, rules_copy: Path, tmp_path: Path
) -> None:
    archive = partial(archive_rule_set, engine)
    rulebooks = RulebookSource(rules_copy, on_load=archive, look_every=0)
    planned_under = rulebooks.current().version
    replace_once(rules_copy / "templates" / "retention_offer.j2", SUBJECT, "A NEW SUBJECT")
    edited = rulebooks.current().version
    after_restart = RulebookSource(
        rules_copy, on_load=archive, look_every=0
    )  # holds only the edited version

    def subject(rulebooks: RulebookSource, step_id: str, version: str | None) -> str:
        deliver = DeliverActivities(engine, tmp_path / "outbox", rulebooks).deliver
        request = make_request(step=make_step(step_id=step_id))
        return deliver(request.model_copy(update={"rules_version": version})).subject

    assert edited != planned_under
    assert subject(rulebooks, "g1-01-retention_offer", planned_under).startswith("Something for")
    assert subject(rulebooks, "g2-01-retention_offer", edited) == "A NEW SUBJECT"
    assert subject(after_restart, "g3-01-retention_offer", planned_under).startswith("Something")
    never_archived = "0123456789ab"  # e.g. planned before this version existed: those in force
    assert subject(after_restart, "g4-01-retention_offer", never_archived) == "A NEW SUBJECT"


def test_a_refused_edit_leaves_every_version_in_place(rules_copy: Path) -> None:
    rulebooks = RulebookSource(rules_copy, look_every=0)
    good = rulebooks.current()
    replace_once(rules_copy / "journey.yaml", "observation: 2w", "observation: soon")

    assert rulebooks.current() is good
    assert rulebooks.kept(good.version) is good


def test_only_recent_versions_are_held(rules_copy: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(source, "KEPT_VERSIONS", 2)
    rulebooks = RulebookSource(rules_copy, look_every=0)
    versions = [rulebooks.current().version]
    for n in range(2):
        with (rules_copy / "journey.yaml").open("a") as journey:
            journey.write(f"# edit {n}\n")
        versions.append(rulebooks.current().version)

    assert [rulebooks.kept(v) is not None for v in versions] == [False, True, True]


def test_unchanged_rule_files_are_not_read_again(
    rules_copy: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    rulebooks = RulebookSource(rules_copy, look_every=0)
    settled = time.time() - 60  # older than the racy window: the look can be trusted
    for path in [*rules_copy.glob("*.yaml"), *(rules_copy / "templates").glob("*.j2")]:
        os.utime(path, (settled, settled))
    first = rulebooks.current()
    reads: list[Path] = []
    monkeypatch.setattr(source, "read_rule_files", lambda folder: reads.append(folder))

    assert [rulebooks.current() for _ in range(3)] == [first] * 3
    assert reads == []


def test_a_same_size_edit_within_the_racy_window_is_seen(rules_copy: Path) -> None:
    rulebooks = RulebookSource(rules_copy, look_every=0)
    before = rulebooks.current().version
    replace_once(rules_copy / "journey.yaml", "observation: 2w", "observation: 3w")

    assert rulebooks.current().version != before


def test_the_folder_is_looked_at_once_a_second_at_most(
    rules_copy: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    rulebooks = RulebookSource(rules_copy)
    looks: list[Path] = []
    monkeypatch.setattr(source, "fingerprint", lambda folder: looks.append(folder))
    clock = iter([100.0, 100.5, 100.99, 101.0])
    monkeypatch.setattr(source.time, "monotonic", lambda: next(clock))

    [rulebooks.current() for _ in range(4)]

    assert looks == [rules_copy, rules_copy]  # at 100.0 and again at 101.0
