"""Bad input, generated: journey requests, events, webhook bodies, update arguments, rule files
and CSV populations either pass validation or are refused naming the field (or file:line);
nothing else is ever raised. `test_enough_cases` checks the examples add up to 10,000+."""

from __future__ import annotations

import asyncio
import copy
import csv
import io
import json
import re
import shutil
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import RULES_DIR, JourneyWorld
from factories import customer_data
from hypothesis import given, settings
from hypothesis import strategies as st
from journey_stories import critical_customer, end_journey, start, until, until_planned
from pydantic import BaseModel, ValidationError
from pydantic_core import to_json
from sqlalchemy import Engine, delete
from sqlmodel import SQLModel, select
from strategies import PROFILE, json_objects, json_values, mutations
from temporalio.client import WorkflowFailureError, WorkflowHandle, WorkflowUpdateFailedError
from temporalio.exceptions import ApplicationError
from typer.testing import CliRunner
from webhooks import generic, segment_track, stripe_invoice, zendesk_ticket

import starter
from retention.customer import (
    CustomerEvent,
    describe_validation_error,
    parse_customer,
    parse_event,
)
from retention.errors import InvalidInput, RetentionError, RulebookError
from retention.ingest.sources import MappingError, SourceRule, load_sources, map_payload
from retention.journey_state import (
    CancelRequest,
    CommandResult,
    EscalateRequest,
    JourneyRequest,
    PauseRequest,
    ResumeRequest,
)
from retention.population import read_customers_csv, write_customers_csv
from retention.rulebook.loader import RULE_FILES, load_rulebook
from retention.search_attributes import WORKFLOW_TYPE
from retention.store.db import make_engine, session
from retention.store.records import load_customer, save_customer
from retention.store.tables import CustomerRow, JourneyRow

pytestmark = pytest.mark.properties

# Examples run per property, counted as they run (hypothesis may stop early on a small space).
CASES: Counter[str] = Counter()
MIN_CASES = 10_000


def _case(name: str) -> None:
    CASES[name] += 1


def _related(loc: tuple[Any, ...], path: tuple[Any, ...]) -> bool:
    """An error at `loc` is about `path` when one lies inside the other."""
    shorter = min(len(loc), len(path))
    return tuple(map(str, loc[:shorter])) == tuple(map(str, path[:shorter]))


def assert_names_path(exc: ValidationError, path: tuple[Any, ...]) -> None:
    """Some error points at the mutated path (or its parent object, whose check names it)."""
    about = [e for e in exc.errors() if _related(tuple(e["loc"]), path)]
    assert about, f"no error about {path}: {exc.errors()}"
    root = [e for e in about if not e["loc"]]
    for error in root:  # a whole-model check: its message must say which field
        assert str(path[0]) in error["msg"], error


def assert_every_error_located(exc: ValidationError, model: type[BaseModel]) -> None:
    for error in exc.errors():
        if not error["loc"] and error["type"] != "model_type":  # model_type: not an object
            assert any(name in error["msg"] for name in model.model_fields), error


# ---- journey input ---------------------------------------------------------------------------

VALID_REQUEST: dict[str, Any] = {
    "customer": customer_data(health_history=[70.0, 64.5]),
    "options": {"time_scale": 24.0, "upstream_churn_probability": 0.4},
}


@settings(PROFILE, max_examples=2500)
@given(mutations(VALID_REQUEST))
def test_mutated_journey_request_names_the_field(mutated: tuple[dict[str, Any], tuple]) -> None:
    _case("journey request mutated")
    document, path = mutated
    try:
        JourneyRequest.model_validate(document)
    except ValidationError as exc:
        assert_names_path(exc, path)


@settings(PROFILE, max_examples=600)
@given(json_objects)
def test_arbitrary_journey_request_is_valid_or_located(document: dict[str, Any]) -> None:
    _case("journey request arbitrary")
    try:
        JourneyRequest.model_validate(document)
    except ValidationError as exc:
        assert_every_error_located(exc, JourneyRequest)


@settings(PROFILE, max_examples=1200)
@given(mutations(customer_data()))
def test_mutated_snapshot_is_invalid_input_naming_the_field(
    mutated: tuple[dict[str, Any], tuple],
) -> None:
    _case("customer snapshot mutated")
    document, path = mutated
    try:
        parse_customer(document, source="snapshot")
    except InvalidInput as exc:
        assert str(exc).startswith("snapshot: ")
        assert_names_path(_cause(exc), path)


def _cause(exc: Exception) -> ValidationError:
    assert isinstance(exc.__cause__, ValidationError)
    return exc.__cause__


# ---- event payloads ----------------------------------------------------------------------------

VALID_EVENTS = [
    {"type": "nps_response", "at": "2026-11-26T09:00:00Z", "data": {"score": 4}},
    {"type": "unsubscribed", "data": {"channel": "sms"}},
    {"type": "milestone_reached", "data": {"milestone": "first_report"}},
    {"type": "task_completed", "data": {"task_id": 7, "action": "call", "completed_by": "jo"}},
    {"type": "login", "at": "2026-11-26T09:00:00+01:00", "data": {"feature": "x"}},
]


@settings(PROFILE, max_examples=2500)
@given(st.sampled_from(VALID_EVENTS).flatmap(mutations))
def test_mutated_event_names_the_field(mutated: tuple[dict[str, Any], tuple]) -> None:
    _case("event mutated")
    document, path = mutated
    try:
        parse_event(document)
    except InvalidInput as exc:
        assert str(exc).startswith("event: ")
        assert_names_path(_cause(exc), path)


@settings(PROFILE, max_examples=500)
@given(st.one_of(json_objects, json_values))
def test_arbitrary_event_is_parsed_or_located(raw: Any) -> None:
    _case("event arbitrary")
    try:
        parse_event(raw)
    except InvalidInput as exc:
        assert_every_error_located(_cause(exc), CustomerEvent)


SOURCES = load_sources(RULES_DIR)
WEBHOOK_SAMPLES = [
    ("generic", generic("evt-1", "cust-001", "nps_response", score=4)),
    ("zendesk", zendesk_ticket("zd-1", "cust-001")),
    ("stripe", stripe_invoice("evt_1", "cust-001")),
    ("segment", segment_track("msg-1", "cust-001")),
]


def _bodies() -> st.SearchStrategy[tuple[SourceRule, dict[str, Any], tuple | None]]:
    """A source's rule with a mutated sample body (and where), or with an arbitrary body."""
    rules = st.sampled_from(sorted(SOURCES.file.sources))
    arbitrary = st.tuples(rules, json_objects, st.none())
    mutated = st.sampled_from(WEBHOOK_SAMPLES).flatmap(
        lambda sample: st.tuples(st.just(sample[0]), mutations(sample[1])).map(
            lambda drawn: (drawn[0], drawn[1][0], drawn[1][1])
        )
    )
    return st.one_of(arbitrary, mutated).map(
        lambda drawn: (SOURCES.file.sources[drawn[0]], drawn[1], drawn[2])
    )


@settings(PROFILE, max_examples=1000)
@given(st.deferred(_bodies))
def test_webhook_body_maps_ignores_or_names_the_field(
    drawn: tuple[SourceRule, dict[str, Any], tuple | None],
) -> None:
    _case("webhook body")
    rule, body, _ = drawn
    try:
        mapped = map_payload(rule, body)
    except MappingError as exc:
        assert exc.field and str(exc).startswith(f"{exc.field}: ")
        return
    assert mapped.event is None or isinstance(mapped.event, CustomerEvent)


# ---- update arguments --------------------------------------------------------------------------

COMMANDS: list[type[BaseModel]] = [PauseRequest, CancelRequest, EscalateRequest]


@settings(PROFILE, max_examples=1500)
@given(
    st.sampled_from(COMMANDS),
    st.one_of(json_objects, json_values, st.fixed_dictionaries({"reason": json_values})),
)
def test_update_argument_is_valid_or_names_reason(command: type[BaseModel], raw: Any) -> None:
    _case("update argument")
    try:
        command.model_validate(raw)
    except ValidationError as exc:
        assert_every_error_located(exc, command)
        located = [e for e in exc.errors() if e["loc"]]
        assert all(e["loc"][0] == "reason" for e in located), exc.errors()


# ---- rule files --------------------------------------------------------------------------------

GARBAGE = ["{", "]", ": :", "- - x", "\t", "&a", "*a", "!!python/object:os.system", "\x00", "é"]
VALUES = ["[]", "{}", "-1", "1e999", ".nan", "'x'", "null", "true", "~", "9" * 30, "[1, 2"]


@st.composite
def mutated_rule_text(draw: st.DrawFn, text: str) -> str:
    """One edit a rule author could make by mistake: a line lost, a value of the wrong type,
    a misspelt word, a garbage line, a file cut short."""
    lines = text.splitlines(keepends=True)
    n = draw(st.integers(0, max(len(lines) - 1, 0)))
    action = draw(st.sampled_from(["delete", "value", "misspell", "garbage", "truncate"]))
    if action == "truncate":
        return text[: draw(st.integers(0, len(text)))]
    if action == "delete":
        return "".join(lines[:n] + lines[n + 1 :])
    if action == "garbage":
        junk = draw(st.one_of(st.sampled_from(GARBAGE), st.text(max_size=20)))
        return "".join([*lines[:n], junk + "\n", *lines[n:]])
    line = lines[n]
    if action == "value" and ":" in line:
        key = line.split(":", 1)[0]
        lines[n] = f"{key}: {draw(st.sampled_from(VALUES))}\n"
    else:
        words = re.findall(r"[a-z_]{3,}", line)
        if words:
            word = draw(st.sampled_from(words))
            lines[n] = line.replace(word, word[:-1] + draw(st.sampled_from("qxz_")), 1)
    return "".join(lines)


@pytest.fixture(scope="module")
def scratch_rules(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    yield Path(shutil.copytree(RULES_DIR, tmp_path_factory.mktemp("rules") / "rules"))


def _loads_or_names_line(scratch: Path, file: str, text: str) -> None:
    target = scratch / file
    original = target.read_text(encoding="utf-8")
    target.write_text(text, encoding="utf-8", errors="surrogatepass")
    try:
        load_sources(scratch) if file == "sources.yaml" else load_rulebook(scratch)
    except RulebookError as exc:
        assert re.search(rf"{re.escape(file)}:\d+", str(exc)), str(exc)
    finally:
        target.write_text(original, encoding="utf-8")


RULE_TEXTS = {name: (RULES_DIR / name).read_text(encoding="utf-8") for name in RULE_FILES}


@settings(PROFILE, max_examples=150)
@given(
    st.sampled_from(sorted(RULE_TEXTS)).flatmap(
        lambda name: st.tuples(st.just(name), mutated_rule_text(RULE_TEXTS[name]))
    )
)
def test_mutated_rule_file_loads_or_names_file_and_line(
    scratch_rules: Path, edit: tuple[str, str]
) -> None:
    _case("rule file")
    _loads_or_names_line(scratch_rules, *edit)


@settings(PROFILE, max_examples=250)
@given(mutated_rule_text((RULES_DIR / "sources.yaml").read_text(encoding="utf-8")))
def test_mutated_sources_file_loads_or_names_file_and_line(scratch_rules: Path, text: str) -> None:
    _case("sources file")
    _loads_or_names_line(scratch_rules, "sources.yaml", text)


# ---- CSV populations ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def population(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[list[str]]]:
    customers = [
        parse_customer(customer_data(profile={"customer_id": f"c-{n}"}, health_history=[60.0]))
        for n in range(3)
    ]
    path = tmp_path_factory.mktemp("population") / "pop.csv"
    write_customers_csv(customers, path)
    with path.open(encoding="utf-8", newline="") as handle:
        return path, list(csv.reader(handle))


@settings(PROFILE, max_examples=1500)
@given(
    row=st.integers(1, 3),
    column=st.integers(0, 200),
    cell=st.one_of(st.text(max_size=20), st.sampled_from(VALUES + GARBAGE), st.just("")),
)
def test_csv_cell_reads_whole_or_names_line_and_field(
    population: tuple[Path, list[list[str]]], row: int, column: int, cell: str
) -> None:
    _case("csv cell")
    path, rows = population
    grid = [list(r) for r in rows]
    column %= len(grid[0])
    grid[row][column] = cell
    target = path.with_name("mutated.csv")
    buffer = io.StringIO()
    csv.writer(buffer).writerows(grid)
    target.write_text(buffer.getvalue(), encoding="utf-8", errors="surrogatepass")
    try:
        customers = read_customers_csv(target)
    except InvalidInput as exc:
        field = grid[0][column]
        parent = field.split(".")[0]
        prefix = f"{target}:{row + 1}: "
        assert str(exc).startswith(prefix), str(exc)
        assert field in str(exc) or parent in str(exc), str(exc)
        return
    assert len(customers) == 3


# ---- against the real workflow: one worker for the whole property -------------------------------

UPDATE_TIMEOUT = 60  # seconds; a handler that fails its workflow task never answers
WORKFLOW_CASES = {"starts": 20, "signals": 30, "updates": 20}


def _collect(strategy: st.SearchStrategy[Any], n: int) -> list[Any]:
    """`n` generated examples, drawn the same way every run (the workflow part is async, and
    hypothesis runs only synchronous tests)."""
    found: list[Any] = []

    @settings(PROFILE, max_examples=n * 3)
    @given(strategy)
    def draw(example: Any) -> None:
        if len(found) < n:
            found.append(example)

    draw()
    return found


def _as_sent(raw: Any) -> Any:
    """What the worker decodes: JSON through the pydantic converter (NaN and inf become null)."""
    return json.loads(to_json(raw))


def _refused_request(document: dict[str, Any]) -> str | None:
    try:
        JourneyRequest.model_validate(_as_sent(document))
    except ValidationError as exc:
        return describe_validation_error(exc)
    return None


def _refused_event(raw: Any) -> bool:
    try:
        parse_event(_as_sent(raw))
    except InvalidInput:
        return True
    return False


bad_requests = st.one_of(mutations(VALID_REQUEST).map(lambda m: m[0]), json_objects).filter(
    lambda document: _refused_request(document) is not None
)
bad_events = st.one_of(
    st.sampled_from(VALID_EVENTS).flatmap(mutations).map(lambda m: m[0]), json_values
).filter(_refused_event)
bad_updates = st.tuples(
    st.sampled_from(["pause", "cancel", "escalate"]),
    st.one_of(json_values, st.fixed_dictionaries({"reason": json_values})),
)


@pytest.mark.database
async def test_workflow_refuses_generated_bad_input_and_keeps_working(world: JourneyWorld) -> None:
    requests = _collect(bad_requests, WORKFLOW_CASES["starts"])
    for n, document in enumerate(requests):
        _case("workflow start")
        handle = await world.client.start_workflow(
            WORKFLOW_TYPE, document, id=f"retention-bad-{n}", task_queue=world.task_queue
        )
        with pytest.raises(WorkflowFailureError) as failed:
            await handle.result()
        cause = failed.value.cause
        assert isinstance(cause, ApplicationError) and cause.type == "InvalidInput"
        assert str(_refused_request(document)) in cause.message

    handle = await start(world, critical_customer())  # the worker still runs a good journey
    await until_planned(world, handle)
    events = _collect(bad_events, WORKFLOW_CASES["signals"])
    for raw in events:
        _case("workflow signal")
        await handle.signal("customer_event", raw)
    for name, raw in _collect(bad_updates, WORKFLOW_CASES["updates"]):
        _case("workflow update")
        await _refused_or_answered(handle, name, raw)

    state = await until(world, handle, lambda s: s.events.received >= len(events))
    assert state.events.rejected == len(events) and not state.events.tallies
    assert all(not e.accepted and e.reason for e in state.events.recent)
    if state.outcome is None:
        await end_journey(handle)
    _assert_rows_belong_to(world.engine, handle.id)


async def _refused_or_answered(handle: WorkflowHandle, name: str, raw: Any) -> None:
    """A bad argument is refused with a reason; a good one (e.g. a pause) is answered."""
    try:
        result = await asyncio.wait_for(
            handle.execute_update(name, raw, result_type=CommandResult), UPDATE_TIMEOUT
        )
    except WorkflowUpdateFailedError as exc:
        assert str(exc.cause), f"{name} refused without a reason"
        return
    assert result.message
    if name == "pause":
        await handle.execute_update("resume", ResumeRequest(), result_type=CommandResult)


def _assert_rows_belong_to(engine: Engine, workflow_id: str) -> None:
    """No half-written rows: every row that names a journey names the one that started."""
    with session(engine) as db:
        started = set(db.exec(select(JourneyRow.journey_key)).all())
        for table in SQLModel.metadata.sorted_tables:
            for column in ("journey_key", "journey_id", "workflow_id"):
                if column not in table.c:
                    continue
                values = {v for v in db.exec(select(table.c[column]).distinct()).all() if v}
                if column == "journey_key":
                    assert values <= started, (table.name, values - started)
                else:
                    assert values <= {workflow_id}, (table.name, values)
    assert started and all(key.startswith(f"{workflow_id}/") for key in started)


# ---- the database: bad customers never leave partial rows ----------------------------------------

nasty_text = st.text(min_size=1, max_size=40)


@st.composite
def stored_customers(draw: st.DrawFn) -> dict[str, Any]:
    """A snapshot a CSV or JSON file may carry: any unicode in the free-text fields."""
    return customer_data(
        profile={
            "name": draw(nasty_text),
            "company": draw(nasty_text),
            "assigned_csm": draw(st.none() | nasty_text),
            "plan": draw(nasty_text),
        },
    )


@pytest.mark.database
def test_saved_customers_load_back_whole_or_not_at_all(engine: Engine) -> None:
    @settings(PROFILE, max_examples=100)
    @given(stored_customers())
    def save(document: dict[str, Any]) -> None:
        _case("customer saved")
        snapshot = parse_customer(document)
        try:
            save_customer(engine, snapshot)
        except RetentionError:
            assert _customer_rows(engine, snapshot.customer_id) == 0
            return
        assert load_customer(engine, snapshot.customer_id) == snapshot

    save()


def _invalid_customer(document: Any) -> bool:
    try:
        parse_customer(document)
    except InvalidInput:
        return True
    return False


def _customer_rows(engine: Engine, customer_id: str) -> int:
    with session(engine) as db:
        return len(db.exec(select(CustomerRow).where(CustomerRow.customer_id == customer_id)).all())


def test_customers_import_is_all_or_nothing(cli_database: str, tmp_path: Path) -> None:
    @settings(PROFILE, max_examples=60)
    @given(
        st.lists(
            st.one_of(stored_customers(), mutations(customer_data()).map(lambda m: m[0])),
            min_size=1,
            max_size=4,
        )
    )
    def import_files(documents: list[dict[str, Any]]) -> None:
        _case("customers import")
        files, bad = [], []
        for n, document in enumerate(map(copy.deepcopy, documents)):
            if isinstance(document.get("profile"), dict):
                document["profile"]["customer_id"] = f"imp-{n}"
            files.append(tmp_path / f"customer-{n}.json")
            files[-1].write_text(json.dumps(document), encoding="utf-8")
            if _invalid_customer(json.loads(json.dumps(document))):
                bad.append(files[-1])
        result = CliRunner().invoke(starter.app, ["customers", "import", *map(str, files)])
        engine = make_engine(cli_database)
        try:
            with session(engine) as db:
                stored = len(db.exec(select(CustomerRow)).all())
                db.exec(delete(CustomerRow))  # type: ignore[call-overload]
                db.commit()
        finally:
            engine.dispose()
        if bad:
            assert result.exit_code == 2 and str(bad[0]) in result.output, result.output
            assert stored == 0
        else:
            assert result.exit_code == 0, result.output
            assert stored == len(files)

    import_files()


# ---- what the properties found, pinned ---------------------------------------------------------


@pytest.mark.database
async def test_update_with_a_null_argument_is_refused_not_stuck(world: JourneyWorld) -> None:
    handle = await start(world, critical_customer())
    await until_planned(world, handle)
    for name in ("pause", "resume", "cancel", "escalate"):
        with pytest.raises(WorkflowUpdateFailedError) as refused:
            await asyncio.wait_for(handle.execute_update(name, None), UPDATE_TIMEOUT)
        assert "Request object" in str(refused.value.cause)
    await end_journey(handle)


def test_control_character_in_a_rule_file_names_line_and_column(rules_copy: Path) -> None:
    (rules_copy / "kpis.yaml").write_text("kpis:\n  save_rate: \x08\n", encoding="utf-8")
    with pytest.raises(RulebookError, match=r"kpis\.yaml:2:14: YAML syntax error"):
        load_rulebook(rules_copy)


def test_empty_rule_file_names_its_first_line(rules_copy: Path) -> None:
    (rules_copy / "sources.yaml").write_text("# nothing yet\n", encoding="utf-8")
    with pytest.raises(RulebookError, match=r"sources\.yaml:1:1: \(file\)"):
        load_sources(rules_copy)


def test_csv_refusal_names_the_line_a_multiline_record_starts_on(
    population: tuple[Path, list[list[str]]], tmp_path: Path
) -> None:
    path, rows = population
    grid = [list(r) for r in rows]
    grid[1][0] = "two\nlines"  # the record on line 2 now ends on line 3
    target = tmp_path / "multiline.csv"
    with target.open("w", encoding="utf-8", newline="") as handle:
        csv.writer(handle).writerows(grid)
    with pytest.raises(InvalidInput, match=rf"^{re.escape(str(target))}:2: profile\.customer_id"):
        read_customers_csv(target)


# ---- the total -------------------------------------------------------------------------------

PROPERTIES = 15  # ten pure properties, three against the workflow, two on the database


def test_enough_cases() -> None:
    """Runs last in this file; meaningful only when every property above ran."""
    if len(CASES) < PROPERTIES:
        pytest.skip(f"only {len(CASES)} of {PROPERTIES} properties ran")
    print(f"generated cases: {sum(CASES.values())} {dict(CASES)}")
    assert sum(CASES.values()) >= MIN_CASES
