"""worker.py's workflow runner answers, outside the sandbox, exactly what the sandbox would."""

from __future__ import annotations

import dataclasses
import sys
from importlib.machinery import SourceFileLoader
from types import CodeType

import pytest
from temporalio.api.common.v1 import Payloads
from temporalio.api.failure.v1 import Failure
from temporalio.converter import DataConverter, WorkflowSerializationContext
from temporalio.worker import WorkflowInstanceDetails
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner
from temporalio.worker.workflow_sandbox._runner import _fake_info
from temporalio.workflow import _Definition

from retention.runtime.sandbox import (
    _COMPILED_ONCE,
    WORKFLOW_RUNNER,
    ContextOutsideSandboxRunner,
    _CompiledOnceLoader,
)
from workflows.journey import RetentionJourney


def _details() -> WorkflowInstanceDetails:
    """A journey instance's details as the SDK builds them to check a workflow at start-up."""
    info = dataclasses.replace(_fake_info, namespace="retention", workflow_id="retention-acme")
    return WorkflowInstanceDetails(
        payload_converter_factory=DataConverter.default._new_payload_converter,
        failure_converter_class=DataConverter.default.failure_converter_class,
        interceptor_classes=[],
        defn=_Definition.must_from_class(RetentionJourney),
        info=info,
        randomness_seed=1,
        extern_functions={},
        disable_eager_activity_execution=False,
        worker_level_failure_exception_types=[],
        patch_activation_callback=None,
        last_completion_result=Payloads(),
        last_failure=Failure(),
    )


async def test_a_payload_of_no_command_gets_the_context_the_sandbox_gives() -> None:
    details = _details()
    outside = WORKFLOW_RUNNER.create_instance(details)
    inside = SandboxedWorkflowRunner().create_instance(details)

    assert outside.get_serialization_context(None) == inside.get_serialization_context(None)
    assert outside.get_serialization_context(None) == WorkflowSerializationContext(
        namespace="retention", workflow_id="retention-acme"
    )
    assert outside.get_info() is details.info


def test_the_runner_is_the_sdk_sandbox() -> None:
    # same restrictions, and the SDK's debug mode still recognises it as its sandbox
    assert isinstance(WORKFLOW_RUNNER, SandboxedWorkflowRunner)
    assert isinstance(WORKFLOW_RUNNER, ContextOutsideSandboxRunner)
    assert WORKFLOW_RUNNER.restrictions == SandboxedWorkflowRunner().restrictions


async def test_a_workflow_module_is_compiled_once_however_many_runs_start(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    compiled: list[str] = []
    compile_source = SourceFileLoader.get_code

    def counting(loader: SourceFileLoader, fullname: str) -> CodeType:
        if fullname == "workflows.journey":
            compiled.append(fullname)
        return compile_source(loader, fullname)

    monkeypatch.setattr(SourceFileLoader, "get_code", counting)
    monkeypatch.setattr(_CompiledOnceLoader, "_codes", {})  # as in a worker just started
    WORKFLOW_RUNNER.prepare_workflow(_Definition.must_from_class(RetentionJourney))
    for _ in range(3):
        WORKFLOW_RUNNER.create_instance(_details())
    runs_compiled = len(compiled)
    without = [finder for finder in sys.meta_path if finder is not _COMPILED_ONCE]
    monkeypatch.setattr(sys, "meta_path", without)  # what the SDK's sandbox alone does
    WORKFLOW_RUNNER.create_instance(_details())

    assert runs_compiled == 1
    assert len(compiled) == 2
