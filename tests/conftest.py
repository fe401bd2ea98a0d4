"""Shared fixtures."""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any
from uuid import uuid4

import pytest
from areas import AREAS, TEST_AREAS
from sqlalchemy import Engine, create_engine, make_url, text

from retention.runtime.settings import get_settings

# The rest is imported where a fixture needs it: pytest-xdist's controller process loads this
# file too, only for its hooks, and worker.py alone (XGBoost, scikit-learn, SciPy) takes seconds
# of `make check`'s start before any worker can begin.
if TYPE_CHECKING:
    from fake_crm import FakeHubSpot, FakeSalesforce
    from fake_providers import FakeSendGrid, FakeTwilio
    from fake_slack import FakeSlack
    from temporalio.client import Client, WorkflowHandle
    from temporalio.testing import WorkflowEnvironment

    from retention.rulebook.schema import ScoringFile
    from retention.scoring.health import HealthPolicy
    from retention.scoring.risk import RiskPolicy

_DATABASES = ["sqlite"] + (["postgresql"] if os.environ.get("RETENTION_TEST_DATABASE_URL") else [])


def pytest_configure(config: pytest.Config) -> None:
    """One marker per area (tests/areas.py), so `pytest -m delivery` runs delivery's tests."""
    for area, covers in AREAS.items():
        config.addinivalue_line("markers", f"{area}: area {area}: {covers} (tests/areas.py)")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """A test that runs workflows on the time-skipping server is a `temporal` test: `make check`
    leaves those to `make test` (docs/testing.md). Each test carries its file's area markers."""
    for item in items:
        if "time_skipping_env" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.temporal)
        for area in TEST_AREAS.get(item.path.name, ()):
            item.add_marker(area)


@dataclass(frozen=True)
class Database:
    url: str
    connect_args: dict[str, Any] = field(default_factory=dict)


@pytest.fixture(params=_DATABASES)
def fresh_database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Database]:
    """Where a fresh database lives: a SQLite file, or a PostgreSQL schema of its own."""
    if request.param == "sqlite":
        yield Database(f"sqlite:///{tmp_path / 'retention.db'}")
        return
    url = os.environ["RETENTION_TEST_DATABASE_URL"]
    schema = f"t_{uuid4().hex}"
    admin = create_engine(url)
    with admin.begin() as connection:
        connection.execute(text(f'CREATE SCHEMA "{schema}"'))
    try:
        yield Database(url, {"options": f"-csearch_path={schema}"})
    finally:
        with admin.begin() as connection:
            connection.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An empty SQLite database at the newest schema revision, made by `make_engine` once per
    test process: creating the schema takes a few tenths of a second, copying the file a
    millisecond, and hundreds of tests start from an empty database."""
    from retention.store.db import make_engine

    path = tmp_path_factory.mktemp("schema-template") / "retention.db"
    make_engine(f"sqlite:///{path}").dispose()  # the last connection closed folds the WAL in
    assert not path.with_name("retention.db-wal").exists(), "the template's WAL was not folded in"
    return path


@pytest.fixture
def engine(fresh_database: Database, sqlite_template: Path) -> Iterator[Engine]:
    """A fresh, empty database at the newest schema revision: for SQLite a copy of the
    template, which `make_engine` finds at the newest revision and leaves as it is."""
    from retention.store.db import make_engine

    database = make_url(fresh_database.url).database
    if make_url(fresh_database.url).get_backend_name() == "sqlite" and database:
        shutil.copyfile(sqlite_template, database)
    engine = make_engine(fresh_database.url, fresh_database.connect_args)
    yield engine
    engine.dispose()


@pytest.fixture
def bare_engine(fresh_database: Database) -> Iterator[Engine]:
    """A fresh database with nothing in it, not even the schema."""
    bare = create_engine(fresh_database.url, connect_args=fresh_database.connect_args)
    yield bare
    bare.dispose()


# ---- Temporal: one time-skipping server for the session, a fresh worker per test ----------

RULES_DIR = Path(__file__).resolve().parent.parent / "rules"
HISTORIES_DIR = Path(__file__).resolve().parent / "histories"


@pytest.fixture
def rules_copy(tmp_path: Path) -> Path:
    """A scratch copy of the shipped rule set, for tests that break it on purpose."""
    return Path(shutil.copytree(RULES_DIR, tmp_path / "rules"))


@pytest.fixture(scope="session")
def scoring() -> ScoringFile:
    """The shipped rules/scoring.yaml, loaded as the worker loads it."""
    from retention.rulebook.loader import load_yaml_model
    from retention.rulebook.schema import ScoringFile

    return load_yaml_model(RULES_DIR / "scoring.yaml", ScoringFile)


@pytest.fixture(scope="session")
def health_policy(scoring: ScoringFile) -> HealthPolicy:
    return scoring.health


@pytest.fixture(scope="session")
def risk_policy(scoring: ScoringFile) -> RiskPolicy:
    return scoring.risk


@pytest.fixture(scope="session")
async def time_skipping_env() -> AsyncIterator[WorkflowEnvironment]:
    from retention.runtime.devserver import start_time_skipping

    env = await start_time_skipping()
    yield env
    await env.shutdown()


@dataclass
class JourneyWorld:
    """A running worker and what a test needs to drive and inspect its journeys."""

    client: Client
    env: WorkflowEnvironment
    task_queue: str
    engine: Engine
    outbox_dir: Path
    journeys: list[WorkflowHandle[Any, Any]] = field(default_factory=list)
    workflows: list[WorkflowHandle[Any, Any]] = field(default_factory=list)  # retrains, purges

    async def save_histories(self, name: str | None) -> None:
        await save_histories(self.client, self.journeys + self.workflows, name)


@pytest.fixture
def history_name(request: pytest.FixtureRequest) -> str | None:
    """What this test's workflow histories are saved as in tests/histories/ when
    RETENTION_RECORD_HISTORIES=1 (`make histories`); None when not recording. One set per test:
    a test run on both databases records its SQLite run only."""
    callspec = getattr(request.node, "callspec", None)
    database = callspec.params.get("fresh_database", "sqlite") if callspec else "sqlite"
    if not os.environ.get("RETENTION_RECORD_HISTORIES") or database != "sqlite":
        return None
    return re.sub(r"\W+", "-", request.node.name).strip("-")


async def save_histories(
    client: Client, handles: Sequence[WorkflowHandle[Any, Any]], name: str | None
) -> None:
    """Write the first and, after continue-as-new, the last run of each workflow to
    tests/histories/{name}-{n}.json for the replay test; nothing when `name` is None."""
    if name is None:
        return
    runs: dict[str, str] = {}
    for handle in handles:
        latest = await client.get_workflow_handle(handle.id).describe()
        for run_id in (handle.first_execution_run_id or handle.result_run_id, latest.run_id):
            runs[str(run_id)] = handle.id
    for n, (run_id, workflow_id) in enumerate(runs.items(), start=1):
        history = await client.get_workflow_handle(workflow_id, run_id=run_id).fetch_history()
        (HISTORIES_DIR / f"{name}-{n}.json").write_text(history.to_json())


@pytest.fixture
def journey_activities(engine: Engine, tmp_path: Path) -> list[Callable[..., Any]]:
    """The real activities; a test module overrides this fixture to swap one."""
    from worker import build_activities

    return build_activities(engine, RULES_DIR, tmp_path / "outbox")


@pytest.fixture
async def world(
    time_skipping_env: WorkflowEnvironment,
    engine: Engine,
    tmp_path: Path,
    journey_activities: list[Callable[..., Any]],
    history_name: str | None,
) -> AsyncIterator[JourneyWorld]:
    """A worker with real activities. RETENTION_RECORD_HISTORIES=1 saves the histories of every
    journey and other workflow the test kept in the world."""
    from worker import running_worker

    async with running_worker(time_skipping_env.client, journey_activities) as task_queue:
        world = JourneyWorld(
            time_skipping_env.client, time_skipping_env, task_queue, engine, tmp_path / "outbox"
        )
        yield world
        await world.save_histories(history_name)


# ---- Fake SendGrid and Twilio on 127.0.0.1 ------------------------------------------------


@pytest.fixture
def fake_sendgrid() -> Iterator[FakeSendGrid]:
    from fake_providers import FakeSendGrid

    fake = FakeSendGrid()
    fake.start()
    yield fake
    fake.stop()


@pytest.fixture
def fake_twilio() -> Iterator[FakeTwilio]:
    from fake_providers import FakeTwilio

    fake = FakeTwilio()
    fake.start()
    yield fake
    fake.stop()


@pytest.fixture
def fake_slack() -> Iterator[FakeSlack]:
    from fake_slack import FakeSlack

    fake = FakeSlack().start()
    yield fake
    fake.stop()


# ---- Fake HubSpot and Salesforce (tests/fake_crm.py) ------------------------------------------


@pytest.fixture
def hubspot() -> Iterator[FakeHubSpot]:
    from fake_crm import FakeHubSpot

    fake = FakeHubSpot().start()
    yield fake
    fake.stop()


@pytest.fixture
def salesforce(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeSalesforce]:
    """Over TLS with a CA of its own, which requests trusts through REQUESTS_CA_BUNDLE."""
    from fake_crm import FakeSalesforce

    fake = FakeSalesforce(tmp_path / "pki").start()
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(fake.ca))
    yield fake
    fake.stop()


# ---- the CLI's own database ----------------------------------------------------------------


@pytest.fixture
def cli_database(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A fresh SQLite file as RETENTION_DATABASE_URL, and no settings cached from elsewhere."""
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    monkeypatch.setenv("RETENTION_DATABASE_URL", url)
    get_settings.cache_clear()
    yield url
    get_settings.cache_clear()


# ---- headless Chromium, for the HTML report and its pages --------------------------------

CHROMIUM, CHROMEDRIVER = Path("/usr/bin/chromium"), Path("/usr/bin/chromedriver")
# Without the background-networking flags Chromium reaches for the network, closed here.
CHROMIUM_FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--hide-scrollbars",
]  # fmt: skip


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    missing = [str(p) for p in (CHROMIUM, CHROMEDRIVER) if not p.exists()]
    assert not missing, f"{missing} missing: `make test` installs Debian chromium, chromium-driver"
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}")
    options.add_argument("--window-size=1400,1000")
    driver = webdriver.Chrome(options=options, service=Service(executable_path=str(CHROMEDRIVER)))
    try:
        yield driver
    finally:
        driver.quit()


@pytest.fixture
def temporal_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    """No Temporal setting from the machine (`TEMPORAL_*`, `RETENTION_TEMPORAL_*`, a
    temporal.toml): each test sets its own."""
    for name in list(os.environ):
        if name.startswith(("TEMPORAL_", "RETENTION_TEMPORAL_")):
            monkeypatch.delenv(name)
    monkeypatch.setenv("TEMPORAL_CONFIG_FILE", "/nonexistent/temporal.toml")
    return monkeypatch
