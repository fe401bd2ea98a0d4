"""HubSpot tasks through the official `hubspot-api-client`: one batch upsert on our key, then
the default associations to the company and, when the task names one, the contact.

The upsert (`POST /crm/v3/objects/tasks/batch/upsert`, `idProperty=retention_task_key`) makes
the task the first time and finds it every time after, so a push repeated after a crash (the CRM
had answered, we had not written it down) cannot make a second task. The unique task property
is set up once in the HubSpot account (docs/crm.md). Associations are PUTs: repeating them is
harmless too.
"""

from __future__ import annotations

import json
from datetime import UTC

import urllib3
from hubspot import HubSpot
from hubspot.crm.associations.v4.exceptions import ApiException as AssociationRefused
from hubspot.crm.objects.tasks import (
    BatchInputSimplePublicObjectBatchInputUpsert,
    SimplePublicObjectBatchInputUpsert,
)
from hubspot.crm.objects.tasks.exceptions import ApiException as TaskRefused
from pydantic import SecretStr
from urllib3.util.retry import Retry

from retention.crm.tasks import CrmName, CrmTask
from retention.delivery.providers import ProviderAnswer, classify, retry_after, scrub

KEY_PROPERTY = "retention_task_key"


class HubSpotCrm:
    name: CrmName = "hubspot"

    def __init__(
        self, token: SecretStr, base_url: str, portal_id: str | None, timeout: float
    ) -> None:
        self._token = token
        self._base_url = base_url.rstrip("/")
        self._portal_id = portal_id
        self._timeout = timeout

    def upsert(self, task: CrmTask) -> ProviderAnswer:
        # One client per push: the SDK's clients are not documented as thread-safe. No SDK
        # retries: a refused or failed call is classified here and retried by the sync.
        client = HubSpot(
            access_token=self._token.get_secret_value(),
            host=self._base_url,
            retry=Retry(total=0, redirect=0),
        )
        tasks, associations = (
            client.crm.objects.tasks.batch_api,
            client.crm.associations.v4.basic_api,
        )
        try:
            answer = tasks.upsert(
                BatchInputSimplePublicObjectBatchInputUpsert(inputs=[self.task_input(task)]),
                _request_timeout=self._timeout,
            )
            if not answer.results:  # a batch of one answered with none: ask again later
                return ProviderAnswer("retryable", 200, error="HubSpot answered without the task")
            crm_id = str(answer.results[0].id)
            for to_type, to_id in self.associations(task):
                associations.create_default(
                    "tasks", crm_id, to_type, to_id, _request_timeout=self._timeout
                )
        except (TaskRefused, AssociationRefused) as exc:
            return self._refused(exc)
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            error = self._scrub(f"HubSpot unreachable: {type(exc).__name__}")
            return ProviderAnswer("retryable", None, error=error)
        finally:  # the SDK leaves its connections open until collected
            for api in (tasks, associations):
                api.api_client.rest_client.pool_manager.clear()
        return ProviderAnswer("delivered", 200, message_id=crm_id)

    def task_input(self, task: CrmTask) -> SimplePublicObjectBatchInputUpsert:
        properties = {
            "hs_timestamp": task.due_at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z"),
            "hs_task_subject": task.subject[:255],
            "hs_task_body": task.body,
            "hs_task_status": "COMPLETED" if task.done else "NOT_STARTED",
            "hs_task_type": "TODO",
            "hs_task_priority": "HIGH",
        }
        if task.owner_id is not None:
            properties["hubspot_owner_id"] = task.owner_id
        return SimplePublicObjectBatchInputUpsert(
            id_property=KEY_PROPERTY, id=task.key, properties=properties
        )

    @staticmethod
    def associations(task: CrmTask) -> list[tuple[str, str]]:
        found = [("companies", task.account_id)]
        return found + ([("contacts", task.contact_id)] if task.contact_id else [])

    def url_of(self, crm_id: str) -> str | None:
        if self._portal_id is None:
            return None
        return f"https://app.hubspot.com/contacts/{self._portal_id}/record/0-27/{crm_id}"

    def _refused(self, exc: TaskRefused | AssociationRefused) -> ProviderAnswer:
        status = int(exc.status or 0)
        words = _message(exc.body) or exc.reason or "no reason given"
        headers = exc.headers or {}
        return classify(
            status,
            error=self._scrub(f"HubSpot answered {status}: {words}"),
            retry_after=retry_after(headers.get("Retry-After")),
        )

    def _scrub(self, text: str) -> str:
        return scrub(text, (self._token.get_secret_value(),))


def _message(body: bytes | str | None) -> str:
    """HubSpot's error body: {"status": "error", "message": ..., "category": ...}."""
    try:
        parsed = json.loads(body or b"{}")
    except ValueError:
        return ""
    if not isinstance(parsed, dict):
        return ""
    category = f" ({parsed['category']})" if parsed.get("category") else ""
    return f"{parsed.get('message') or ''}{category}".strip()
