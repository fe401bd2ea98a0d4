"""The one way every process talks to Temporal: connection, converter, metrics runtime, and
the search attributes registered on a dev or test server."""

from __future__ import annotations

import functools
from typing import Any

from pydantic import TypeAdapter
from temporalio.api.common.v1 import Payload
from temporalio.api.enums.v1 import IndexedValueType
from temporalio.api.operatorservice.v1 import AddSearchAttributesRequest
from temporalio.client import Client
from temporalio.contrib.pydantic import PydanticJSONPlainPayloadConverter
from temporalio.converter import (
    CompositePayloadConverter,
    DataConverter,
    DefaultPayloadConverter,
    JSONPlainPayloadConverter,
)
from temporalio.runtime import PrometheusConfig, Runtime, TelemetryConfig
from temporalio.service import RPCError

from retention.errors import InvalidInput, TemporalUnreachable
from retention.runtime.connection import refusal, temporal_target
from retention.runtime.settings import Settings, get_settings
from retention.search_attributes import SEARCH_ATTRIBUTES

_CLI_TYPE = {"KEYWORD": "Keyword", "DOUBLE": "Double"}


@functools.lru_cache(maxsize=256)
def _adapter(type_hint: Any) -> TypeAdapter[Any]:
    return TypeAdapter(type_hint)


class _PydanticJSON(PydanticJSONPlainPayloadConverter):
    """The SDK's pydantic JSON converter, with one type adapter per type for the process: the
    SDK makes a payload converter for every workflow run, and each built its own adapters,
    once per type and run (three a journey, for its first activities' results)."""

    def from_payload(self, payload: Payload, type_hint: type | None = None) -> Any:
        try:
            adapter = _adapter(Any if type_hint is None else type_hint)
        except TypeError:  # an unhashable hint: the SDK's own way, uncached
            return super().from_payload(payload, type_hint)
        return adapter.validate_json(payload.data)


class PayloadConverter(CompositePayloadConverter):
    """The SDK's pydantic payload converter (the same payloads), with shared type adapters."""

    def __init__(self) -> None:
        super().__init__(
            *(
                _PydanticJSON() if isinstance(c, JSONPlainPayloadConverter) else c
                for c in DefaultPayloadConverter.default_encoding_payload_converters
            )
        )


DATA_CONVERTER = DataConverter(payload_converter_class=PayloadConverter)


def dev_server_flags() -> list[str]:
    """`--search-attribute Name=Type` flags so `temporal server start-dev` registers them all."""
    flags = []
    for key in SEARCH_ATTRIBUTES:
        flags += ["--search-attribute", f"{key.name}={_CLI_TYPE[key.indexed_value_type.name]}"]
    return flags


async def connect(
    settings: Settings | None = None, address: str | None = None, runtime: Runtime | None = None
) -> Client:
    """A client for the configured server (retention.runtime.connection); a server that cannot be
    reached or refuses the connection is one TemporalUnreachable line naming what to fix."""
    target = temporal_target(settings or get_settings(), address)
    try:
        return await Client.connect(
            target.address,
            namespace=target.namespace,
            tls=target.tls,
            api_key=target.api_key,
            rpc_metadata=target.rpc_metadata,
            data_converter=DATA_CONVERTER,
            runtime=runtime,
        )
    except ValueError as exc:
        raise InvalidInput(f"Temporal address {target.address!r}: {exc}") from exc
    except (RuntimeError, RPCError) as exc:
        raise TemporalUnreachable(refusal(target, str(exc))) from exc


def metrics_runtime(address: str) -> Runtime:
    """A Temporal runtime serving Prometheus metrics at `address` (host:port, `/metrics`): the
    SDK's own (workflow and activity latencies, task slots, polls) and the service's counters
    (retention.runtime.metrics). Raises ValueError when the address cannot be bound."""
    prometheus = PrometheusConfig(bind_address=address, counters_total_suffix=True)
    return Runtime(telemetry=TelemetryConfig(metrics=prometheus))


async def register_search_attributes(client: Client, namespace: str = "default") -> None:
    """Register every search attribute (the time-skipping server needs this before use)."""
    await client.operator_service.add_search_attributes(
        AddSearchAttributesRequest(
            namespace=namespace,
            search_attributes={
                key.name: IndexedValueType.ValueType(key.indexed_value_type)
                for key in SEARCH_ATTRIBUTES
            },
        )
    )
