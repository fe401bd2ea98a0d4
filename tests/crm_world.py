"""What the CRM tests share: a customer known to the CRM, a journey filing a CSM task for them,
and the sync pointed at a fake CRM."""

from __future__ import annotations

from pathlib import Path

from factories import make_customer, make_request, make_step
from sqlalchemy import Engine

from retention.customer import CustomerSnapshot
from retention.delivery.send import deliver
from retention.delivery.templates import TemplateSet
from retention.runtime.settings import ROOT
from retention.store.csm_tasks import list_tasks
from retention.store.db import session
from retention.store.tables import CsmTaskRow

SHIPPED = TemplateSet.read(ROOT / "rules" / "templates")
OWNERS = {"csm-jordan": "7001"}  # our CSM → the CRM user


def crm_customer(account_id: str | None, contact_id: str | None = None) -> CustomerSnapshot:
    champion = {
        "contact_id": "dana",
        "name": "Dana Champion",
        "email": "dana@acme.example",
        "roles": ["champion"],
        "crm_contact_id": contact_id,
    }
    return make_customer(profile={"crm_account_id": account_id}, contacts=[champion])


def file_task(
    engine: Engine, outbox: Path, customer: CustomerSnapshot, action: str = "executive_call"
) -> CsmTaskRow:
    """A journey's step asks the CSM to call the champion: the task is filed."""
    step = make_step(
        action,
        channel="csm_task",
        fallback_channel="internal",
        owner="csm",
        addressing={"to": ["champion"]},
    )
    deliver(engine, outbox, SHIPPED, make_request(step, customer))
    return task_of(engine, action)


def task_of(engine: Engine, action: str = "executive_call") -> CsmTaskRow:
    [task] = [t for t in list_tasks(engine, status="all") if t.action == action]
    return task


def reload(engine: Engine, task: CsmTaskRow) -> CsmTaskRow:
    with session(engine) as db:
        found = db.get(CsmTaskRow, task.id)
    assert found is not None
    return found
