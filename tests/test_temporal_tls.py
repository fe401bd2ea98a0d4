"""Reaching a Temporal cluster that wants TLS, a client certificate or an API key, through
Temporal's own environment configuration (`TEMPORAL_*`, temporal.toml): nginx terminates TLS in
front of the dev server (tests/tls_proxy.py), as a production cluster's load balancer does."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from factories import customer_data
from google.protobuf.duration_pb2 import Duration
from temporalio.api.workflowservice.v1 import RegisterNamespaceRequest
from temporalio.client import Client
from temporalio.service import RPCError
from tls_proxy import Pki, make_pki, tls_proxy

from retention.errors import InvalidInput, TemporalUnreachable
from retention.runtime.devserver import free_port, start_dev_server, stop
from retention.runtime.settings import Settings
from retention.runtime.temporal import connect, register_search_attributes

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(240)]

ROOT = Path(__file__).resolve().parent.parent
API_KEY = "tk-live-5ecret"
STAGING = "retention-staging"  # a namespace of the cluster's besides `default`
AT_RISK = {
    "profile": {"customer_id": "tls-crit", "company": "Initech"},
    "usage": {"days_since_last_login": 21, "logins_per_week": 1.0, "logins_per_week_prior": 6.0},
    "relationship": {"champion_status": "left", "nps": 3, "executive_engaged": False},
    "financial": {"annual_contract_value": 90_000.0, "payment_delays_90d": 2},
}


@dataclass(frozen=True)
class Cluster:
    """One dev server behind three nginx front doors, and the CA they trust."""

    pki: Pki
    plain: str  # the dev server itself
    tls: str  # server TLS only
    mutual: str  # a client certificate its CA signed
    keyed: str  # server TLS and `authorization: Bearer API_KEY`
    locked: str  # all of it: what the end-to-end test goes through

    def client_pair(self) -> dict[str, str]:
        return {
            "TEMPORAL_TLS_CLIENT_CERT_PATH": str(self.pki.client_cert),
            "TEMPORAL_TLS_CLIENT_KEY_PATH": str(self.pki.client_key),
        }


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    tmp = tmp_path_factory.mktemp("tls")
    pki = make_pki(tmp / "pki")
    port = free_port()
    server = start_dev_server(tmp / "temporal.db", port=port, ui_port=free_port())
    upstream = f"127.0.0.1:{port}"
    try:
        with (
            tls_proxy(tmp / "tls", upstream, pki) as tls,
            tls_proxy(tmp / "mutual", upstream, pki, client_certs=True) as mutual,
            tls_proxy(tmp / "keyed", upstream, pki, api_key=API_KEY) as keyed,
            tls_proxy(tmp / "locked", upstream, pki, client_certs=True, api_key=API_KEY) as locked,
        ):
            yield Cluster(pki, upstream, tls, mutual, keyed, locked)
    finally:
        stop(server)


async def connected(monkeypatch: pytest.MonkeyPatch, env: dict[str, str]) -> str:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    client = await connect(Settings())
    return client.service_client.config.target_host


async def refusal(monkeypatch: pytest.MonkeyPatch, env: dict[str, str]) -> str:
    with pytest.raises((TemporalUnreachable, InvalidInput)) as refused:
        await connected(monkeypatch, env)
    message = str(refused.value)
    assert "\n" not in message and API_KEY not in message and "wrong-key" not in message
    return message


async def test_each_front_door_lets_in_a_process_configured_for_it(
    cluster: Cluster, temporal_env: pytest.MonkeyPatch
) -> None:
    ca = {"TEMPORAL_TLS_SERVER_CA_CERT_PATH": str(cluster.pki.ca)}
    assert await connected(temporal_env, {"TEMPORAL_ADDRESS": cluster.tls, **ca}) == cluster.tls
    mutual = {"TEMPORAL_ADDRESS": cluster.mutual, **ca, **cluster.client_pair()}
    assert await connected(temporal_env, mutual) == cluster.mutual
    keyed = {"TEMPORAL_ADDRESS": cluster.keyed, **ca, "TEMPORAL_API_KEY": API_KEY}
    assert await connected(temporal_env, keyed) == cluster.keyed


@pytest.mark.parametrize(
    ("door", "env", "names"),
    [
        ("tls", {}, "TEMPORAL_TLS=true"),  # plain text to a TLS endpoint
        ("tls", {"ca": "stranger_ca"}, "TEMPORAL_TLS_SERVER_CA_CERT_PATH"),
        ("tls", {"ca": "ca", "TEMPORAL_TLS_SERVER_NAME": "temporal.example"}, "SERVER_NAME"),
        ("tls", {"TEMPORAL_TLS_SERVER_CA_CERT_PATH": "/nonexistent/ca.pem"}, "no file at"),
        ("plain", {"ca": "ca"}, "unset TEMPORAL_TLS"),  # TLS to a plain-text server
        ("mutual", {"ca": "ca"}, "TEMPORAL_TLS_CLIENT_CERT_PATH"),  # no client certificate
        ("mutual", {"ca": "ca", "pair": "stranger"}, "TEMPORAL_TLS_CLIENT_CERT_PATH"),
        ("keyed", {"ca": "ca", "TEMPORAL_API_KEY": "wrong-key"}, "TEMPORAL_API_KEY"),
        ("keyed", {"ca": "ca"}, "TEMPORAL_API_KEY"),  # no key at all
    ],
    ids=[
        "plain-text-to-tls",
        "unknown-ca",
        "wrong-server-name",
        "missing-ca-file",
        "tls-to-plain-text",
        "no-client-certificate",
        "certificate-from-another-ca",
        "wrong-api-key",
        "no-api-key",
    ],
)
async def test_a_refused_connection_is_one_line_naming_the_setting_to_fix(
    cluster: Cluster,
    temporal_env: pytest.MonkeyPatch,
    door: str,
    env: dict[str, str],
    names: str,
) -> None:
    settings = {"TEMPORAL_ADDRESS": getattr(cluster, door), **env}
    if ca := settings.pop("ca", None):
        settings["TEMPORAL_TLS_SERVER_CA_CERT_PATH"] = str(getattr(cluster.pki, ca))
    if settings.pop("pair", None):
        settings["TEMPORAL_TLS_CLIENT_CERT_PATH"] = str(cluster.pki.stranger_cert)
        settings["TEMPORAL_TLS_CLIENT_KEY_PATH"] = str(cluster.pki.stranger_key)
    if door == "plain":
        settings["TEMPORAL_TLS"] = "true"

    assert names in await refusal(temporal_env, settings)


# The settings a half or mismatched client pair is told to fix: both, in each line.
PAIR = ("TEMPORAL_TLS_CLIENT_CERT_PATH (or _DATA)", "TEMPORAL_TLS_CLIENT_KEY_PATH (or _DATA)")


@pytest.mark.parametrize(
    ("pair", "says"),
    [
        ({"CERT_PATH": "client_cert", "KEY_PATH": "stranger_key"}, "is not the certificate's own"),
        ({"CERT_DATA": "client_cert", "KEY_DATA": "stranger_key"}, "is not the certificate's own"),
        ({"CERT_PATH": "client_cert"}, "_CERT_PATH (or _DATA) is set without"),
        ({"KEY_DATA": "client_key"}, "_KEY_PATH (or _DATA) is set without"),
        ({"CERT_PATH": "client_cert", "KEY_PATH": "client_cert"}, "no private key could be read"),
        ({"CERT_PATH": "client_key", "KEY_PATH": "client_key"}, "no certificate could be read"),
    ],
    ids=[
        "key-of-another-certificate",
        "key-of-another-certificate-as-data",
        "certificate-without-key",
        "key-without-certificate",
        "certificate-as-key",
        "key-as-certificate",
    ],
)
async def test_a_client_certificate_and_key_that_are_not_one_pair_name_both_settings(
    cluster: Cluster, temporal_env: pytest.MonkeyPatch, pair: dict[str, str], says: str
) -> None:
    env = {
        "TEMPORAL_ADDRESS": cluster.mutual,
        "TEMPORAL_TLS_SERVER_CA_CERT_PATH": str(cluster.pki.ca),
    }
    for setting, name in pair.items():
        file: Path = getattr(cluster.pki, name)
        env[f"TEMPORAL_TLS_CLIENT_{setting}"] = (
            file.read_text() if setting.endswith("DATA") else str(file)
        )

    message = await refusal(temporal_env, env)

    assert says in message and all(setting in message for setting in PAIR), message
    assert "make run" not in message and "PRIVATE KEY" not in message


async def test_retention_settings_win_over_the_temporal_profile(
    cluster: Cluster, temporal_env: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    profile = tmp_path / "temporal.toml"
    profile.write_text(
        f'[profile.staging]\naddress = "{cluster.tls}"\nnamespace = "default"\n'
        f'[profile.staging.tls]\nserver_ca_cert_path = "{cluster.pki.ca}"\n'
    )
    env = {"TEMPORAL_CONFIG_FILE": str(profile), "TEMPORAL_PROFILE": "staging"}
    assert await connected(temporal_env, env) == cluster.tls  # the profile, as the CLI reads it

    temporal_env.setenv("RETENTION_TEMPORAL_ADDRESS", cluster.keyed)
    # this service's address wins; the profile's TLS still applies, and the key door refuses
    assert "TEMPORAL_API_KEY" in await refusal(temporal_env, {})


@pytest.fixture(scope="module")
async def staging(cluster: Cluster) -> str:
    """A second namespace on the cluster, with the search attributes a journey needs."""
    client = await Client.connect(cluster.plain)
    retention = Duration(seconds=24 * 3600)
    request = RegisterNamespaceRequest(
        namespace=STAGING, workflow_execution_retention_period=retention
    )
    await client.workflow_service.register_namespace(request)
    for _ in range(100):  # the server takes a moment to know a namespace it registered
        try:
            await register_search_attributes(client, STAGING)
            return STAGING
        except RPCError:
            await asyncio.sleep(0.3)
    raise AssertionError(f"namespace {STAGING} never became usable")


async def test_temporal_variables_win_over_the_profile_and_retention_settings_over_both(
    cluster: Cluster, staging: str, temporal_env: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    profile = tmp_path / "temporal.toml"
    profile.write_text(
        f'[profile.prod]\naddress = "{cluster.keyed}"\nnamespace = "retention-nowhere"\n'
        f'[profile.prod.tls]\nserver_ca_cert_path = "{cluster.pki.ca}"\n'
    )
    temporal_env.setenv("TEMPORAL_CONFIG_FILE", str(profile))
    temporal_env.setenv("TEMPORAL_PROFILE", "prod")
    assert "TEMPORAL_API_KEY" in await refusal(temporal_env, {})  # the profile's keyed door

    temporal_env.setenv("TEMPORAL_ADDRESS", cluster.tls)
    client = await connect(Settings())
    with pytest.raises(RPCError, match="retention-nowhere"):  # still the profile's namespace
        await client.count_workflows()

    temporal_env.setenv("TEMPORAL_NAMESPACE", staging)
    client = await connect(Settings())
    assert client.namespace == staging and (await client.count_workflows()).count >= 0

    temporal_env.setenv("RETENTION_TEMPORAL_NAMESPACE", "default")
    assert (await connect(Settings())).namespace == "default"


def test_a_journey_started_in_the_profiles_namespace_links_to_it_in_temporal_ui(
    cluster: Cluster, staging: str, tmp_path: Path
) -> None:
    profile = tmp_path / "temporal.toml"
    profile.write_text(f'[profile.staging]\naddress = "{cluster.plain}"\nnamespace = "{staging}"\n')
    customer = tmp_path / "initech.json"
    customer.write_text(json.dumps(customer_data(**AT_RISK)), encoding="utf-8")
    env = {
        **machine_env(),
        "TEMPORAL_CONFIG_FILE": str(profile),
        "TEMPORAL_PROFILE": "staging",
        "RETENTION_DATABASE_URL": f"sqlite:///{tmp_path / 'retention.db'}",
        "COLUMNS": "200",
    }

    said = run(env, "start", str(customer))

    assert f"/namespaces/{staging}/workflows/retention-tls-crit" in said


def machine_env() -> dict[str, str]:
    """This machine's environment without its Temporal settings."""
    theirs = ("TEMPORAL_", "RETENTION_TEMPORAL_")
    return {name: value for name, value in os.environ.items() if not name.startswith(theirs)}


def test_a_journey_an_update_and_a_scan_run_through_mutual_tls_and_an_api_key(
    cluster: Cluster, tmp_path: Path
) -> None:
    env = {
        **machine_env(),
        "TEMPORAL_ADDRESS": cluster.locked,
        "TEMPORAL_TLS_SERVER_CA_CERT_PATH": str(cluster.pki.ca),
        **cluster.client_pair(),
        "TEMPORAL_API_KEY": API_KEY,
        "RETENTION_DATABASE_URL": f"sqlite:///{tmp_path / 'retention.db'}",
        "RETENTION_OUTBOX_DIR": str(tmp_path / "outbox"),
        "RETENTION_MODEL_DIR": "baseline",
        "RETENTION_METRICS_ADDRESS": f"127.0.0.1:{free_port()}",
        "RETENTION_TASK_QUEUE": "retention-tls",
        "COLUMNS": "200",
    }
    customer = tmp_path / "initech.json"
    customer.write_text(json.dumps(customer_data(**AT_RISK)), encoding="utf-8")
    log = tmp_path / "worker.log"
    with log.open("wb") as out:
        worker = subprocess.Popen(
            [sys.executable, "worker.py"], cwd=ROOT, env=env, stdout=out, stderr=out
        )
    try:
        _wait_for_worker(worker, log)
        run(env, "customers", "import", str(customer))
        run(env, "start", "--customer-id", "tls-crit")
        assert "paused" in run(env, "pause", "tls-crit", "--reason", "tls check")
        state = json.loads(run(env, "show", "tls-crit", "--json"))
        assert state["paused"] is True and state["strategy"] == "critical_save"
        scan = run(env, "scan", "--now")
        assert "completed: scored 1" in scan
    finally:
        stop(worker)
    text = log.read_text(errors="replace")
    assert f"at {cluster.locked} (namespace default, mutual TLS, API key)" in text
    assert API_KEY not in text


def run(env: dict[str, str], *args: str) -> str:
    done = subprocess.run(
        [sys.executable, "starter.py", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=90,
    )
    assert done.returncode == 0, f"starter.py {' '.join(args)}:\n{done.stderr}"
    assert API_KEY not in done.stdout + done.stderr
    return done.stdout


def _wait_for_worker(worker: subprocess.Popen[bytes], log: Path) -> None:
    for _ in range(300):
        text = log.read_text(errors="replace") if log.exists() else ""
        if worker.poll() is not None:
            raise AssertionError(f"worker.py exited ({worker.returncode}):\n{text}")
        if "worker polling" in text:
            return
        time.sleep(0.2)
    raise AssertionError(f"worker.py never polled:\n{log.read_text(errors='replace')}")
