"""The rule set in force: reloaded when `rules/` changes, the last good one kept on error."""

from __future__ import annotations

import logging
import threading
from pathlib import Path

from retention.errors import RulebookError
from retention.rulebook.loader import Rulebook, content_hash, load_rulebook

log = logging.getLogger(__name__)


class RulebookSource:
    def __init__(self, rules_dir: Path) -> None:
        self._rules_dir = rules_dir
        self._lock = threading.Lock()
        self._current = load_rulebook(rules_dir)  # a broken rule set at start is fatal
        self._refused: str | None = None

    def current(self) -> Rulebook:
        with self._lock:
            version = content_hash(self._rules_dir)
            if version not in (self._current.version, self._refused):
                self._reload(version)
            return self._current

    def _reload(self, version: str) -> None:
        try:
            self._current = load_rulebook(self._rules_dir)
            log.info("rule set %s loaded", self._current.version)
        except RulebookError as exc:
            self._refused = version
            log.error("rule set refused, keeping %s: %s", self._current.version, exc)
