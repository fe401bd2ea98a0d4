"""The assigned CSM's calendar booking link, a template variable (`csm_booking_link`).

Built from `RETENTION_CSM_BOOKING_URL`, a URL with `{csm}` where the CSM's id goes (e.g.
`https://calendar.example.com/{csm}`). Empty when the customer has no CSM or no pattern is set:
a template then offers another way to find a time, so a missing link never stops a message.
"""

from __future__ import annotations

from urllib.parse import quote

PLACEHOLDER = "{csm}"


def check_booking_url(pattern: str | None) -> str | None:
    """The pattern if usable; a ValueError saying what is wrong otherwise."""
    if pattern is None or not pattern.strip():
        return None
    if not pattern.startswith(("https://", "http://")):
        raise ValueError(f"must start with https:// (got {pattern!r})")
    if PLACEHOLDER not in pattern:
        raise ValueError(f"must hold {PLACEHOLDER} where the CSM's id goes (got {pattern!r})")
    return pattern


def booking_link(pattern: str | None, csm: str | None) -> str:
    """The CSM's link (their id URL-quoted into the pattern), or "" when there is none."""
    if not pattern or not csm:
        return ""
    return pattern.replace(PLACEHOLDER, quote(csm, safe=""))
