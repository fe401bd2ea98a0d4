"""The rule set in force: reloaded when `rules/` changes, the last good one kept on error.

Recent versions stay in memory, so a running journey can still render its messages with the
templates of the rule set that made its plan after someone has changed them.
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path

from retention.errors import RulebookError
from retention.rulebook.loader import Rulebook, load_rulebook, parse_rulebook, read_rule_files

log = logging.getLogger(__name__)

KEPT_VERSIONS = 16  # bounded: durable_rules never frees a compiled ruleset either


class RulebookSource:
    def __init__(
        self, rules_dir: Path, on_load: Callable[[Rulebook], None] = lambda rulebook: None
    ) -> None:
        """`on_load` sees every version this source adopts (the worker archives them)."""
        self._rules_dir = rules_dir
        self._lock = threading.Lock()
        self._on_load = on_load
        self._current = load_rulebook(rules_dir)  # a broken rule set at start is fatal
        self._kept: OrderedDict[str, Rulebook] = OrderedDict({self._current.version: self._current})
        self._refused: str | None = None
        on_load(self._current)

    def current(self) -> Rulebook:
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
