"""Which Temporal server and namespace a process uses, by the precedence docs/deployment.md
gives ("Connecting to Temporal"), and the Temporal UI links that name the namespace. Nothing
connects here: tests/test_temporal_tls.py goes through the same settings to a real server."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import create_engine

from retention.delivery.alerting import alert_poster_from
from retention.runtime.connection import temporal_namespace, temporal_target
from retention.runtime.settings import Settings

STAGING = "temporal.staging.internal:7233"


@pytest.fixture
def staging(temporal_env: pytest.MonkeyPatch, tmp_path: Path) -> pytest.MonkeyPatch:
    """The `staging` profile of a temporal.toml, chosen as the `temporal` CLI would choose it;
    no RETENTION_ setting and no .env."""
    profile = tmp_path / "temporal.toml"
    profile.write_text(
        f'[profile.staging]\naddress = "{STAGING}"\nnamespace = "retention-staging"\n'
    )
    temporal_env.setenv("TEMPORAL_CONFIG_FILE", str(profile))
    temporal_env.setenv("TEMPORAL_PROFILE", "staging")
    temporal_env.chdir(tmp_path)
    return temporal_env


def test_with_nothing_configured_a_process_uses_the_local_dev_server(
    temporal_env: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    temporal_env.chdir(tmp_path)
    target = temporal_target(Settings())
    assert (target.address, target.namespace) == ("127.0.0.1:7233", "default")


def test_the_profile_names_the_server_and_the_namespace(staging: pytest.MonkeyPatch) -> None:
    target = temporal_target(Settings())
    assert (target.address, target.namespace) == (STAGING, "retention-staging")


def test_temporal_variables_win_over_the_profile(staging: pytest.MonkeyPatch) -> None:
    staging.setenv("TEMPORAL_ADDRESS", "10.1.2.3:7233")
    staging.setenv("TEMPORAL_NAMESPACE", "retention-canary")
    target = temporal_target(Settings())
    assert (target.address, target.namespace) == ("10.1.2.3:7233", "retention-canary")


@pytest.mark.parametrize(
    ("given", "namespace"),
    [
        ({}, "retention-staging"),
        ({"TEMPORAL_NAMESPACE": "retention-canary"}, "retention-canary"),
        ({"RETENTION_TEMPORAL_NAMESPACE": "retention"}, "retention"),
        (
            {"TEMPORAL_NAMESPACE": "retention-canary", "RETENTION_TEMPORAL_NAMESPACE": "retention"},
            "retention",
        ),
        ({"RETENTION_TEMPORAL_NAMESPACE": "default"}, "default"),  # set, even to the default
    ],
    ids=[
        "the-profile",
        "temporal-namespace-over-the-profile",
        "retention-namespace-over-the-profile",
        "retention-namespace-over-temporal-namespace",
        "retention-namespace-set-to-default",
    ],
)
def test_the_namespace_comes_from_the_most_specific_setting(
    staging: pytest.MonkeyPatch, given: dict[str, str], namespace: str
) -> None:
    for name, value in given.items():
        staging.setenv(name, value)
    settings = Settings()
    assert temporal_target(settings).namespace == namespace
    assert temporal_namespace(settings) == namespace  # what Temporal UI links name


def test_the_retention_address_wins_over_temporal_address_and_the_profile(
    staging: pytest.MonkeyPatch,
) -> None:
    staging.setenv("TEMPORAL_ADDRESS", "10.1.2.3:7233")
    staging.setenv("RETENTION_TEMPORAL_ADDRESS", "10.9.9.9:7233")
    assert temporal_target(Settings()).address == "10.9.9.9:7233"
    assert temporal_target(Settings(), address="10.7.7.7:7233").address == "10.7.7.7:7233"


@pytest.mark.parametrize(
    ("given", "namespace"),
    [({}, "retention-staging"), ({"TEMPORAL_NAMESPACE": "retention-canary"}, "retention-canary")],
    ids=["the-profile", "temporal-namespace"],
)
def test_a_slack_alert_links_the_journey_in_the_namespace_the_worker_connects_to(
    staging: pytest.MonkeyPatch, given: dict[str, str], namespace: str
) -> None:
    staging.setenv("RETENTION_SLACK_BOT_TOKEN", "xoxb-links-secret")
    staging.setenv("RETENTION_SLACK_CHANNEL", "C0CSMTEAM1")
    for name, value in given.items():
        staging.setenv(name, value)
    poster = alert_poster_from(Settings(), create_engine("sqlite://"))
    assert poster is not None
    assert poster.journey_url("journey-acme") == (
        f"http://127.0.0.1:8233/namespaces/{namespace}/workflows/journey-acme"
    )
