"""Fake HubSpot and Salesforce: real HTTP servers on 127.0.0.1 (Salesforce over TLS: the SDK
only speaks https) that check the request shapes and auth headers the real APIs expect, keep
tasks by our key as the real upserts do, fail on cue, and can hold an answer back while a
pusher is killed."""

from __future__ import annotations

import base64
import json
import re
import ssl
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler
from itertools import count
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from fake_providers import Answer, ScriptedServer, reply
from tls_proxy import make_pki


@dataclass
class Task:
    crm_id: str
    key: str
    fields: dict[str, Any]
    associations: set[tuple[str, str]] = field(default_factory=set)
    modified: datetime = field(default_factory=lambda: datetime.now(UTC))


@dataclass(frozen=True)
class Received:
    method: str
    path: str
    headers: dict[str, str]
    body: Any  # JSON, or the form fields of a form post


class FakeCrm(ScriptedServer):
    """The tasks by our key and the request log; the failure script and the held answer are
    ScriptedServer's. Subclasses route and say how a bad token is refused."""

    def __init__(self, token: str, tls_dir: Path | None = None) -> None:
        self.token = token
        self.tasks: dict[str, Task] = {}  # by our key
        self.received: list[Received] = []
        self._ids = count(1)
        self.ca: Path | None = None
        context = None
        if tls_dir is not None:
            pki = make_pki(tls_dir)
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(pki.server_cert, pki.server_key)
            self.ca = pki.ca
        super().__init__(context)

    @property
    def url(self) -> str:
        return self._http.root

    def writes(self) -> list[Received]:
        return [r for r in self.received if r.method != "GET" and not self.is_login(r.path)]

    def new_id(self) -> str:
        return str(next(self._ids))

    def route(self, method: str, path: str, query: dict[str, str], body: Any) -> Answer:
        raise NotImplementedError

    def authorized(self, headers: dict[str, str]) -> bool:
        return headers.get("Authorization") == f"Bearer {self.token}"

    def refused_token(self) -> Answer:
        raise NotImplementedError

    def is_login(self, path: str) -> bool:
        """A path that takes no bearer token (an OAuth token endpoint)."""
        return False

    def login(self, headers: dict[str, str], form: dict[str, str]) -> Answer:
        raise NotImplementedError

    def _handle(self, handler: BaseHTTPRequestHandler) -> None:
        raw = handler.rfile.read(int(handler.headers.get("Content-Length") or 0))
        headers = dict(handler.headers.items())
        parts = urlsplit(handler.path)
        query = {k: v[0] for k, v in parse_qs(parts.query).items()}
        body = _body(headers.get("Content-Type", ""), raw)
        with self._lock:
            self.received.append(Received(handler.command, parts.path, headers, body))
            if self.is_login(parts.path):
                answer = self.login(headers, body if isinstance(body, dict) else {})
            elif not self.authorized(headers):
                answer = self.refused_token()
            elif self._script:
                answer = self._script.popleft()
            else:
                answer = self.route(handler.command, parts.path, query, body)
            hold = self._hold_next and handler.command != "GET" and not self.is_login(parts.path)
            self._hold_next = self._hold_next and not hold
        self._wait_if(hold)
        reply(handler, answer, "application/json")


def _body(content_type: str, raw: bytes) -> Any:
    if content_type.startswith("application/x-www-form-urlencoded"):
        return {name: values[0] for name, values in parse_qs(raw.decode()).items()}
    try:
        return json.loads(raw) if raw else None
    except ValueError:
        return None


def _stamp(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class FakeHubSpot(FakeCrm):
    """POST /crm/v3/objects/tasks/batch/upsert (idProperty retention_task_key) and PUT
    /crm/v4/objects/tasks/<id>/associations/default/<companies|contacts>/<id>, with
    `Authorization: Bearer <private app token>`."""

    KEY = "retention_task_key"
    STATUSES = {"NOT_STARTED", "IN_PROGRESS", "WAITING", "COMPLETED", "DEFERRED"}
    ASSOCIATE = re.compile(r"^/crm/v4/objects/tasks/(\w+)/associations/default/(\w+)/(\w+)$")

    def __init__(self, token: str = "pat-na1-fake-token") -> None:
        super().__init__(token)

    @staticmethod
    def error(status: int, message: str, category: str) -> Answer:
        body = {
            "status": "error",
            "message": message,
            "correlationId": "c0ffee",
            "category": category,
        }
        return Answer(status, body)

    def busy(self, retry_after: int) -> Answer:
        limit = self.error(429, "You have reached your secondly limit.", "RATE_LIMITS")
        return Answer(429, limit.body, (("Retry-After", str(retry_after)),))

    def refused_token(self) -> Answer:
        message = "Authentication credentials not found. This API supports OAuth 2.0 authentication"
        return self.error(401, message, "INVALID_AUTHENTICATION")

    def route(self, method: str, path: str, query: dict[str, str], body: Any) -> Answer:
        if method == "POST" and path == "/crm/v3/objects/tasks/batch/upsert":
            return self._upsert(body)
        if method == "PUT" and (found := self.ASSOCIATE.match(path)):
            return self._associate(*found.groups())
        return self.error(404, f"no route {method} {path}", "OBJECT_NOT_FOUND")

    def by_id(self, crm_id: str) -> Task | None:
        return next((t for t in self.tasks.values() if t.crm_id == crm_id), None)

    def _upsert(self, body: Any) -> Answer:
        try:
            inputs = body["inputs"]
            assert isinstance(inputs, list) and inputs
            for item in inputs:
                assert item["idProperty"] == self.KEY, f"idProperty {item['idProperty']}"
                assert item["id"], "id"
                assert item["properties"]["hs_task_status"] in self.STATUSES, "hs_task_status"
                assert item["properties"]["hs_timestamp"].endswith("Z"), "hs_timestamp"
        except (AssertionError, KeyError, TypeError) as exc:
            return self.error(400, f"Invalid input JSON: {exc!r}", "VALIDATION_ERROR")
        now = datetime.now(UTC)
        results = []
        for item in inputs:
            task = self.tasks.get(item["id"])
            new = task is None
            if task is None:
                task = Task(self.new_id(), item["id"], {})
                self.tasks[item["id"]] = task
            task.fields.update(item["properties"], **{self.KEY: item["id"]})
            task.modified = now
            results.append(
                {
                    "id": task.crm_id,
                    "properties": task.fields,
                    "createdAt": _stamp(now),
                    "updatedAt": _stamp(now),
                    "archived": False,
                    "new": new,
                }
            )
        stamp = _stamp(now)
        return Answer(
            200,
            {"status": "COMPLETE", "results": results, "startedAt": stamp, "completedAt": stamp},
        )

    def _associate(self, task_id: str, to_type: str, to_id: str) -> Answer:
        task = self.by_id(task_id)
        if task is None or to_type not in ("companies", "contacts"):
            return self.error(404, f"no task {task_id} or type {to_type}", "OBJECT_NOT_FOUND")
        task.associations.add((to_type, to_id))
        spec = {"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": 192}
        result = {"from": {"id": task_id}, "to": {"id": to_id}, "associationSpec": spec}
        stamp = _stamp(datetime.now(UTC))
        return Answer(
            200,
            {"status": "COMPLETE", "results": [result], "startedAt": stamp, "completedAt": stamp},
        )


class FakeSalesforce(FakeCrm):
    """PATCH /services/data/vNN.N/sobjects/Task/Retention_Key__c/<key> (an External ID upsert:
    201 created, 200 updated) and GET .../query/?q=<SOQL> over the tasks, with `Authorization:
    Bearer <access token>`: the static one, or one its token endpoint issued.

    POST /services/oauth2/token is a Connected App's client-credentials flow: a form with
    `grant_type=client_credentials`, the client id and secret as HTTP Basic (or as form fields
    `client_id`, `client_secret`); 200 with `access_token` and `instance_url`, or 400
    `invalid_client` for a wrong secret. `expire_sessions()` ends every issued token, as the
    org's session timeout does: they are then refused 401 INVALID_SESSION_ID."""

    KEY = "Retention_Key__c"
    UPSERT = re.compile(r"^/services/data/v\d+\.\d+/sobjects/Task/Retention_Key__c/(.+)$")
    QUERY = re.compile(r"^/services/data/v\d+\.\d+/query/?$")
    SINCE = re.compile(r"LastModifiedDate >= (\S+)")
    TOKEN_PATH = "/services/oauth2/token"

    def __init__(
        self,
        tls_dir: Path,
        token: str = "00Dfake!session.token",
        client_id: str = "3MVG9fakeConsumerKey.retention",
        client_secret: str = "F4KE0C0NSUMER0SECRET0123456789",
    ) -> None:
        super().__init__(token, tls_dir)
        self.client_id, self.client_secret = client_id, client_secret
        self.sessions: set[str] = set()  # access tokens issued and not yet expired
        self.issued: list[str] = []  # every access token issued, in order
        self._sessions = count(1)

    def logins(self) -> list[Received]:
        return [r for r in self.received if self.is_login(r.path)]

    def expire_sessions(self) -> None:
        self.sessions.clear()

    def is_login(self, path: str) -> bool:
        return path == self.TOKEN_PATH

    def authorized(self, headers: dict[str, str]) -> bool:
        given = headers.get("Authorization", "").removeprefix("Bearer ")
        return given == self.token or given in self.sessions

    def login(self, headers: dict[str, str], form: dict[str, str]) -> Answer:
        if not headers.get("Content-Type", "").startswith("application/x-www-form-urlencoded"):
            return _oauth_error("invalid_request", "must use application/x-www-form-urlencoded")
        if form.get("grant_type") != "client_credentials":
            return _oauth_error("unsupported_grant_type", "grant type not supported")
        client_id, secret = _client_of(headers, form)
        if client_id != self.client_id:
            return _oauth_error("invalid_client_id", "client identifier invalid")
        if secret != self.client_secret:
            return _oauth_error("invalid_client", "invalid client credentials")
        access = f"00Dfake0000000001!AQ.issued.{next(self._sessions)}"
        self.sessions.add(access)
        self.issued.append(access)
        return Answer(
            200,
            {
                "access_token": access,
                "signature": "c2lnbmF0dXJl",
                "scope": "api",
                "instance_url": self.url,
                "id": f"{self.url}/id/00Dfake0000000001/005fake0000000001",
                "token_type": "Bearer",
                "issued_at": str(int(datetime.now(UTC).timestamp() * 1000)),
            },
        )

    @staticmethod
    def error(status: int, code: str, message: str, fields: list[str] | None = None) -> Answer:
        return Answer(status, [{"message": message, "errorCode": code, "fields": fields or []}])

    def busy(self, retry_after: int) -> Answer:
        limit = self.error(503, "SERVER_UNAVAILABLE", "Too many requests: try again later")
        return Answer(503, limit.body, (("Retry-After", str(retry_after)),))

    def refused_token(self) -> Answer:
        return self.error(401, "INVALID_SESSION_ID", "Session expired or invalid")

    def new_id(self) -> str:
        return f"00T{super().new_id():0>15}"

    def close(self, key: str, at: datetime | None = None) -> Task:
        """A CSM closes the task in Salesforce."""
        task = self.tasks[key]
        task.fields["Status"] = "Completed"
        task.modified = at or datetime.now(UTC)
        return task

    def route(self, method: str, path: str, query: dict[str, str], body: Any) -> Answer:
        if method == "PATCH" and (found := self.UPSERT.match(path)):
            return self._upsert(unquote(found.group(1)), body)
        if method == "GET" and self.QUERY.match(path):
            return self._query(query.get("q", ""))
        return self.error(404, "NOT_FOUND", f"The requested resource does not exist: {path}")

    def _upsert(self, key: str, body: Any) -> Answer:
        if not isinstance(body, dict) or self.KEY in body:
            return self.error(400, "INVALID_FIELD", "the external id goes in the URL", [self.KEY])
        missing = [f for f in ("Subject", "Status", "WhatId", "ActivityDate") if not body.get(f)]
        if missing:
            return self.error(400, "REQUIRED_FIELD_MISSING", "Required fields are missing", missing)
        if not str(body["WhatId"]).startswith("001"):
            return self.error(
                400, "FIELD_INTEGRITY_EXCEPTION", "WhatId: not an Account", ["WhatId"]
            )
        task = self.tasks.get(key)
        created = task is None
        if task is None:
            task = Task(self.new_id(), key, {})
            self.tasks[key] = task
        task.fields.update(body)
        task.modified = datetime.now(UTC)
        answer = {"id": task.crm_id, "success": True, "errors": [], "created": created}
        return Answer(201 if created else 200, answer)

    def _query(self, soql: str) -> Answer:
        wanted = (
            "FROM Task",
            "IsClosed = true",
            f"{self.KEY} != null",
            "ORDER BY LastModifiedDate",
        )
        since = self.SINCE.search(soql)
        if not all(part in soql for part in wanted) or since is None:
            return self.error(400, "MALFORMED_QUERY", f"unexpected query: {soql}")
        mark = datetime.strptime(since.group(1), "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
        closed = sorted(
            (t for t in self.tasks.values() if t.fields.get("Status") == "Completed"),
            key=lambda t: t.modified,
        )
        records = [
            {
                "attributes": {
                    "type": "Task",
                    "url": f"/services/data/v59.0/sobjects/Task/{t.crm_id}",
                },
                "Id": t.crm_id,
                self.KEY: t.key,
                "Status": "Completed",
                "LastModifiedDate": t.modified.strftime("%Y-%m-%dT%H:%M:%S.000+0000"),
            }
            for t in closed
            if t.modified.replace(microsecond=0) >= mark
        ]
        return Answer(200, {"totalSize": len(records), "done": True, "records": records})


def _oauth_error(error: str, description: str) -> Answer:
    return Answer(400, {"error": error, "error_description": description})


def _client_of(headers: dict[str, str], form: dict[str, str]) -> tuple[str | None, str | None]:
    """The client id and secret, from HTTP Basic or else the form (Salesforce takes either)."""
    basic = headers.get("Authorization", "")
    if basic.startswith("Basic "):
        pair = base64.b64decode(basic.removeprefix("Basic ")).decode()
        client_id, _, secret = pair.partition(":")
        return client_id, secret
    return form.get("client_id"), form.get("client_secret")
