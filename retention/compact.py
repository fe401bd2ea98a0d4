"""Models that leave their default values out of JSON: their payloads live on in every journey's
workflow history (a deliver input and receipt per step), where a field at its default says
nothing that reading the JSON back does not restore (docs/architecture.md, "Step payloads
leave out their defaults")."""

from __future__ import annotations

from functools import cache
from typing import Any, ClassVar

from pydantic import BaseModel, SerializationInfo, SerializerFunctionWrapHandler, model_serializer

# Serialisation context for a dump with every field, defaults included: for people and files
# that read the JSON without the models (`show --json`; templates, which name every field of
# an outbox row's step).
EVERY_FIELD = "every_field"


class CompactModel(BaseModel):
    """JSON without the fields at their default, nor the `LOCAL_FIELDS` (which only the side
    that made the model reads); Python dumps keep every field."""

    # Fields kept out of JSON whatever their value: they must have a default, which they
    # take on the other side (docs/architecture.md, "Step payloads leave out their defaults").
    LOCAL_FIELDS: ClassVar[frozenset[str]] = frozenset()

    @model_serializer(mode="wrap")
    def _without_defaults(
        self, handler: SerializerFunctionWrapHandler, info: SerializationInfo
    ) -> Any:
        data = handler(self)
        if not info.mode_is_json() or not isinstance(data, dict):
            return data
        if (info.context or {}).get(EVERY_FIELD):
            return data
        defaults = _defaults(type(self))
        return self._leaner_json(
            {
                name: value
                for name, value in data.items()
                if name not in self.LOCAL_FIELDS
                and (name not in defaults or getattr(self, name) != defaults[name])
            }
        )

    def _leaner_json(self, data: dict[str, Any]) -> dict[str, Any]:
        """What a model also leaves out of its JSON, from what the other side can tell."""
        return data


@cache
def _defaults(model: type[BaseModel]) -> dict[str, Any]:
    """Each optional field's default, made once per model: asking pydantic per dump inspects the
    default factory's signature every time, which made a journey's `state` answer slow enough
    for the SDK's two-second deadlock detector on a loaded worker. Only compared, never handed
    out, so a factory's fresh object is safe to share."""
    return {
        name: field.get_default(call_default_factory=True)
        for name, field in model.model_fields.items()
        if not field.is_required()
    }
