"""The shape of `RETENTION_CSM_BOOKING_URL`: a URL with `{csm}` where the CSM's id goes.

Here, below the settings that check it, so that the settings need nothing from delivery/;
retention/delivery/booking.py fills it in for a customer's CSM.
"""

from __future__ import annotations

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
