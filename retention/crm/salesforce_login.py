"""The access token Salesforce calls carry (docs/crm.md, "Setting up Salesforce").

With a Connected App's client id and secret, the token comes from the org's OAuth 2.0
client-credentials flow (`POST <My Domain>/services/oauth2/token`, `grant_type=
client_credentials`, the id and secret as HTTP Basic), through simple-salesforce's own
`token_login`. It is kept for the process and fetched again when Salesforce says it expired
(401 `INVALID_SESSION_ID`): `renew` logs in once for every caller that held the stale token.

The SDK's `Salesforce(consumer_key=..., consumer_secret=..., domain=...)` posts the same form,
but to `https://<domain>.salesforce.com` (no other host, so not to a test server), logs in
every time a client is made, and retries an expired session up to three times per call: here
the token outlives the per-call clients and a call is retried once.

A static access token (`RETENTION_SALESFORCE_ACCESS_TOKEN`) is used as given: it cannot be
renewed, so its expiry is a final refusal.
"""

from __future__ import annotations

import base64
import logging
import threading
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import requests
from pydantic import SecretStr
from simple_salesforce.exceptions import SalesforceAuthenticationFailed
from simple_salesforce.login import token_login

from retention.delivery.providers import ProviderAnswer, classify, retry_after, scrub
from retention.errors import RetentionError

log = logging.getLogger(__name__)

TOKEN_PATH = "/services/oauth2/token"


@dataclass(frozen=True)
class ClientCredentials:
    """A Connected App's (External Client App's) consumer key and secret."""

    client_id: str
    client_secret: SecretStr


SalesforceAuth = SecretStr | ClientCredentials  # a static access token, or the app's


class TimedSession(requests.Session):
    """A session with a timeout on every call (simple-salesforce sets none) that keeps the last
    answer: the SDK's exceptions carry neither its status nor its Retry-After."""

    def __init__(self, timeout: float) -> None:
        super().__init__()
        self.timeout = timeout
        self.last: requests.Response | None = None

    def request(self, *args: Any, **kwargs: Any) -> Any:  # type: ignore[override]
        kwargs.setdefault("timeout", self.timeout)
        self.last = super().request(*args, **kwargs)
        return self.last


class LoginFailed(RetentionError):
    """Salesforce gave no access token: `answer` says whether to try again (429, 5xx, no
    answer) or not (400 `invalid_client`: a wrong secret; any other refusal)."""

    def __init__(self, answer: ProviderAnswer) -> None:
        super().__init__(answer.error or "Salesforce login failed")
        self.answer = answer


class SalesforceSession:
    """The access token for one org, shared by every thread of the process."""

    def __init__(self, instance_url: str, auth: SalesforceAuth, timeout: float) -> None:
        self._instance_url = instance_url.rstrip("/")
        self._auth = auth
        self._timeout = timeout
        self._lock = threading.Lock()
        self._token = auth.get_secret_value() if isinstance(auth, SecretStr) else None

    @property
    def renewable(self) -> bool:
        return isinstance(self._auth, ClientCredentials)

    def token(self) -> str:
        """The current token, logging in first when there is none yet; raises LoginFailed."""
        with self._lock:
            if self._token is None:
                self._token = self._login()
            return self._token

    def renew(self, stale: str) -> bool:
        """Log in again unless another caller already replaced `stale`; False for a static
        token (nothing to renew it with). Raises LoginFailed."""
        if not self.renewable:
            return False
        with self._lock:
            if self._token == stale:
                log.info("Salesforce session expired: logging in again")
                self._token = None  # a refused login leaves none: the next call tries again
                self._token = self._login()
        return True

    def scrub(self, text: str) -> str:
        """`text` without the token, the client secret, or the Basic credentials made of it."""
        secrets = [self._token or ""]
        if isinstance(self._auth, SecretStr):
            secrets.append(self._auth.get_secret_value())
        else:
            secrets += [self._auth.client_secret.get_secret_value(), self._basic()]
        return scrub(text, tuple(secrets))

    def _login(self) -> str:
        assert isinstance(self._auth, ClientCredentials)
        http = TimedSession(self._timeout)
        try:
            token, _instance = token_login(
                f"{self._instance_url}{TOKEN_PATH}",
                {"grant_type": "client_credentials"},
                urlsplit(self._instance_url).hostname or self._instance_url,
                self._auth.client_id,
                {"Authorization": f"Basic {self._basic()}"},
                None,
                http,
            )
        except SalesforceAuthenticationFailed as exc:
            raise LoginFailed(self._refused(exc, http.last)) from None
        except requests.RequestException as exc:
            error = f"Salesforce login unreachable: {type(exc).__name__}"
            raise LoginFailed(ProviderAnswer("retryable", None, error=error)) from None
        except AttributeError:  # the SDK reads instance_url from an answer that had none
            token = None
        finally:
            http.close()
        if not token:
            error = "Salesforce login answered without an access token"
            raise LoginFailed(ProviderAnswer("retryable", 200, error=error))
        return str(token)

    def _refused(
        self, exc: SalesforceAuthenticationFailed, answer: requests.Response | None
    ) -> ProviderAnswer:
        status = answer.status_code if answer is not None else 0
        headers = answer.headers if answer is not None else {}
        words = f"{exc.code}: {exc.auth_message}" if exc.code else exc.auth_message
        return classify(
            status,
            error=self.scrub(f"Salesforce refused the login ({status}): {words}"),
            retry_after=retry_after(headers.get("Retry-After")),
        )

    def _basic(self) -> str:
        assert isinstance(self._auth, ClientCredentials)
        pair = f"{self._auth.client_id}:{self._auth.client_secret.get_secret_value()}"
        return base64.b64encode(pair.encode()).decode()
