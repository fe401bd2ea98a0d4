"""Salesforce Tasks through the official `simple-salesforce`: an upsert on the Task's External
ID field `Retention_Key__c` (PATCH /sobjects/Task/Retention_Key__c/<key>), on the Account
(WhatId), with the contact the task names (WhoId) and the CSM's user as owner; and the poll that
reads the tasks closed there since a mark.

The upsert makes the Task the first time and updates the same one every time after, so a push
repeated after a crash cannot make a second. The field is set up once in the org (docs/crm.md).
Each call carries the process's access token (retention/crm/salesforce_login.py); one refused
as expired is renewed and the call made once more.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, TypeVar
from urllib.parse import quote

import requests
from simple_salesforce import Salesforce
from simple_salesforce.exceptions import SalesforceError, SalesforceExpiredSession

from retention.crm.salesforce_login import (
    LoginFailed,
    SalesforceAuth,
    SalesforceSession,
    TimedSession,
)
from retention.crm.tasks import ClosedTask, CrmName, CrmTask, CrmUnavailable
from retention.delivery.providers import ProviderAnswer, classify, retry_after

KEY_FIELD = "Retention_Key__c"
API_VERSION = "59.0"
OPEN, CLOSED = "Not Started", "Completed"
EXPIRED = "INVALID_SESSION_ID"

T = TypeVar("T")


class SalesforceCrm:
    name: CrmName = "salesforce"

    def __init__(self, instance_url: str, auth: SalesforceAuth, timeout: float) -> None:
        self._instance_url = instance_url.rstrip("/")
        self._session = SalesforceSession(self._instance_url, auth, timeout)
        self._timeout = timeout

    def upsert(self, task: CrmTask) -> ProviderAnswer:
        http = TimedSession(self._timeout)
        try:
            answer, crm_id = self._signed_in(http, lambda sf: self._upsert(sf, task))
        except LoginFailed as exc:
            return exc.answer
        except SalesforceError as exc:
            return self._refused(exc, http)
        except requests.RequestException as exc:
            error = self._scrub(f"Salesforce unreachable: {type(exc).__name__}")
            return ProviderAnswer("retryable", None, error=error)
        finally:
            http.close()
        return ProviderAnswer("delivered", answer.status_code, message_id=crm_id)

    def _upsert(self, sf: Salesforce, task: CrmTask) -> tuple[requests.Response, str]:
        answer = sf.Task.upsert(  # type: ignore[operator]
            f"{KEY_FIELD}/{quote(task.key, safe='')}", self.fields(task), raw_response=True
        )
        return answer, str(_body(answer).get("id") or self._id_of(sf, task.key))

    def fields(self, task: CrmTask) -> dict[str, Any]:
        fields: dict[str, Any] = {
            "Subject": task.subject[:255],
            "Description": task.body,
            "ActivityDate": task.due_at.astimezone(UTC).date().isoformat(),
            "Status": CLOSED if task.done else OPEN,
            "Priority": "High",
            "WhatId": task.account_id,
        }
        if task.contact_id is not None:
            fields["WhoId"] = task.contact_id
        if task.owner_id is not None:
            fields["OwnerId"] = task.owner_id
        return fields

    def closed_since(self, mark: datetime) -> list[ClosedTask]:
        """Our tasks closed in Salesforce and modified at or after `mark`, oldest first."""
        since = mark.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        soql = (
            f"SELECT Id, {KEY_FIELD}, Status, LastModifiedDate FROM Task "
            f"WHERE IsClosed = true AND {KEY_FIELD} != null AND LastModifiedDate >= {since} "
            "ORDER BY LastModifiedDate"
        )
        http = TimedSession(self._timeout)
        try:
            records = self._signed_in(http, lambda sf: sf.query_all(soql)["records"])
        except LoginFailed as exc:
            raise CrmUnavailable(f"Salesforce poll failed: {exc}") from None
        except (SalesforceError, requests.RequestException) as exc:
            raise CrmUnavailable(self._scrub(f"Salesforce poll failed: {_words(exc)}")) from exc
        finally:
            http.close()
        return [ClosedTask(r["Id"], r[KEY_FIELD], _moment(r["LastModifiedDate"])) for r in records]

    def url_of(self, crm_id: str) -> str | None:
        return f"{self._instance_url}/lightning/r/Task/{crm_id}/view"

    def _signed_in(self, http: TimedSession, call: Callable[[Salesforce], T]) -> T:
        """`call` with the process's access token; when Salesforce says it expired (401
        INVALID_SESSION_ID) and it can be renewed, once more with a new one. Raises LoginFailed
        when no token can be had, and the SDK's errors."""
        token = self._session.token()
        try:
            return call(self._client(http, token))
        except SalesforceExpiredSession as exc:
            if not _session_expired(exc) or not self._session.renew(token):
                raise
        return call(self._client(http, self._session.token()))

    def _client(self, http: TimedSession, token: str) -> Salesforce:
        # The SDK's client is made per call (it is not documented as thread-safe); the token
        # is what outlives it.
        return Salesforce(
            instance_url=self._instance_url, session_id=token, session=http, version=API_VERSION
        )

    @staticmethod
    def _id_of(sf: Salesforce, key: str) -> str:
        """An upsert that updated answers 204 without a body on older API versions."""
        found = sf.Task.get_by_custom_id(KEY_FIELD, quote(key, safe=""))  # type: ignore[operator]
        return str(found["Id"])

    def _refused(self, exc: SalesforceError, http: TimedSession) -> ProviderAnswer:
        headers = http.last.headers if http.last is not None else {}
        return classify(
            exc.status,
            error=self._scrub(f"Salesforce answered {exc.status}: {_words(exc)}"),
            retry_after=retry_after(headers.get("Retry-After")),
        )

    def _scrub(self, text: str) -> str:
        return self._session.scrub(text)


def _words(exc: Exception) -> str:
    """Salesforce's errors: [{"message": ..., "errorCode": ..., "fields": [...]}]."""
    content = getattr(exc, "content", None)
    if isinstance(content, list):
        return "; ".join(
            f"{e.get('errorCode')}: {e.get('message')}"
            + (f" (fields {', '.join(e['fields'])})" if e.get("fields") else "")
            for e in content
            if isinstance(e, dict)
        )
    return str(content) if content else type(exc).__name__


def _session_expired(exc: SalesforceError) -> bool:
    """A 401 saying the session ended (`INVALID_SESSION_ID`), which a new token mends."""
    content: Any = exc.content  # the parsed JSON body, despite the SDK's `bytes`
    errors = content if isinstance(content, list) else []
    return any(isinstance(e, dict) and e.get("errorCode") == EXPIRED for e in errors)


def _body(answer: requests.Response) -> dict[str, Any]:
    try:
        parsed = answer.json() if answer.content else {}
    except ValueError:
        return {}
    return parsed if isinstance(parsed, dict) else {}


def _moment(value: str) -> datetime:
    """Salesforce's `2026-12-03T08:00:00.000+0000`."""
    return datetime.strptime(value, "%Y-%m-%dT%H:%M:%S.%f%z")
