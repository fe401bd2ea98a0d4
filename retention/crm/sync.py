"""Push CSM tasks to the CRM: new ones, re-asked ones and completed ones, each by an upsert on
the task's idempotency key, its answer kept on the task row (docs/crm.md).

Runs right after a journey files a task (the deliver activity, after its transaction) and from
the `crm-sync` schedule, which also picks up what a CRM outage or a killed worker left pending.
A retryable answer waits for its Retry-After (else a doubling backoff); a refusal is final and
shown by `tasks list`.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import Engine

from retention.crm.hubspot import HubSpotCrm
from retention.crm.salesforce import SalesforceCrm
from retention.crm.salesforce_login import ClientCredentials, SalesforceAuth
from retention.crm.tasks import Crm, CrmTask
from retention.delivery.providers import ProviderAnswer
from retention.runtime.settings import Settings
from retention.store.crm_tasks import (
    FAILED,
    PENDING,
    SYNCED,
    PushResult,
    begin_push,
    record_push,
    tasks_to_push,
)
from retention.store.tables import CsmTaskRow, utcnow

log = logging.getLogger(__name__)

LEASE = timedelta(minutes=2)  # a push not answered by then (its worker died) is due again
FIRST_BACKOFF = timedelta(seconds=30)
MAX_BACKOFF = timedelta(hours=1)
MAX_ATTEMPTS = 10  # retryable answers in a row before the task is marked failed
SWEEP_LIMIT = 200  # tasks one pass pushes; the next pass takes the rest


@dataclass(frozen=True)
class CrmSync:
    engine: Engine
    crm: Crm
    owners: Mapping[str, str] = field(default_factory=dict)  # assigned_csm → CRM user id

    def push_due(
        self, customer_id: str | None = None, now: datetime | None = None, limit: int = SWEEP_LIMIT
    ) -> list[PushResult]:
        """Push every task due (a customer's only, with `customer_id`); what each push left."""
        moment = now or utcnow()
        due = tasks_to_push(self.engine, moment, limit, customer_id)
        return [r for i in due if (r := self.push(i, moment)) is not None]

    def push(self, task_id: int, now: datetime) -> PushResult | None:
        """One push of a due task; None when it was not due or another pusher has it."""
        task = begin_push(self.engine, task_id, self.crm.name, now, now + LEASE)
        if task is None:
            return None
        if task.crm_account_id is None:
            result = PushResult(
                FAILED,
                error=f"customer {task.customer_id} has no "
                "profile.crm_account_id: the CRM task needs its account",
            )
        else:
            result = self._result(self._upsert(task), task, now)
        if not record_push(self.engine, task, result, now):
            log.info("CRM task %s changed while pushed: pushed again next pass", task_id)
        return result

    def _upsert(self, task: CsmTaskRow) -> ProviderAnswer:
        """The CRM's answer; an SDK failing in a way it does not classify counts as retryable,
        so one odd task cannot stop every sweep behind it (its message may hold a token: only
        the exception's type is kept)."""
        try:
            return self.crm.upsert(self.crm_task(task))
        except Exception as exc:
            error = f"{self.crm.name}: unexpected {type(exc).__name__}"
            log.error("CRM push of task %s: %s", task.id, error)
            return ProviderAnswer("retryable", None, error=error)

    def crm_task(self, task: CsmTaskRow) -> CrmTask:
        assert task.crm_account_id is not None
        owner = self.owners.get(task.assigned_csm) if task.assigned_csm else None
        return CrmTask(
            key=task.idempotency_key,
            subject=task.summary,
            body=f"{task.action} for {task.customer_id}, asked by {task.reason} (journey "
            f"{task.journey_id}); task {task.id} in the retention service",
            due_at=task.due_at,
            done=task.status == "done",
            account_id=task.crm_account_id,
            contact_id=task.crm_contact_id,
            owner_id=owner,
        )

    def _result(self, answer: ProviderAnswer, task: CsmTaskRow, now: datetime) -> PushResult:
        if answer.outcome == "delivered" and answer.message_id:
            url = self.crm.url_of(answer.message_id)
            return PushResult(SYNCED, crm_id=answer.message_id, url=url)
        if answer.outcome == "retryable" and task.crm_attempts < MAX_ATTEMPTS:
            wait = answer.retry_after or min(
                FIRST_BACKOFF * 2 ** (task.crm_attempts - 1), MAX_BACKOFF
            )
            return PushResult(PENDING, error=answer.error, retry_at=now + wait)
        return PushResult(FAILED, error=answer.error or f"{self.crm.name}: {answer.outcome}")


def crm_from(settings: Settings) -> Crm | None:
    """The CRM CSM tasks go to: None in capture mode or without one configured."""
    timeout = settings.crm_timeout_seconds
    if settings.crm == "hubspot" and settings.hubspot_access_token is not None:
        return HubSpotCrm(
            settings.hubspot_access_token,
            settings.hubspot_base_url,
            settings.hubspot_portal_id,
            timeout,
        )
    if settings.crm == "salesforce" and settings.salesforce_instance_url:
        auth = salesforce_auth(settings)
        return SalesforceCrm(settings.salesforce_instance_url, auth, timeout) if auth else None
    return None


def salesforce_auth(settings: Settings) -> SalesforceAuth | None:
    """The Connected App's client credentials, else the static access token."""
    if settings.salesforce_client_id and settings.salesforce_client_secret is not None:
        return ClientCredentials(settings.salesforce_client_id, settings.salesforce_client_secret)
    return settings.salesforce_access_token


def sync_from(engine: Engine, settings: Settings) -> CrmSync | None:
    crm = crm_from(settings)
    return None if crm is None else CrmSync(engine, crm, settings.crm_owner_ids)
