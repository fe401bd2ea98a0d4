"""durable_rules behind one small interface: assert facts in a fresh session, collect, delete.

durable_rules keeps one process-global host whose C core is not safe to call from several
threads at once, cannot unregister a ruleset, and raises MemoryError past 1,024 live sessions
per ruleset. So: one lock around every call, rulesets named by content hash and registered once,
and every session deleted in `finally`.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Mapping
from typing import Any

from durable.engine import MessageNotHandledException
from durable.lang import get_host

from retention.errors import RulebookError
from retention.rulebook.conditions import Condition, PostedFacts, to_durable

MAX_RULESET_VERSIONS = 32
MAX_LIVE_SESSIONS = 1_024  # per ruleset; durable_rules raises MemoryError past it

_lock = threading.Lock()
_registered: set[str] = set()
_fired: dict[str, list[str]] = {}


def compile_condition(when: Condition) -> dict[str, Any]:
    return {"m": to_durable(when)}


def _collect(rule_name: str) -> Any:
    def action(context: Any) -> None:
        _fired[context.s.sid].append(rule_name)

    return action


class CompiledRuleset:
    """A set of named conditions registered once with durable_rules under `name`."""

    def __init__(self, name: str, rules: Mapping[str, Condition]) -> None:
        self.name = name
        self.posted = PostedFacts.of(rules.values())
        with _lock:
            if name in _registered:
                return
            if len(_registered) >= MAX_RULESET_VERSIONS:
                raise RulebookError(
                    f"{len(_registered)} rule set versions loaded in this process; restart it"
                )
            definition = {
                rule: {"all": [compile_condition(when)], "run": _collect(rule)}
                for rule, when in rules.items()
            }
            get_host().register_rulesets({name: definition})
            _registered.add(name)

    def fire(self, facts: dict[str, Any]) -> list[str]:
        """Names of every rule whose condition holds for these facts (session deleted after)."""
        sid = uuid.uuid4().hex
        fact = self.posted.post(facts)
        with _lock:
            _fired[sid] = []
            host = get_host()
            try:
                host.assert_fact(self.name, {**fact, "sid": sid})
            except MessageNotHandledException:
                pass
            finally:
                host.delete_state(self.name, sid)
                fired = _fired.pop(sid)
        return fired
