"""CSM tasks: made once by delivery, listed and completed once in the database."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from factories import count, make_customer, make_request, make_step
from sqlalchemy import Engine

from retention.customer import parse_event
from retention.delivery.send import deliver
from retention.delivery.task_filing import TASK_RESPONSE_TIME
from retention.delivery.templates import TemplateSet
from retention.errors import InvalidInput
from retention.events import apply_effects, fold_events
from retention.runtime.settings import ROOT
from retention.store.csm_tasks import TaskNotFound, complete_task, list_tasks, note_event_sent
from retention.store.in_app import in_app_messages
from retention.store.tables import CsmTaskRow

pytestmark = pytest.mark.database

SHIPPED = TemplateSet.read(ROOT / "rules" / "templates")


def csm_step(action: str = "executive_call", **fields: object) -> object:
    return make_step(action, channel="csm_task", fallback_channel="internal", owner="csm", **fields)


def test_a_csm_step_makes_one_task_however_often_it_is_delivered(
    engine: Engine, tmp_path: Path
) -> None:
    request = make_request(csm_step())
    with ThreadPoolExecutor(max_workers=4) as pool:
        receipts = list(pool.map(lambda _: deliver(engine, tmp_path, SHIPPED, request), range(4)))

    assert sum(not r.duplicate for r in receipts) == 1
    [task] = list_tasks(engine)
    assert count(engine, CsmTaskRow) == 1
    assert (task.customer_id, task.action, task.channel, task.status) == (
        "cust-001",
        "executive_call",
        "csm_task",
        "open",
    )
    assert task.idempotency_key == receipts[0].idempotency_key
    assert task.outbox_id == receipts[0].outbox_id and task.summary == receipts[0].subject
    assert task.assigned_csm == request.customer.profile.assigned_csm
    assert task.due_at - task.created_at == TASK_RESPONSE_TIME
    assert task.journey_key == request.journey_key and task.step_id == request.step.step_id


def test_customer_messages_and_held_out_steps_make_no_task(engine: Engine, tmp_path: Path) -> None:
    deliver(engine, tmp_path, SHIPPED, make_request(make_step("retention_offer")))
    deliver(engine, tmp_path, SHIPPED, make_request(csm_step(step_id="held"), held_out=True))

    assert count(engine, CsmTaskRow) == 0


def test_tasks_filter_by_customer_csm_and_status(engine: Engine, tmp_path: Path) -> None:
    alex = make_customer(profile={"customer_id": "cust-a", "assigned_csm": "csm-alex"})
    nobody = make_customer(profile={"customer_id": "cust-b", "assigned_csm": None})
    for customer in (alex, nobody):
        for action in ("executive_call", "csm_checkin"):
            step = csm_step(action, step_id=f"g1-{customer.customer_id}-{action}")
            deliver(engine, tmp_path, SHIPPED, make_request(step, customer))
    first = list_tasks(engine, customer_id="cust-a")[0]
    assert first.id is not None
    complete_task(engine, first.id, "csm-alex", None)

    assert {t.customer_id for t in list_tasks(engine, csm="csm-alex", status="all")} == {"cust-a"}
    assert {t.customer_id for t in list_tasks(engine, csm="unassigned")} == {"cust-b"}
    assert [t.id for t in list_tasks(engine, status="done")] == [first.id]
    assert len(list_tasks(engine)) == 3 and len(list_tasks(engine, status="all")) == 4


def test_a_task_is_completed_once(engine: Engine, tmp_path: Path) -> None:
    deliver(engine, tmp_path, SHIPPED, make_request(csm_step()))
    [task] = list_tasks(engine)
    assert task.id is not None

    first = complete_task(engine, task.id, "csm-alex", "exec sponsor on the call")
    again = complete_task(engine, task.id, "someone-else", "second try")

    assert first.completed_now and not again.completed_now
    assert (again.task.status, again.task.completed_by, again.task.note) == (
        "done",
        "csm-alex",
        "exec sponsor on the call",
    )
    assert again.task.completed_at == first.task.completed_at
    assert first.task.event_sent_at is None
    assert note_event_sent(engine, task.id).event_sent_at is not None
    assert list_tasks(engine, status="done")[0].event_sent_at is not None


def test_completing_an_unknown_task_names_it(engine: Engine) -> None:
    with pytest.raises(TaskNotFound, match="no CSM task 42"):
        complete_task(engine, 42, "csm-alex", None)


def test_the_inbox_holds_a_customers_in_app_messages(engine: Engine, tmp_path: Path) -> None:
    in_app = make_step("usage_tips", channel="in_app", fallback_channel="email")
    deliver(engine, tmp_path, SHIPPED, make_request(in_app))
    deliver(engine, tmp_path, SHIPPED, make_request(make_step("retention_offer")))

    [message] = in_app_messages(engine, "cust-001")
    assert (message.step_id, message.channel) == (in_app.step_id, "in_app")
    assert in_app_messages(engine, "someone-else") == []


def test_a_completed_executive_call_counts_as_executive_engagement() -> None:
    customer = make_customer(relationship={"executive_engaged": False})
    call = parse_event({"type": "task_completed", "data": {
        "task_id": 7, "action": "executive_call", "completed_by": "csm-jordan"}})  # fmt: skip
    checkin = parse_event({"type": "task_completed", "data": {
        "task_id": 8, "action": "csm_checkin", "completed_by": "csm-jordan"}})  # fmt: skip

    assert apply_effects(customer, fold_events([call]), 0).relationship.executive_engaged
    assert not apply_effects(customer, fold_events([checkin]), 0).relationship.executive_engaged


@pytest.mark.parametrize(
    ("data", "field"),
    [
        ({"action": "executive_call", "completed_by": "csm-jordan"}, "data.task_id"),
        ({"task_id": "7", "action": "executive_call", "completed_by": "x"}, "data.task_id"),
        ({"task_id": 7, "completed_by": "csm-jordan"}, "data.action"),
        ({"task_id": 7, "action": "executive_call", "completed_by": ""}, "data.completed_by"),
    ],
)
def test_a_task_completed_event_names_what_it_lacks(data: dict[str, object], field: str) -> None:
    with pytest.raises(InvalidInput, match=field):
        parse_event({"type": "task_completed", "data": data})
