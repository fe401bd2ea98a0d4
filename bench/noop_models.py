"""The no-op workflow's inputs and outputs, in a module of their own so that the workflow
sandbox passes them through, as the journey's come from `retention/`: a model defined in the
workflow's own module would be built again for every run, a cost the journey does not pay."""

from __future__ import annotations

from pydantic import BaseModel, Field


class NoopShape(BaseModel):
    """How many activities and timers a journey took to its first intervention."""

    activities: int = Field(ge=0)
    timers: int = Field(ge=0)


class NoopStep(BaseModel):
    workflow_id: str
    last: bool


class NoopDone(BaseModel):
    activities: int
    timers: int
