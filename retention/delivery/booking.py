"""The assigned CSM's calendar booking link, a template variable (`csm_booking_link`).

Built from `RETENTION_CSM_BOOKING_URL`, a URL with `{csm}` where the CSM's id goes (e.g.
`https://calendar.example.com/{csm}`). Empty when the customer has no CSM or no pattern is set:
a template then offers another way to find a time, so a missing link never stops a message.
The pattern is checked with the settings (retention/runtime/booking_url.py).
"""

from __future__ import annotations

from urllib.parse import quote

from retention.runtime.booking_url import PLACEHOLDER


def booking_link(pattern: str | None, csm: str | None) -> str:
    """The CSM's link (their id URL-quoted into the pattern), or "" when there is none."""
    if not pattern or not csm:
        return ""
    return pattern.replace(PLACEHOLDER, quote(csm, safe=""))
