"""What a CRM is asked and answers: one CSM task, upserted on our idempotency key.

A CRM answers like a message provider (retention/delivery/providers.py `ProviderAnswer`):
`delivered` (synced, `message_id` is the CRM's task id), `retryable` (429/5xx/unreachable, with
Retry-After when given) or `rejected` (a bad token, a refused field: final).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Literal, Protocol

from retention.delivery.providers import ProviderAnswer
from retention.errors import RetentionError

CrmName = Literal["hubspot", "salesforce"]


@dataclass(frozen=True)
class CrmTask:
    key: str  # our task's idempotency key: the CRM keeps it in a unique field, so one task
    subject: str
    body: str
    due_at: datetime
    done: bool
    account_id: str  # HubSpot company / Salesforce Account
    contact_id: str | None  # the person the task names, when they are in the CRM
    owner_id: str | None  # the assigned CSM's CRM user, when mapped


@dataclass(frozen=True)
class ClosedTask:
    """A task closed in the CRM, as a poll reads it."""

    crm_id: str
    key: str
    closed_at: datetime


class CrmUnavailable(RetentionError):
    """The CRM could not be read (unreachable, refused): said with every token taken out."""


class Crm(Protocol):
    name: CrmName

    def upsert(self, task: CrmTask) -> ProviderAnswer: ...

    def url_of(self, crm_id: str) -> str | None: ...
