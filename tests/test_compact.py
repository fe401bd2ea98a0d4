"""Compact payloads: JSON leaves out what is at its default and reads back the same model
(retention/compact.py)."""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field

from retention.compact import EVERY_FIELD, CompactModel


class Note(CompactModel):
    LOCAL_FIELDS: ClassVar[frozenset[str]] = frozenset({"scratch"})

    text: str
    priority: int = 0
    tags: list[str] = Field(default_factory=list)
    scratch: str = ""


def test_fields_at_their_default_stay_out_of_the_json_and_come_back_on_reading() -> None:
    note = Note(text="call back", scratch="only here")

    assert note.model_dump(mode="json") == {"text": "call back"}
    assert Note.model_validate_json(note.model_dump_json()) == note.model_copy(
        update={"scratch": ""}
    )


def test_a_field_away_from_its_default_is_written_each_time_it_is() -> None:
    first = Note(text="a", tags=["renewal"])
    assert first.model_dump(mode="json") == {"text": "a", "tags": ["renewal"]}
    # another instance's empty list is still the default: the shared default was not changed
    # by the first model's value, nor by a model growing its own list after a dump
    first.tags.append("urgent")
    assert Note(text="b").model_dump(mode="json") == {"text": "b"}
    assert first.model_dump(mode="json")["tags"] == ["renewal", "urgent"]
    assert Note(text="c", priority=2).model_dump(mode="json") == {"text": "c", "priority": 2}


def test_every_field_keeps_the_defaults_for_readers_without_the_models() -> None:
    dumped = Note(text="a").model_dump(mode="json", context={EVERY_FIELD: True})

    assert dumped == {"text": "a", "priority": 0, "tags": [], "scratch": ""}
