"""Whether a customer is in the holdout group: journeys that record everything, send nothing."""

from __future__ import annotations

import hashlib

from retention.rulebook.schema import Holdout


def in_holdout(customer_id: str, holdout: Holdout) -> bool:
    """Deterministic: a hash of salt and customer id, read as a fraction, below the share."""
    digest = hashlib.sha256(f"{holdout.salt}:{customer_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 < holdout.share
