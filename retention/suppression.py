"""A suppression: a customer (or one of its addresses) that gets nothing on a channel, in any
journey. Asked for by an `unsubscribed` event, the CLI or an operator; kept by
retention/store/suppressions.py and honoured by the guard rails (retention/delivery/)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

from retention.customer import CUSTOMER_ID_PATTERN
from retention.plan import DEFAULT_UNSUBSCRIBE_CHANNEL, CustomerChannel


class SuppressRequest(BaseModel):
    """One suppression-list entry to record: this customer gets nothing on `channel`."""

    customer_id: str = Field(pattern=CUSTOMER_ID_PATTERN)
    channel: CustomerChannel
    address: str | None = Field(default=None, description="the email or phone it was for")
    reason: str = Field(default="unsubscribed", min_length=1, max_length=500)
    source: str = Field(description="who asked: an event's journey, the CLI, ...")


def unsubscribe_request(customer_id: str, data: dict[str, Any], source: str) -> SuppressRequest:
    """The suppression an `unsubscribed` event asks for (its data was validated on arrival)."""
    return SuppressRequest(
        customer_id=customer_id,
        channel=data.get("channel", DEFAULT_UNSUBSCRIBE_CHANNEL),
        reason=str(data.get("reason") or "unsubscribed")[:500],
        source=source,
    )
