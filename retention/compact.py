"""Models that leave their default values out of JSON: their payloads live on in every journey's
workflow history (a deliver input and receipt per step), where a field at its default says
nothing that reading the JSON back does not restore (docs/architecture.md, "Step payloads
leave out their defaults")."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, SerializationInfo, SerializerFunctionWrapHandler, model_serializer


class CompactModel(BaseModel):
    """JSON without the fields at their default; Python dumps keep every field."""

    @model_serializer(mode="wrap")
    def _without_defaults(
        self, handler: SerializerFunctionWrapHandler, info: SerializationInfo
    ) -> Any:
        data = handler(self)
        if not info.mode_is_json() or not isinstance(data, dict):
            return data
        fields = type(self).model_fields
        return {
            name: value
            for name, value in data.items()
            if name not in fields
            or fields[name].is_required()
            or getattr(self, name) != fields[name].get_default(call_default_factory=True)
        }
