"""worker.py's workflow runner answers, outside the sandbox, exactly what the sandbox would."""

from __future__ import annotations

import dataclasses
import sys
from collections.abc import Sequence
from importlib.machinery import SourceFileLoader
from types import CodeType

import pytest
from temporalio.api.common.v1 import Payload, Payloads
from temporalio.api.enums.v1 import CommandType
from temporalio.api.failure.v1 import Failure
from temporalio.converter import DataConverter, PayloadCodec, WorkflowSerializationContext
from temporalio.worker import WorkflowInstanceDetails
from temporalio.worker._command_aware_visitor import CommandInfo
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner
from temporalio.worker.workflow_sandbox._runner import _fake_info
from temporalio.workflow import _Definition

from retention.runtime.sandbox import (
    _COMPILED_ONCE,
    ContextOutsideSandboxRunner,
    _CompiledOnceLoader,
    workflow_runner,
)
from retention.runtime.temporal import DATA_CONVERTER
from workflows.retention_journey import RetentionJourney

WORKFLOW_RUNNER = workflow_runner(DATA_CONVERTER)  # worker.py's, with our converter


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


class _Reversing(PayloadCodec):
    """A codec: it may read the context of what it encodes."""

    async def encode(self, payloads: Sequence[Payload]) -> list[Payload]:
        return [Payload(metadata=p.metadata, data=p.data[::-1]) for p in payloads]

    async def decode(self, payloads: Sequence[Payload]) -> list[Payload]:
        return await self.encode(payloads)


async def test_with_nothing_to_read_them_every_context_is_answered_outside_the_sandbox() -> None:
    # an activity's payloads: the sandbox would look the activity up; no codec or external
    # storage would read the answer, so the workflow's own context serves
    activity = CommandInfo(CommandType.COMMAND_TYPE_SCHEDULE_ACTIVITY_TASK, 1)
    details = _details()
    outside = WORKFLOW_RUNNER.create_instance(details)

    assert WORKFLOW_RUNNER.contexts_unread
    assert outside.get_serialization_context(activity) == outside.get_serialization_context(None)
    store = outside.get_external_store_context(activity).target
    assert (store.id, store.run_id) == (details.info.workflow_id, details.info.run_id)


async def test_a_codec_keeps_the_sandboxs_answers_for_payloads_of_a_command() -> None:
    with_codec = dataclasses.replace(DATA_CONVERTER, payload_codec=_Reversing())
    runner = workflow_runner(with_codec)
    activity = CommandInfo(CommandType.COMMAND_TYPE_SCHEDULE_ACTIVITY_TASK, 1)
    details = _details()
    outside = runner.create_instance(details)
    inside = SandboxedWorkflowRunner().create_instance(details)

    assert not runner.contexts_unread
    assert outside.get_serialization_context(activity) == inside.get_serialization_context(activity)


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
        if fullname == "workflows.retention_journey":
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
