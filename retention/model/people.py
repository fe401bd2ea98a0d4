"""The people of a generated account: names and zones, and the contacts of
`generate_population(..., contacts=N)`.

An account's N contacts hold the roles a customer-success team keeps, in this order: an executive
sponsor, the champion, two admins (the first is the profile's person, with the profile's email
and phone, so `primary_contact` finds them), a billing contact, then users; fewer than five take
the first N of these. The champion follows the account's drawn `champion_status`, so the
contacts show the status the generator drew (`champion_status_from`): active for `active` and
`at_risk`, inactive for `left`, and a user in the champion's place for `none`. A share of the
users have left (INACTIVE_USER_SHARE); some contacts have a phone or a time zone of their own.
Emails and phones are unique across the whole population.

The draws come from a random stream of their own (the seed and CONTACTS_STREAM): asking for
contacts changes nothing else in the population, and asking for none leaves it as it was.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray

from retention.plan import ContactRole

FIRST_NAMES = (
    "Ava", "Ben", "Chloe", "Dev", "Elena", "Farid", "Grace", "Hiro", "Ines", "Jonas",
    "Kemi", "Liam", "Mei", "Noah", "Olga", "Priya", "Quinn", "Rosa", "Sam", "Tariq",
)  # fmt: skip
LAST_NAMES = (
    "Adams", "Baker", "Chen", "Diaz", "Evans", "Fischer", "Garcia", "Haddad", "Ito", "Jensen",
    "Kim", "Lopez", "Moreau", "Nowak", "Okafor", "Patel", "Rossi", "Silva", "Tanaka", "Weber",
)  # fmt: skip
TIMEZONES = ("America/New_York", "America/Chicago", "America/Los_Angeles", "Europe/London",
             "Europe/Berlin", "Asia/Singapore", "Australia/Sydney")  # fmt: skip

CONTACTS_STREAM = 1  # the contacts' random stream: np.random.default_rng([seed, this])
LEADING_ROLES: tuple[ContactRole, ...] = (
    "executive_sponsor",
    "champion",
    "admin",
    "admin",
    "billing",
)  # then users
PROFILE_PERSON = 2  # the first admin
TITLES: dict[ContactRole, str] = {
    "executive_sponsor": "VP Operations",
    "champion": "Operations Manager",
    "admin": "Systems Administrator",
    "billing": "Finance Manager",
    "user": "Analyst",
}
INACTIVE_USER_SHARE = 0.1
CONTACT_PHONE_SHARE = 0.5
OWN_ZONE_SHARE = 0.2
PHONE_BASE = 7_000_000_000  # +44 7xxx xxxxxx: account number x PHONE_BLOCK + the contact's place
PHONE_BLOCK = 1_000

People = dict[str, NDArray[Any]]


def draw_contacts(seed: int, customers: int, per_account: int) -> People:
    """Every random figure of the contacts: one row per account, one column per contact."""
    rng = np.random.default_rng([seed, CONTACTS_STREAM])
    shape = (customers, per_account)
    return {
        "first": rng.integers(len(FIRST_NAMES), size=shape),
        "last": rng.integers(len(LAST_NAMES), size=shape),
        "phone": rng.random(shape) < CONTACT_PHONE_SHARE,
        "zone": np.where(
            rng.random(shape) < OWN_ZONE_SHARE, rng.integers(len(TIMEZONES), size=shape), -1
        ),
        "gone": rng.random(shape) < INACTIVE_USER_SHARE,
    }


def account_contacts(
    number: int, profile: dict[str, Any], champion_status: str, drawn: dict[str, list[Any]]
) -> list[dict[str, Any]]:
    """Account `number`'s contact documents from its row of `draw_contacts` (lists)."""
    contacts = []
    for place, (first, last) in enumerate(zip(drawn["first"], drawn["last"], strict=True)):
        role = _role(place, champion_status)
        zone = drawn["zone"][place]
        contact = {
            "contact_id": f"c{place + 1:03d}",
            "name": f"{FIRST_NAMES[first]} {LAST_NAMES[last]}",
            "email": _email(FIRST_NAMES[first], LAST_NAMES[last], number, place),
            "phone": f"+44{PHONE_BASE + number * PHONE_BLOCK + place}"
            if drawn["phone"][place]
            else None,
            "roles": [role],
            "timezone": TIMEZONES[zone] if zone >= 0 else None,
            "title": TITLES[role],
            "active": _active(role, champion_status, drawn["gone"][place]),
        }
        if place == PROFILE_PERSON:
            contact |= {k: profile[k] for k in ("name", "email", "phone")}
        contacts.append(contact)
    return contacts


def _role(place: int, champion_status: str) -> ContactRole:
    if place >= len(LEADING_ROLES):
        return "user"
    role = LEADING_ROLES[place]
    return "user" if role == "champion" and champion_status == "none" else role


def _active(role: ContactRole, champion_status: str, gone: bool) -> bool:
    if role == "champion":
        return champion_status != "left"
    return not (role == "user" and gone)


def _email(first: str, last: str, number: int, place: int) -> str:
    return f"{first.lower()}.{last.lower()}.{number}.{place + 1}@example.com"
