"""The customer snapshot a journey assesses, and the events a customer's journey listens to."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, date, datetime
from operator import attrgetter
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    NonNegativeInt,
    ValidationError,
    field_validator,
    model_validator,
)

from retention.errors import InvalidInput
from retention.plan import CUSTOMER_CHANNELS, DEFAULT_UNSUBSCRIBE_CHANNEL

CUSTOMER_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"
MAX_INTERACTION_CHARS = 10_000
# A snapshot carries the recent conversations, not the whole helpdesk history.
MAX_INTERACTIONS = 1_000


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Profile(_Strict):
    customer_id: str = Field(pattern=CUSTOMER_ID_PATTERN)
    name: str = Field(min_length=1)
    company: str = Field(min_length=1)
    email: str = Field(pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
    phone: str | None = Field(default=None, pattern=r"^\+[1-9][0-9]{6,14}$")
    plan: str = "standard"
    segment: str = "smb"
    timezone: str = "UTC"
    assigned_csm: str | None = None
    signup_date: date | None = None
    onboarding_progress: float | None = Field(
        default=None, ge=0, le=100, description="percent of onboarding done; None: not tracked"
    )


class Usage(_Strict):
    days_since_last_login: int = Field(ge=0)
    logins_per_week: float = Field(ge=0)
    logins_per_week_prior: float = Field(ge=0, description="same figure one period earlier")
    features_used: int = Field(ge=0)
    total_features: int = Field(ge=1)
    actions_per_session: float = Field(ge=0)
    active_users: int = Field(default=0, ge=0)
    max_users: int = Field(default=0, ge=0, description="licensed seats; 0 means no limit")
    active_users_history: list[NonNegativeInt] = Field(
        default_factory=list,
        description="active users in earlier periods (e.g. months), oldest first, without now",
    )
    advanced_features_used: int = Field(
        default=0, ge=0, description="how many of features_used are advanced (plan-gated) ones"
    )
    storage_used_gb: float = Field(default=0.0, ge=0)
    storage_limit_gb: float = Field(default=0.0, ge=0, description="0 means no limit")
    api_calls_month: int = Field(default=0, ge=0)
    api_limit_month: int = Field(default=0, ge=0, description="0 means no limit")

    @model_validator(mode="after")
    def _features_within_total(self) -> Usage:
        if self.features_used > self.total_features:
            raise ValueError("features_used cannot exceed total_features")
        if self.advanced_features_used > self.features_used:
            raise ValueError("advanced_features_used cannot exceed features_used")
        return self

    @property
    def usage_decline(self) -> float:
        """Fractional drop in weekly logins against the prior period (0 when usage grew)."""
        if self.logins_per_week_prior <= 0:
            return 0.0
        return max(0.0, 1 - self.logins_per_week / self.logins_per_week_prior)


class Engagement(_Strict):
    email_open_rate: float = Field(ge=0, le=1)
    webinars_attended_90d: int = Field(default=0, ge=0)
    resources_downloaded_90d: int = Field(default=0, ge=0)


class Interaction(_Strict):
    """One support conversation turn (ticket, email, chat, call transcript) from the customer."""

    at: datetime = Field(description="when it happened; a time without a zone is taken as UTC")
    channel: str = Field(pattern=r"^[a-z][a-z0-9_]{0,31}$", description="ticket, email, chat, call")
    text: str = Field(max_length=MAX_INTERACTION_CHARS)
    sentiment: float | None = Field(
        default=None, ge=-1, le=1, description="scored upstream; wins over the local scorer"
    )

    @field_validator("at")
    @classmethod
    def _aware(cls, at: datetime) -> datetime:
        # Interactions are ordered by time: naive and aware datetimes cannot be compared.
        return at if at.tzinfo is not None else at.replace(tzinfo=UTC)


class Support(_Strict):
    tickets_90d: int = Field(ge=0)
    avg_ticket_sentiment: float = Field(default=0.0, ge=-1, le=1)
    satisfaction: float | None = Field(default=None, ge=1, le=5, description="CSAT, 1-5")
    interactions: list[Interaction] = Field(default_factory=list, max_length=MAX_INTERACTIONS)


class Financial(_Strict):
    annual_contract_value: float = Field(ge=0)
    payment_delays_90d: int = Field(default=0, ge=0)
    expansion_revenue: float = Field(default=0.0, ge=0)
    discount_pct: float = Field(default=0.0, ge=0, le=100)


class Relationship(_Strict):
    nps: int | None = Field(default=None, ge=0, le=10, description="latest NPS answer, 0-10")
    executive_engaged: bool = False
    champion_status: Literal["active", "at_risk", "left", "none"] = "active"


class CustomerSnapshot(_Strict):
    profile: Profile
    usage: Usage
    engagement: Engagement
    support: Support
    financial: Financial
    relationship: Relationship
    health_history: list[float] = Field(
        default_factory=list, description="earlier overall health scores, oldest first"
    )

    @property
    def customer_id(self) -> str:
        return self.profile.customer_id


EventType = Literal[
    "login",
    "feature_used",
    "email_opened",
    "email_clicked",
    "meeting_booked",
    "ticket_opened",
    "ticket_message",
    "payment_failed",
    "payment_succeeded",
    "nps_response",
    "replied",
    "unsubscribed",
    "churned",
    "renewed",
    "milestone_reached",
    "task_completed",
]


# A coalesced signal stands for at most this many events (the ingest service sends one per
# customer, type and interval); more would be a sender's bug, not a busy customer.
MAX_EVENT_COUNT = 1_000_000


class CustomerEvent(_Strict):
    type: EventType
    at: datetime | None = Field(
        default=None, description="when it happened upstream (coalesced: the newest)"
    )
    data: dict[str, Any] = Field(default_factory=dict)
    count: int = Field(
        default=1,
        ge=1,
        le=MAX_EVENT_COUNT,
        description="how many such events this one stands for (coalesced by the ingest service)",
    )

    @model_validator(mode="after")
    def _data_fits_type(self) -> CustomerEvent:
        if self.type == "nps_response":
            score = self.data.get("score")
            if not isinstance(score, int) or isinstance(score, bool) or not 0 <= score <= 10:
                raise ValueError("data.score must be an integer from 0 to 10 for nps_response")
        if self.type == "unsubscribed":
            channel = self.data.get("channel", DEFAULT_UNSUBSCRIBE_CHANNEL)
            if channel not in CUSTOMER_CHANNELS:
                raise ValueError(
                    f"data.channel must be one of {', '.join(CUSTOMER_CHANNELS)} for "
                    f"unsubscribed (default email); got {channel!r}"
                )
        if self.type == "milestone_reached":
            milestone = self.data.get("milestone")
            if not isinstance(milestone, str) or not milestone:
                raise ValueError("data.milestone must name the milestone for milestone_reached")
        if self.type == "task_completed":
            _check_task_completed(self.data)
        return self


def _check_task_completed(data: dict[str, Any]) -> None:
    """A CSM task done (`starter.py tasks complete`): which task, what it was, by whom."""
    task_id = data.get("task_id")
    if not isinstance(task_id, int) or isinstance(task_id, bool):
        raise ValueError("data.task_id must be the CSM task's number for task_completed")
    for field in ("action", "completed_by"):
        if not isinstance(data.get(field), str) or not data[field]:
            raise ValueError(f"data.{field} must be a non-empty text for task_completed")


def describe_validation_error(error: ValidationError) -> str:
    """One line naming every failing field, e.g. `usage.total_features: Input should be ...`."""
    parts = []
    for item in error.errors():
        where = ".".join(str(p) for p in item["loc"]) or "(root)"
        parts.append(f"{where}: {item['msg']}")
    return "; ".join(parts)


def parse_customer(raw: Any, source: str = "customer") -> CustomerSnapshot:
    try:
        return CustomerSnapshot.model_validate(raw)
    except ValidationError as exc:
        raise InvalidInput(f"{source}: {describe_validation_error(exc)}") from exc


def parse_event(raw: Any) -> CustomerEvent:
    try:
        return CustomerEvent.model_validate(raw)
    except ValidationError as exc:
        raise InvalidInput(f"event: {describe_validation_error(exc)}") from exc


def read_fields(
    snapshots: Sequence[CustomerSnapshot], paths: Sequence[str]
) -> dict[str, tuple[Any, ...]]:
    """Each dotted attribute path's value (`"usage.logins_per_week"`) for every snapshot, read
    in one C-level pass (`attrgetter`): a portfolio's snapshots are cold in memory, so each is
    visited once for all its fields, not once per field."""
    read = attrgetter(*paths)
    rows = map(read, snapshots) if len(paths) > 1 else ((read(s),) for s in snapshots)
    columns = zip(*rows, strict=True) if snapshots else [() for _ in paths]
    return dict(zip(paths, columns, strict=True))
