"""The workflow runner every worker uses: the SDK's sandbox, minus one cost per payload.

Before each activation the SDK decodes its payloads, and for every payload sequence (each
signal's input, three times: codec, reference and external storage passes) it asks the
workflow instance which serialization context applies. In the sandbox that question enters
the sandbox (an `exec` of a code string, the restricted importer and builtins put in place and
taken down), on the event loop's thread: about half of what a `customer_event` signal costs
the worker (bench/signal_cost.py). For a payload tied to no command (signals, updates, queries)
the answer is always the workflow's own context, which depends only on the run's namespace and
workflow id; `ContextOutsideSandboxRunner` gives that answer outside the sandbox and passes
every other question, and every activation, to the sandbox as before. Workflow code still runs
only in the sandbox; what it decides, and so its commands, do not change.
"""

from __future__ import annotations

from dataclasses import dataclass

from temporalio.bridge.proto.workflow_activation import WorkflowActivation
from temporalio.bridge.proto.workflow_completion import WorkflowActivationCompletion
from temporalio.converter import SerializationContext, WorkflowSerializationContext
from temporalio.converter._extstore import StorageDriverStoreContext
from temporalio.worker import WorkflowInstance, WorkflowInstanceDetails
from temporalio.worker._command_aware_visitor import CommandInfo
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner
from temporalio.workflow import Info


class _ContextOutside(WorkflowInstance):
    """A sandboxed instance whose context for command-less payloads is answered out here."""

    def __init__(self, sandboxed: WorkflowInstance) -> None:
        self._sandboxed = sandboxed
        info = sandboxed.get_info()
        # as the SDK's instance answers `None` (namespace and workflow id never change in a run)
        self._own = WorkflowSerializationContext(
            namespace=info.namespace, workflow_id=info.workflow_id
        )

    def activate(self, act: WorkflowActivation) -> WorkflowActivationCompletion:
        return self._sandboxed.activate(act)

    def get_serialization_context(
        self, command_info: CommandInfo | None
    ) -> SerializationContext | None:
        if command_info is None:
            return self._own
        return self._sandboxed.get_serialization_context(command_info)

    def get_external_store_context(
        self, command_info: CommandInfo | None
    ) -> StorageDriverStoreContext:
        return self._sandboxed.get_external_store_context(command_info)

    def get_info(self) -> Info:
        return self._sandboxed.get_info()

    def get_thread_id(self) -> int | None:  # the deadlock detector names the stuck thread
        return self._sandboxed.get_thread_id()


@dataclass(frozen=True)
class ContextOutsideSandboxRunner(SandboxedWorkflowRunner):
    """The SDK's sandboxed runner (same restrictions, same debug-mode handling); its instances
    answer the serialization context of payloads tied to no command outside the sandbox."""

    def create_instance(self, det: WorkflowInstanceDetails) -> WorkflowInstance:
        return _ContextOutside(super().create_instance(det))


WORKFLOW_RUNNER = ContextOutsideSandboxRunner()
