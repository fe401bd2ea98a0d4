"""durable_rules behind one small interface: assert facts in a fresh session, collect, delete.

durable_rules' C core is not safe to call from several threads at once, cannot unregister a
ruleset, and raises MemoryError past 1,024 live sessions per ruleset. So: one host of our own
whose every call is made under one lock, rulesets named by content hash and registered once, and
every session deleted in `finally`.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Mapping
from typing import Any

from durable.engine import Host, MessageNotHandledException

from retention.errors import RulebookError
from retention.rulebook.conditions import Condition, PostedFacts, to_durable

MAX_RULESET_VERSIONS = 32
MAX_LIVE_SESSIONS = 1_024  # per ruleset; durable_rules raises MemoryError past it


class _SynchronousHost(Host):  # type: ignore[misc]  # durable_rules ships no type hints
    """durable_rules' host without its two background threads, which poll every ruleset in the
    C core outside any lock of ours: with them, a decision raced a poll and segfaulted (seen here
    in 1 of 3 runs of the rule tests; jruizgit/rules #291, #292, #306). Nothing here needs them:
    the actions run inside `assert_fact`, and no rule uses timers or queued messages."""

    def _run(self) -> None:
        pass


HOST = _SynchronousHost()
LOCK = threading.Lock()  # every call into HOST holds it
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
        with LOCK:
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
            HOST.register_rulesets({name: definition})
            _registered.add(name)

    def fire(self, facts: Mapping[str, Any]) -> list[str]:
        """Names of every rule whose condition holds for these facts (session deleted after)."""
        sid = uuid.uuid4().hex
        fact = self.posted.post(facts)
        with LOCK:
            _fired[sid] = []
            try:
                HOST.assert_fact(self.name, {**fact, "sid": sid})
            except MessageNotHandledException:
                pass
            finally:
                HOST.delete_state(self.name, sid)
                fired = _fired.pop(sid)
        return fired
