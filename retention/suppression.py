"""A suppression: a customer (or one person at it, or one of its addresses) that gets nothing on
a channel, in any journey. Asked for by an `unsubscribed` event, the CLI or an operator; kept by
retention/store/suppressions.py and honoured by the guard rails (retention/delivery/)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

from retention.customer import CUSTOMER_ID_PATTERN, Contact, CustomerSnapshot
from retention.errors import InvalidInput
from retention.plan import DEFAULT_UNSUBSCRIBE_CHANNEL, CustomerChannel
from retention.recipients import address_for

# A suppression-list entry's `person` when it stops the whole account, not one person at it.
WHOLE_ACCOUNT = ""


class SuppressRequest(BaseModel):
    """One suppression-list entry to record: this customer, or only the person at `person`,
    gets nothing on `channel`."""

    customer_id: str = Field(pattern=CUSTOMER_ID_PATTERN)
    channel: CustomerChannel
    address: str | None = Field(default=None, description="the email or phone it was for")
    person: str | None = Field(
        default=None,
        min_length=1,
        description="only this address (a contact's email or phone); None: the whole account",
    )
    contact_id: str | None = Field(
        default=None,
        pattern=CUSTOMER_ID_PATTERN,
        description="the contact it is for, when named; their address is looked up if no person",
    )
    reason: str = Field(default="unsubscribed", min_length=1, max_length=500)
    source: str = Field(description="who asked: an event's journey, the CLI, ...")

    @property
    def for_one_person(self) -> bool:
        return self.person is not None or self.contact_id is not None


def unsubscribe_request(customer_id: str, data: dict[str, Any], source: str) -> SuppressRequest:
    """The suppression an `unsubscribed` event asks for (its data was validated on arrival): the
    account's, or one person's when the data names them (`contact_id`, `email` or `phone`)."""
    channel = data.get("channel", DEFAULT_UNSUBSCRIBE_CHANNEL)
    return SuppressRequest(
        customer_id=customer_id,
        channel=channel,
        person=data.get("phone") if channel in ("sms", "phone") else data.get("email"),
        contact_id=data.get("contact_id"),
        reason=str(data.get("reason") or "unsubscribed")[:500],
        source=source,
    )


def contact_named(customer: CustomerSnapshot, contact_id: str) -> Contact:
    """The account's contact with this id; InvalidInput naming it when there is none."""
    found = next((c for c in customer.contacts if c.contact_id == contact_id), None)
    if found is None:
        known = ", ".join(c.contact_id for c in customer.contacts) or "none"
        raise InvalidInput(
            f"contact {contact_id!r}: not a contact of customer {customer.customer_id!r} "
            f"(contacts: {known})"
        )
    return found


def person_on(channel: CustomerChannel, contact: Contact) -> str:
    """The contact's address that a suppression on `channel` stops: their phone for SMS and
    calls, their email for email and in-app. Whether they are active does not matter: an
    opt-out holds for someone who comes back."""
    address = address_for(channel, contact.model_copy(update={"active": True}))
    if address is None:
        raise InvalidInput(
            f"contact {contact.contact_id!r}: no phone, so nothing to suppress on {channel}"
        )
    return address


def with_person_found(
    request: SuppressRequest, customer: CustomerSnapshot | None
) -> SuppressRequest:
    """`request` with the named contact's address as its person. A contact that the customer
    as known here does not list, or lists without an address on the channel, cannot be told
    apart from the others: the whole account is suppressed, which honours the opt-out."""
    if request.person is not None or request.contact_id is None:
        return request
    try:
        if customer is None:
            raise InvalidInput(f"customer {request.customer_id!r} is not known here")
        person = person_on(request.channel, contact_named(customer, request.contact_id))
    except InvalidInput as exc:
        reason = f"{request.reason}; whole account: {exc}"[:500]
        return request.model_copy(update={"contact_id": None, "reason": reason})
    return request.model_copy(update={"person": person})
