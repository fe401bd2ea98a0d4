"""The customer snapshot a journey assesses, and the events a customer's journey listens to."""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import UTC, date, datetime
from operator import attrgetter
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

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
from retention.plan import (
    CONTACT_ROLES,
    CUSTOMER_CHANNELS,
    DEFAULT_UNSUBSCRIBE_CHANNEL,
    ContactRole,
)

CUSTOMER_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"
EMAIL_PATTERN = r"^[^@\s]+@[^@\s]+\.[^@\s]+$"
PHONE_PATTERN = r"^\+[1-9][0-9]{6,14}$"  # E.164
# A HubSpot object id (digits) or a Salesforce record id (15 or 18 letters and digits).
CRM_ID_PATTERN = r"^[A-Za-z0-9]{1,64}$"
MAX_INTERACTION_CHARS = 10_000
# A snapshot carries the recent conversations, not the whole helpdesk history.
MAX_INTERACTIONS = 1_000


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Profile(_Strict):
    customer_id: str = Field(pattern=CUSTOMER_ID_PATTERN)
    name: str = Field(min_length=1)
    company: str = Field(min_length=1)
    email: str = Field(pattern=EMAIL_PATTERN)
    phone: str | None = Field(default=None, pattern=PHONE_PATTERN)
    plan: str = "standard"
    segment: str = "smb"
    timezone: str = "UTC"
    assigned_csm: str | None = None
    signup_date: date | None = None
    onboarding_progress: float | None = Field(
        default=None, ge=0, le=100, description="percent of onboarding done; None: not tracked"
    )
    crm_account_id: str | None = Field(
        default=None,
        pattern=CRM_ID_PATTERN,
        description="the account in the CRM CSM tasks go to: HubSpot company or Salesforce "
        "Account id (docs/crm.md)",
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


ChampionStatus = Literal["active", "at_risk", "left", "none"]
# The people a journey may address, not every seat. The snapshot travels in workflow payloads,
# which Temporal refuses over 2 MB: 500 contacts take ~100 KB as real ones come and under 1 MB
# with every text at its longest in escaped 4-byte characters (tests/test_customer_contacts.py).
MAX_CONTACTS = 500
MAX_CONTACT_TEXT = 100  # a name or a job title
MAX_EMAIL_CHARS = 254  # the longest address SMTP carries (RFC 5321)
# The profile's person when it stands in as a contact (`CustomerSnapshot.primary_contact`).
PRIMARY_CONTACT_ID = "primary"


class Relationship(_Strict):
    nps: int | None = Field(default=None, ge=0, le=10, description="latest NPS answer, 0-10")
    executive_engaged: bool = False
    champion_status: ChampionStatus = Field(
        default="active", description="with contacts, what they show (`champion_status_from`)"
    )


class Contact(_Strict):
    """One person at the account (docs/operators.md, "Contacts: an account's people")."""

    contact_id: str = Field(pattern=CUSTOMER_ID_PATTERN, description="unique in the account")
    name: str = Field(min_length=1, max_length=MAX_CONTACT_TEXT)
    email: str = Field(max_length=MAX_EMAIL_CHARS, pattern=EMAIL_PATTERN)
    phone: str | None = Field(default=None, pattern=PHONE_PATTERN)
    roles: list[ContactRole] = Field(
        default_factory=lambda: list[ContactRole](["user"]),
        min_length=1,
        max_length=len(CONTACT_ROLES),
        description="one or more; a person often holds several (the champion is an admin)",
    )
    timezone: str | None = Field(
        default=None, max_length=64, description="IANA zone; None: the account's (profile)"
    )
    title: str | None = Field(default=None, max_length=MAX_CONTACT_TEXT)
    active: bool = Field(default=True, description="false: left the account or the role")
    crm_contact_id: str | None = Field(
        default=None, pattern=CRM_ID_PATTERN, description="the person's contact id in the CRM"
    )

    @field_validator("roles")
    @classmethod
    def _roles_once(cls, roles: list[ContactRole]) -> list[ContactRole]:
        twice = sorted({role for role in roles if roles.count(role) > 1})
        if twice:
            raise ValueError(f"{', '.join(twice)} listed twice")
        return roles

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, name: str | None) -> str | None:
        if name is None:
            return None
        try:
            ZoneInfo(name)
        except (ZoneInfoNotFoundError, ValueError, OSError):
            raise ValueError(f"{name!r} is not an IANA time zone (e.g. Europe/Berlin)") from None
        return name


def champion_status_from(contacts: Sequence[Contact], given: ChampionStatus) -> ChampionStatus:
    """The champion status the contacts show; `given` where they do not decide it.

    Without contacts, `given` stands (the upstream flag). With them, the contacts are the
    fresher fact: an active champion is `active`, or `at_risk` when so flagged; no active
    champion is `left` (gone from the list, or `active: false`), except `none` for an account
    that says it never had one and lists no champion, past or present.
    """
    if not contacts:
        return given
    champions = [contact for contact in contacts if "champion" in contact.roles]
    if any(champion.active for champion in champions):
        return "at_risk" if given == "at_risk" else "active"
    return "none" if given == "none" and not champions else "left"


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
    contacts: list[Contact] = Field(
        default_factory=list,
        max_length=MAX_CONTACTS,
        description="the account's people; none: the profile's person is the only one known",
    )

    @field_validator("contacts")
    @classmethod
    def _each_person_once(cls, contacts: list[Contact]) -> list[Contact]:
        check_each_person_once(contacts)
        return contacts

    @model_validator(mode="after")
    def _champion_as_contacts_show(self) -> CustomerSnapshot:
        # Set here, once, so health, risk, the model and the rules all read the same status.
        status = champion_status_from(self.contacts, self.relationship.champion_status)
        if status != self.relationship.champion_status:
            self.relationship = self.relationship.model_copy(update={"champion_status": status})
        return self

    @property
    def customer_id(self) -> str:
        return self.profile.customer_id

    @property
    def primary_contact(self) -> Contact:
        """The profile's person, the account's primary contact: their entry in `contacts` (same
        email), else the profile as a contact holding every role, the one person known."""
        email = self.profile.email.casefold()
        listed = (contact for contact in self.contacts if contact.email.casefold() == email)
        # model_construct: the profile's own checks passed, and its name may be longer than a
        # contact's limit; the stand-in never travels on its own.
        return next(listed, None) or Contact.model_construct(
            contact_id=PRIMARY_CONTACT_ID,
            name=self.profile.name,
            email=self.profile.email,
            phone=self.profile.phone,
            roles=list(CONTACT_ROLES),
            timezone=None,
            title=None,
            active=True,
        )

    def contacts_with_role(self, role: ContactRole) -> list[Contact]:
        """The active people holding `role`; without contacts, the primary contact, whatever
        the role (every message went to the profile's person before contacts existed)."""
        if not self.contacts:
            return [self.primary_contact]
        return [contact for contact in self.contacts if contact.active and role in contact.roles]


def check_each_person_once(contacts: Sequence[Contact]) -> None:
    """One entry per person: by id, and by email whatever its case; ValueError naming the
    entry otherwise."""
    ids: dict[str, int] = {}
    emails: dict[str, int] = {}
    for i, contact in enumerate(contacts):
        where = f"contacts.{i} ({contact.contact_id!r})"
        if contact.contact_id == PRIMARY_CONTACT_ID:
            raise ValueError(f"{where}: contact_id {PRIMARY_CONTACT_ID!r} is the profile's")
        if (first := ids.setdefault(contact.contact_id, i)) != i:
            raise ValueError(f"{where}: contact_id is also contacts.{first}'s")
        if (first := emails.setdefault(contact.email.casefold(), i)) != i:
            raise ValueError(
                f"{where}: email {contact.email!r} is also contacts.{first}'s "
                f"({contacts[first].contact_id!r})"
            )


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
    "contact_changed",
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
            _check_unsubscribed(self.data)
        if self.type == "milestone_reached":
            milestone = self.data.get("milestone")
            if not isinstance(milestone, str) or not milestone:
                raise ValueError("data.milestone must name the milestone for milestone_reached")
        if self.type == "task_completed":
            _check_task_completed(self.data)
        if self.type == "contact_changed":
            contact_change(self.data)
        return self


# What in an `unsubscribed` event's data may name one person, and how it must look.
_PERSON_FIELDS = (
    ("contact_id", CUSTOMER_ID_PATTERN, "a contact's id"),
    ("email", EMAIL_PATTERN, "an email address"),
    ("phone", PHONE_PATTERN, "an E.164 phone number (+ and digits)"),
)


def _check_unsubscribed(data: dict[str, Any]) -> None:
    """The channel, and the one person it is for if named: their contact id or their address
    on that channel (an email for email and in-app, a phone for SMS and calls)."""
    channel = data.get("channel", DEFAULT_UNSUBSCRIBE_CHANNEL)
    if channel not in CUSTOMER_CHANNELS:
        raise ValueError(
            f"data.channel must be one of {', '.join(CUSTOMER_CHANNELS)} for "
            f"unsubscribed (default email); got {channel!r}"
        )
    for field, pattern, what in _PERSON_FIELDS:
        value = data.get(field)
        if value is not None and (not isinstance(value, str) or not re.match(pattern, value)):
            raise ValueError(f"data.{field} must be {what} for unsubscribed; got {value!r}")
    wanted = "phone" if channel in ("sms", "phone") else "email"
    other = "email" if wanted == "phone" else "phone"
    if data.get(other) is not None and data.get(wanted) is None and "contact_id" not in data:
        raise ValueError(
            f"data.{wanted} must name the person for unsubscribed on {channel} "
            f"(data.{other} is not an address on it)"
        )


def contact_change(data: dict[str, Any]) -> tuple[str, Contact | None]:
    """What a `contact_changed` event's data says: the contact's id, and the contact as it is
    now (a whole contact, as in the snapshot; `active: false` for someone gone) or None for
    `{contact_id, removed: true}`. ValueError naming the field (`data.email: ...`)."""
    if "removed" in data:
        contact_id = data.get("contact_id")
        if data["removed"] is not True or set(data) != {"contact_id", "removed"}:
            raise ValueError(
                "data.removed must be true, with data.contact_id and nothing else, for "
                "contact_changed (or send the whole contact)"
            )
        if not isinstance(contact_id, str) or not re.match(CUSTOMER_ID_PATTERN, contact_id):
            raise ValueError("data.contact_id must be a contact's id for contact_changed")
        return contact_id, None
    try:
        contact = Contact.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(
            f"data.{'.'.join(map(str, item['loc'])) or '(root)'}: {item['msg']}"
            for item in exc.errors()
        )
        raise ValueError(f"{problems} (contact_changed)") from None
    if contact.contact_id == PRIMARY_CONTACT_ID:
        raise ValueError(f"data.contact_id {PRIMARY_CONTACT_ID!r} is the profile's person")
    return contact.contact_id, contact


def _check_task_completed(data: dict[str, Any]) -> None:
    """A CSM task done (`starter.py tasks complete`): which task, what it was, by whom."""
    task_id = data.get("task_id")
    if not isinstance(task_id, int) or isinstance(task_id, bool):
        raise ValueError("data.task_id must be the CSM task's number for task_completed")
    for field in ("action", "completed_by"):
        if not isinstance(data.get(field), str) or not data[field]:
            raise ValueError(f"data.{field} must be a non-empty text for task_completed")


def describe_validation_error(error: ValidationError, document: Any = None) -> str:
    """One line naming every failing field, e.g. `usage.total_features: Input should be ...`;
    given the `document` that failed, a contact's field names the contact by its id too
    (`contacts.2 ('ana').email: ...`)."""
    parts = []
    for item in error.errors():
        where = _where(item["loc"], document) or "(root)"
        parts.append(f"{where}: {item['msg']}")
    return "; ".join(parts)


def _where(loc: tuple[int | str, ...], document: Any) -> str:
    names, node = [], document
    for key in loc:
        node = _item(node, key)
        contact_id = node.get("contact_id") if isinstance(node, dict) else None
        names.append(f"{key} ({contact_id!r})" if isinstance(contact_id, str) else str(key))
    return ".".join(names)


def _item(node: Any, key: int | str) -> Any:
    if isinstance(node, dict):
        return node.get(key)
    if isinstance(node, list) and isinstance(key, int) and 0 <= key < len(node):
        return node[key]
    return None


def parse_customer(raw: Any, source: str = "customer") -> CustomerSnapshot:
    try:
        return CustomerSnapshot.model_validate(raw)
    except ValidationError as exc:
        raise InvalidInput(f"{source}: {describe_validation_error(exc, raw)}") from exc


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
