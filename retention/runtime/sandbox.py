"""The workflow runner every worker uses: the SDK's sandbox, minus two costs per run.

Before each activation the SDK decodes its payloads, and for every payload sequence (each
signal's input, three times: codec, reference and external storage passes) it asks the
workflow instance which serialization context applies. In the sandbox that question enters
the sandbox (an `exec` of a code string, the restricted importer and builtins put in place and
taken down), on the event loop's thread: about half of what a `customer_event` signal costs
the worker (bench/signal_cost.py). For a payload tied to no command (signals, updates, queries)
the answer is always the workflow's own context, which depends only on the run's namespace and
workflow id; `ContextOutsideSandboxRunner` gives that answer outside the sandbox. Payloads tied
to a command (an activity's input and result) ask too, and only a payload codec or external
storage ever reads the answer: when the client's data converter has neither (ours:
retention/runtime/temporal.py), `workflow_runner` answers those outside as well, so no
question enters the sandbox. Workflow code still runs only in the sandbox; what it decides,
and so its commands and payloads, do not change.

The sandbox also imports each run's workflow module afresh, and where no bytecode cache can be
used (PYTHONDONTWRITEBYTECODE, as container images often set, or a read-only tree) that import
compiles the source again for every run: workflows/retention_journey.py took more of the
worker's time than any activity (bench/RESULTS.md, bench/journey_throughput.py). The runner
compiles the modules of the workflows it serves once per process; each run still executes
them in its own sandbox. It also means a run never picks up an edit made to a workflow file
after the worker started.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from importlib.abc import MetaPathFinder
from importlib.machinery import ModuleSpec, PathFinder, SourceFileLoader
from importlib.util import spec_from_file_location
from types import CodeType, ModuleType

from temporalio.bridge.proto.workflow_activation import WorkflowActivation
from temporalio.bridge.proto.workflow_completion import WorkflowActivationCompletion
from temporalio.converter import (
    DataConverter,
    SerializationContext,
    StorageDriverStoreContext,
    StorageDriverWorkflowInfo,
    WorkflowSerializationContext,
)
from temporalio.worker import WorkflowInstance, WorkflowInstanceDetails
from temporalio.worker._command_aware_visitor import CommandInfo
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner
from temporalio.workflow import Info, _Definition


class _ContextOutside(WorkflowInstance):
    """A sandboxed instance whose context for command-less payloads is answered out here."""

    def __init__(self, sandboxed: WorkflowInstance, contexts_unread: bool) -> None:
        self._sandboxed = sandboxed
        self._contexts_unread = contexts_unread
        info = sandboxed.get_info()
        # as the SDK's instance answers `None` (namespace and workflow id never change in a run)
        self._own = WorkflowSerializationContext(
            namespace=info.namespace, workflow_id=info.workflow_id
        )
        run = StorageDriverWorkflowInfo(
            id=info.workflow_id,
            run_id=info.run_id,
            type=info.workflow_type,
            namespace=info.namespace,
        )
        self._own_store = StorageDriverStoreContext(target=run)

    def activate(self, act: WorkflowActivation) -> WorkflowActivationCompletion:
        return self._sandboxed.activate(act)

    def get_serialization_context(
        self, command_info: CommandInfo | None
    ) -> SerializationContext | None:
        if command_info is None or self._contexts_unread:
            return self._own
        return self._sandboxed.get_serialization_context(command_info)

    def get_external_store_context(
        self, command_info: CommandInfo | None
    ) -> StorageDriverStoreContext:
        if command_info is None or self._contexts_unread:
            return self._own_store
        return self._sandboxed.get_external_store_context(command_info)

    def get_info(self) -> Info:
        return self._sandboxed.get_info()

    def get_thread_id(self) -> int | None:  # the deadlock detector names the stuck thread
        return self._sandboxed.get_thread_id()


class _CompiledOnceLoader(SourceFileLoader):
    """A source loader that hands out the code it compiled the first time."""

    _codes: dict[str, CodeType] = {}

    def get_code(self, fullname: str) -> CodeType | None:
        code = self._codes.get(self.path)
        if code is None and (compiled := super().get_code(fullname)) is not None:
            code = self._codes.setdefault(self.path, compiled)
        return code


class _CompiledOnceFinder(MetaPathFinder):
    """Finds the named modules (and their packages) once, with a compiled-once loader."""

    def __init__(self) -> None:
        self.modules: set[str] = set()
        self._found: dict[str, tuple[str, list[str] | None]] = {}  # origin, package folders
        self._lock = threading.Lock()

    def add(self, module: str) -> None:
        parts = module.split(".")
        with self._lock:
            self.modules.update(".".join(parts[: n + 1]) for n in range(len(parts)))

    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> ModuleSpec | None:
        if fullname not in self.modules:
            return None
        found = self._found.get(fullname)
        if found is None:
            spec = PathFinder.find_spec(fullname, path, target)
            if spec is None or type(spec.loader) is not SourceFileLoader or spec.origin is None:
                return spec
            found = self._found.setdefault(fullname, (spec.origin, spec.submodule_search_locations))
        origin, folders = found
        return spec_from_file_location(
            fullname,
            origin,
            loader=_CompiledOnceLoader(fullname, origin),
            submodule_search_locations=folders,
        )


_COMPILED_ONCE = _CompiledOnceFinder()
sys.meta_path.insert(0, _COMPILED_ONCE)


@dataclass(frozen=True)
class ContextOutsideSandboxRunner(SandboxedWorkflowRunner):
    """The SDK's sandboxed runner (same restrictions, same debug-mode handling); its instances
    answer the serialization context of payloads tied to no command outside the sandbox, and
    the modules of its workflows are compiled once per process. With `contexts_unread` (no codec
    or external storage reads a context) every context question is answered outside."""

    contexts_unread: bool = False

    def prepare_workflow(self, defn: _Definition) -> None:
        _COMPILED_ONCE.add(defn.cls.__module__)
        super().prepare_workflow(defn)

    def create_instance(self, det: WorkflowInstanceDetails) -> WorkflowInstance:
        return _ContextOutside(super().create_instance(det), self.contexts_unread)


def workflow_runner(converter: DataConverter) -> ContextOutsideSandboxRunner:
    """The runner for a worker whose client converts payloads with `converter`."""
    unread = converter.payload_codec is None and converter.external_storage is None
    return ContextOutsideSandboxRunner(contexts_unread=unread)
