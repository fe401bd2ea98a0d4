"""What the CRM tests share: a customer known to the CRM, a journey filing a CSM task for them,
and the sync pointed at a fake CRM."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

from factories import make_customer, make_request, make_step
from fake_crm import FakeCrm
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
ROOT = Path(__file__).resolve().parent.parent
# What `crm-sync` does, in a process of its own, configured as an operator would.
PUSH = """
from retention.crm.sync import sync_from
from retention.runtime.settings import get_settings
from retention.store.db import make_engine
settings = get_settings()
sync_from(make_engine(settings.database_url), settings).push_due()
"""


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


def push_and_kill(database_url: str, fake: FakeCrm, settings: dict[str, str]) -> None:
    """Push in a process of its own with `settings` (RETENTION_* without the prefix) and SIGKILL
    it once the fake has made the task and holds its answer back."""
    env = {f"RETENTION_{name}": value for name, value in settings.items()}
    env |= {"RETENTION_DATABASE_URL": database_url, "PYTHONPATH": str(ROOT)}
    fake.hold_next()
    pusher = subprocess.Popen([sys.executable, "-c", PUSH], cwd=ROOT, env=os.environ | env)
    try:
        assert fake.held.wait(timeout=60), "the pusher never reached the CRM"
    finally:
        pusher.send_signal(signal.SIGKILL)
        pusher.wait(timeout=30)
        fake.release()
