"""Completions read back from Salesforce: the tasks closed there since the high-water mark kept
in the database (`crm_marks`), each completing ours once (docs/crm.md).

The query reads from a little before the mark (`>=`, less OVERLAP): a task closed in the same
second as the last one read, or committed late by Salesforce, is not skipped; one read twice
is done here already and completes nothing.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import Engine

from retention.crm.salesforce import SalesforceCrm
from retention.store.crm_tasks import complete_from_crm, first_mark, keep_mark, read_mark
from retention.store.tables import CsmTaskRow

OVERLAP = timedelta(minutes=2)


def poll_completions(engine: Engine, crm: SalesforceCrm, now: datetime) -> list[CsmTaskRow]:
    """Our tasks Salesforce closed since the mark, completed here now; raises CrmUnavailable
    (the mark unmoved) when Salesforce cannot be read."""
    mark = read_mark(engine, crm.name) or first_mark(engine, crm.name, now)
    closed = crm.closed_since(mark - OVERLAP)
    found = (complete_from_crm(engine, crm.name, c.crm_id, c.closed_at, c.key) for c in closed)
    completed = [task for task in found if task is not None]
    keep_mark(engine, crm.name, max([mark, *(c.closed_at for c in closed)]))
    return completed
