"""Every RETENTION_* setting, read from the environment (and `.env` when present).

Secrets (`RETENTION_SENDGRID_API_KEY`, `RETENTION_TWILIO_AUTH_TOKEN`,
`RETENTION_SLACK_BOT_TOKEN`, the CRM tokens and secrets) may also come from files in
`RETENTION_SECRETS_DIR` (one file per setting, named like the variable, e.g. a Docker or
Kubernetes secret mount). They are `SecretStr`: a repr, a log line or a traceback shows `***`.
"""

from __future__ import annotations

import json
import os
from datetime import timedelta
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    BeforeValidator,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from retention.runtime.booking_url import check_booking_url
from retention.runtime.logs import LogFormat

ROOT = Path(__file__).resolve().parents[2]

DeliveryMode = Literal["capture", "live"]
# What each provider needs before it can send: all the fields of one of its sets. A provider
# with some of its fields but no whole set is an error.
SENDGRID_FIELDS = ("sendgrid_api_key", "email_from")
TWILIO_FIELDS = ("twilio_account_sid", "twilio_auth_token", "sms_from")
SLACK_FIELDS = ("slack_bot_token", "slack_channel")
# The CRM where CSM tasks also go (docs/crm.md): the access token creates them, the app's client
# secret checks the signed webhooks that bring completions back.
HUBSPOT_FIELDS = ("hubspot_access_token", "hubspot_client_secret")
# Salesforce: a Connected App's client id and secret (its token is fetched and renewed), or, for
# trying it out, a static access token (it expires); either with the org's My Domain URL.
SALESFORCE_APP_FIELDS = (
    "salesforce_instance_url",
    "salesforce_client_id",
    "salesforce_client_secret",
)
SALESFORCE_TOKEN_FIELDS = ("salesforce_instance_url", "salesforce_access_token")
Fields = tuple[str, ...]
SALESFORCE = (SALESFORCE_APP_FIELDS, SALESFORCE_TOKEN_FIELDS)
PROVIDERS: tuple[tuple[str, tuple[Fields, ...]], ...] = (
    ("SendGrid", (SENDGRID_FIELDS,)),
    ("Twilio", (TWILIO_FIELDS,)),
    ("Slack", (SLACK_FIELDS,)),
    ("HubSpot", (HUBSPOT_FIELDS,)),
    ("Salesforce", SALESFORCE),
)
# Every field any provider reads, each once, in order.
PROVIDER_FIELDS: Fields = tuple(
    dict.fromkeys(name for _p, sets in PROVIDERS for fields in sets for name in fields)
)


def _interval(value: object) -> object:
    """`0` or `off` (no schedule), seconds (`3600`), or what pydantic reads (`P1D`, `1 day`)."""
    if isinstance(value, str) and value.strip().lower() in ("off", "0", ""):
        return timedelta(0)
    if isinstance(value, str) and value.strip().isdigit():
        return timedelta(seconds=int(value))
    return value


# How often a schedule runs; 0 turns it off.
Interval = Annotated[timedelta, BeforeValidator(_interval)]


def _json_object(value: object) -> object:
    """JSON text from the environment, read here so that bad JSON is a validation error that
    names the variable (pydantic-settings' own decoding raises one that names neither)."""
    if not isinstance(value, str):
        return value
    try:
        return json.loads(value) if value.strip() else {}
    except ValueError as exc:
        raise ValueError(f'not JSON ({exc}); e.g. {{"csm-jordan": "C0123ABCD"}}') from None


# A JSON object keyed by CSM id (`assigned_csm`): their Slack channel, their CRM owner id.
ByCsm = Annotated[dict[str, str], NoDecode, BeforeValidator(_json_object)]


def _configured(data: dict[str, Any], fields: Fields) -> bool:
    return all(data.get(name) for name in fields)


def _provider_configured(data: dict[str, Any], sets: tuple[Fields, ...]) -> bool:
    return any(_configured(data, fields) for fields in sets)


def _any_configured(data: dict[str, Any]) -> bool:
    return any(_provider_configured(data, sets) for _name, sets in PROVIDERS)


def _provider_problem(provider: str, sets: tuple[Fields, ...], data: dict[str, Any]) -> str | None:
    """What is wrong with a provider's fields: some set but no whole set (naming what the
    nearest set lacks), or two whole sets at once; None when it is whole or absent."""
    given = {name for fields in sets for name in fields if data.get(name)}
    whole = [fields for fields in sets if _configured(data, fields)]
    if len(whole) > 1:
        extra = [f"RETENTION_{n.upper()}" for n in whole[1] if n not in whole[0]]
        return f"{provider} is configured twice: leave out {', '.join(extra)}"
    if not given or whole:
        return None
    nearest = max(sets, key=lambda fields: len(given.intersection(fields)))
    missing = [f"RETENTION_{name.upper()}" for name in nearest if name not in given]
    return f"{provider} is half configured: set {', '.join(missing)}"


def _default_delivery_mode(data: dict[str, Any]) -> DeliveryMode:
    """`live` as soon as one provider (or CRM) is fully configured, else `capture`."""
    return "live" if _any_configured(data) else "capture"


class Settings(BaseSettings):
    # hide_input_in_errors: a validation error would otherwise print the secrets it was given.
    model_config = SettingsConfigDict(
        env_prefix="RETENTION_", env_file=".env", extra="ignore", hide_input_in_errors=True
    )

    temporal_address: str = "127.0.0.1:7233"
    temporal_namespace: str = "default"
    task_queue: str = "retention-journeys"
    # Scan scoring and model training run here, so a retrain never takes a journey's slot.
    heavy_task_queue: str = "retention-heavy"
    worker_role: Literal["journeys", "heavy", "all"] = "all"
    journey_activity_slots: int = Field(default=8, ge=1, le=256)
    heavy_activity_slots: int = Field(default=2, ge=1, le=64)
    database_url: str = f"sqlite:///{ROOT / 'var' / 'retention.db'}"
    rules_dir: Path = ROOT / "rules"
    outbox_dir: Path = ROOT / "var" / "outbox"
    # A folder `model train` wrote; `baseline` (or empty) scores with baseline-0.
    model_dir: str = str(ROOT / "models" / "churn-default")
    sendgrid_api_key: SecretStr | None = None
    sendgrid_base_url: str = "https://api.sendgrid.com"
    email_from: str | None = None
    twilio_account_sid: str | None = None
    twilio_auth_token: SecretStr | None = None
    twilio_base_url: str = "https://api.twilio.com"
    sms_from: str | None = None
    # CSM alerts in Slack (docs/delivery.md): the bot token and the team channel.
    slack_bot_token: SecretStr | None = None
    slack_channel: str | None = None
    hubspot_access_token: SecretStr | None = None
    hubspot_client_secret: SecretStr | None = None
    hubspot_base_url: str = "https://api.hubapi.com"
    # The HubSpot account's id: with it, `tasks list` links each task (crm_url).
    hubspot_portal_id: str | None = None
    # Salesforce (docs/crm.md): the org's My Domain URL, and its Connected App's client id and
    # secret; or, only for trying it out, an access token (it expires: nothing renews it).
    salesforce_instance_url: str | None = None
    salesforce_client_id: str | None = None
    salesforce_client_secret: SecretStr | None = None
    salesforce_access_token: SecretStr | None = None
    crm_timeout_seconds: float = Field(default=10.0, gt=0, le=60)
    # The `crm-sync` schedule: pushes tasks not yet in the CRM, polls Salesforce completions.
    crm_sync_every: Interval = timedelta(minutes=1)
    # Declared after the credentials: its default is computed from them.
    delivery_mode: DeliveryMode = Field(default_factory=_default_delivery_mode)
    # After the mode: a bad map is then its own error, not also the mode's default's.
    # The channel of each CSM who has their own (JSON, e.g. {"csm-jordan": "C0123ABCD"}).
    slack_csm_channels: ByCsm = Field(default_factory=dict)
    # Our CSM ids (`assigned_csm`) to the CRM's owner/user ids, e.g. {"csm-ana": "005..."}.
    crm_owner_ids: ByCsm = Field(default_factory=dict)
    slack_base_url: str = "https://slack.com/api/"
    ui_url: str = "http://127.0.0.1:8233"
    demo_time_scale: float = 30_000.0
    # The worker's Prometheus endpoint (host:port); empty: no endpoint.
    metrics_address: str = "127.0.0.1:9464"
    # The worker's `/health` (host:port; empty: none): 200 while polling, 503 otherwise.
    health_address: str = "127.0.0.1:9465"
    # On SIGTERM the worker stops polling and lets running activities finish this long.
    worker_drain_seconds: float = Field(default=30.0, ge=0)
    log_format: LogFormat = "text"
    # How long personal data is kept, by category (docs/data-protection.md), and how often the
    # `data-purge` schedule removes what is older; 0 turns the schedule off.
    keep_usage_days: int = Field(default=730, ge=1)
    keep_support_days: int = Field(default=365, ge=1)
    keep_financial_days: int = Field(default=2555, ge=1)
    data_purge_every: Interval = timedelta(days=1)
    # The ingest service (`python -m retention.ingest`). Each source's secret is read by
    # `ingest_secret`, not declared here: sources are named in rules/sources.yaml.
    ingest_host: str = "127.0.0.1"
    ingest_port: int = Field(default=8000, ge=1, le=65535)
    ingest_max_bytes: int = Field(default=256 * 1024, ge=1)
    # The forwarder: at most this many signals a second, customers in flight at once.
    ingest_forward_rate: float = Field(default=200.0, gt=0)
    ingest_forward_concurrency: int = Field(default=32, ge=1, le=256)
    # A claim left by a dead instance is taken again after this (a live one renews its own).
    ingest_claim_lease_seconds: float = Field(default=120.0, ge=1)
    # The service's readiness `/health` (host:port; empty: none), apart from the worker's.
    ingest_health_address: str = "127.0.0.1:9466"
    # On SIGTERM, how long in-flight signals get before the rest of its claims is released.
    ingest_drain_seconds: float = Field(default=10.0, ge=0)
    # Model retraining (docs/model.md, "Retraining without surprises").
    model_retrain_every: Interval = timedelta(days=7)
    models_root: Path = ROOT / "models"
    model_holdout_share: float = Field(default=0.2, gt=0, lt=1)
    model_auc_tolerance: float = Field(default=0.0, ge=0)
    model_ece_tolerance: float = Field(default=0.01, ge=0)
    model_check_seconds: float = Field(default=30.0, ge=0)
    # The `portfolio-scan` schedule: how often (0 or `off`: no schedule), customers per page,
    # pages scored at once by the heavy workers.
    portfolio_scan_every: Interval = timedelta(days=1)
    portfolio_scan_page_size: int = Field(default=500, ge=1, le=10_000)
    portfolio_scan_parallel_pages: int = Field(default=4, ge=1, le=16)
    # Empty: VADER. A folder: the ONNX text-sentiment model in it
    # (retention/scoring/sentiment_model.py).
    sentiment_model: str = ""
    # The CSM's calendar: a URL with {csm} for the assigned CSM's id (template: csm_booking_link).
    csm_booking_url: str | None = None

    @field_validator("csm_booking_url")
    @classmethod
    def _booking_url(cls, pattern: str | None) -> str | None:
        return check_booking_url(pattern)

    @model_validator(mode="after")
    def _providers_complete(self) -> Settings:
        values = {name: getattr(self, name) for name in PROVIDER_FIELDS}
        for provider, sets in PROVIDERS:
            if (problem := _provider_problem(provider, sets, values)) is not None:
                raise ValueError(problem)
        if self.slack_csm_channels and not _configured(values, SLACK_FIELDS):
            raise ValueError(
                "RETENTION_SLACK_CSM_CHANNELS needs RETENTION_SLACK_BOT_TOKEN and "
                "RETENTION_SLACK_CHANNEL (the channel of every CSM not in it)"
            )
        if _configured(values, HUBSPOT_FIELDS) and _provider_configured(values, SALESFORCE):
            raise ValueError("both HubSpot and Salesforce are configured: CSM tasks go to one CRM")
        if self.delivery_mode == "live" and not _any_configured(values):
            raise ValueError(
                "RETENTION_DELIVERY_MODE=live needs SendGrid, Twilio, Slack or CRM credentials "
                f"({', '.join('RETENTION_' + n.upper() for n in PROVIDER_FIELDS)})"
            )
        return self

    @property
    def crm(self) -> Literal["hubspot", "salesforce"] | None:
        """The CRM CSM tasks also go to: None in capture mode or without one configured."""
        if self.delivery_mode != "live":
            return None
        values = {name: getattr(self, name) for name in PROVIDER_FIELDS}
        if _configured(values, HUBSPOT_FIELDS):
            return "hubspot"
        return "salesforce" if _provider_configured(values, SALESFORCE) else None

    def ingest_secret(self, source: str) -> SecretStr | None:
        """`RETENTION_INGEST_SECRET_<SOURCE>` from the environment, else the file of that name
        (in lower case, as the other secrets) in `RETENTION_SECRETS_DIR`; None (every request
        refused) when neither is set."""
        name = f"RETENTION_INGEST_SECRET_{source.upper()}"
        value = os.environ.get(name)
        folder = os.environ.get("RETENTION_SECRETS_DIR")
        files = [Path(folder) / n for n in (name.lower(), name)] if folder else []
        if not value and (found := next((f for f in files if f.is_file()), None)):
            value = found.read_text(encoding="utf-8").strip()
        return SecretStr(value) if value else None


def settings_problem(error: ValidationError) -> str:
    """One line naming each refused variable, e.g. `RETENTION_INGEST_DRAIN_SECONDS: Input should
    be greater than or equal to 0` (never its value: it may be a secret)."""
    return "; ".join(
        f"RETENTION_{str(e['loc'][0]).upper()}: {e['msg']}" if e["loc"] else e["msg"]
        for e in error.errors()
    )


@lru_cache
def get_settings() -> Settings:
    # Only when asked for: pydantic-settings warns about a secrets folder that does not exist.
    return Settings(_secrets_dir=os.environ.get("RETENTION_SECRETS_DIR"))
