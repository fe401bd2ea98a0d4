"""The rule set in force: reloaded when `rules/` changes, the last good one kept on error.

Recent versions stay in memory, so a running journey can still render its messages with the
templates of the rule set that made its plan after someone has changed them.

Every activity asks for the rule set in force, so asking must be cheap: the folder is looked at
no more than once every `LOOK_EVERY` (each look is a stat per file, and on a busy worker every
system call gives the interpreter lock away), and the files are read and hashed only when their
sizes, modification times or names changed since the last read. As git does for its index, a
file modified within `RACY_WINDOW_NS` of the look is read anyway: a file system's clock ticks
coarsely, and a same-size edit inside one tick keeps its mtime.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path

from retention.errors import RulebookError
from retention.rulebook.loader import (
    RULE_FILES,
    Rulebook,
    load_rulebook,
    parse_rulebook,
    read_rule_files,
)

log = logging.getLogger(__name__)

KEPT_VERSIONS = 16  # bounded: durable_rules never frees a compiled ruleset either
RACY_WINDOW_NS = 2_000_000_000
LOOK_EVERY = 1.0  # seconds: how soon an edit to rules/ is picked up

Fingerprint = tuple[tuple[str, int, int, int], ...]  # (name, size, mtime_ns, inode) per file


def fingerprint(rules_dir: Path) -> Fingerprint | None:
    """What the rule files look like from outside; None when it cannot be trusted to say the
    files are unchanged (a folder unreadable, or a file modified within the racy window)."""
    seen: list[tuple[str, int, int, int]] = []
    try:
        for folder, is_rule_file in (
            (rules_dir, lambda name: name in RULE_FILES),
            (rules_dir / "templates", lambda name: name.endswith(".j2")),
        ):
            with os.scandir(folder) as entries:
                for entry in entries:
                    if is_rule_file(entry.name):
                        stat = entry.stat()
                        seen.append((entry.path, stat.st_size, stat.st_mtime_ns, stat.st_ino))
    except OSError:
        return None  # the read says what is wrong
    newest = max((entry[2] for entry in seen), default=0)
    return None if time.time_ns() - newest < RACY_WINDOW_NS else tuple(sorted(seen))


class RulebookSource:
    def __init__(
        self,
        rules_dir: Path,
        on_load: Callable[[Rulebook], None] = lambda rulebook: None,
        look_every: float = LOOK_EVERY,
    ) -> None:
        """`on_load` sees every version this source adopts (the worker archives them);
        `look_every`: seconds between looks at the folder (0: at every ask)."""
        self._rules_dir = rules_dir
        self._look_every = look_every
        self._next_look = 0.0
        self._lock = threading.Lock()
        self._on_load = on_load
        self._current = load_rulebook(rules_dir)  # a broken rule set at start is fatal
        self._kept: OrderedDict[str, Rulebook] = OrderedDict({self._current.version: self._current})
        self._refused: str | None = None
        self._seen: Fingerprint | None = None  # the files as they looked when last read
        on_load(self._current)

    def current(self) -> Rulebook:
        now = time.monotonic()
        if now < self._next_look:
            return self._current
        self._next_look = now + self._look_every
        looks = fingerprint(self._rules_dir)
        if looks is not None and looks == self._seen:
            return self._current
        with self._lock:
            try:
                files = read_rule_files(self._rules_dir)
            except RulebookError as exc:  # e.g. a file mid-save or unreadable: keep what works
                log.error("rule files unreadable, keeping %s: %s", self._current.version, exc)
                return self._current
            if files.version not in (self._current.version, self._refused):
                try:
                    self._adopt(parse_rulebook(files))
                except RulebookError as exc:
                    self._refused = files.version
                    log.error("rule set refused, keeping %s: %s", self._current.version, exc)
            self._seen = looks  # taken before the read: an edit during it shows next time
            return self._current

    def kept(self, version: str | None) -> Rulebook | None:
        """An earlier (or the current) version, if this process still holds it."""
        with self._lock:
            return self._kept.get(version) if version else None

    def _adopt(self, rulebook: Rulebook) -> None:
        self._on_load(rulebook)
        self._current = rulebook
        self._kept[rulebook.version] = rulebook
        self._kept.move_to_end(rulebook.version)
        while len(self._kept) > KEPT_VERSIONS:
            self._kept.popitem(last=False)
        log.info("rule set %s loaded", rulebook.version)
