"""`make run` (local_stack.py) starts a dev server only where the worker and the CLI it starts
will connect: the address they resolve from TEMPORAL_*, a temporal.toml profile or
RETENTION_TEMPORAL_*, when that is a plain-text address on this machine with nothing on it."""

from __future__ import annotations

from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pytest

import local_stack
from retention.runtime.devserver import free_port, port_open
from retention.runtime.settings import Settings


@pytest.fixture
def here(temporal_env: pytest.MonkeyPatch, tmp_path: Path) -> pytest.MonkeyPatch:
    """No Temporal setting from the machine, no .env."""
    temporal_env.chdir(tmp_path)
    return temporal_env


def forbid_dev_server(monkeypatch: pytest.MonkeyPatch) -> None:
    def started(*_args: Any, **_kwargs: Any) -> None:
        raise AssertionError("make run started a dev server")

    monkeypatch.setattr(local_stack, "start_dev_server", started)


def cluster_profile(folder: Path) -> Path:
    profile = folder / "temporal.toml"
    profile.write_text('[profile.prod]\naddress = "temporal.prod.internal:7233"\n')
    return profile


@pytest.mark.parametrize(
    ("given", "address"),
    [
        ({"TEMPORAL_ADDRESS": "10.1.2.3:7233"}, "10.1.2.3:7233"),
        ({"RETENTION_TEMPORAL_ADDRESS": "10.1.2.3:7233"}, "10.1.2.3:7233"),
        (
            {"TEMPORAL_PROFILE": "prod", "TEMPORAL_CONFIG_FILE": "{profile}"},
            "temporal.prod.internal",
        ),
        (
            {"TEMPORAL_ADDRESS": "127.0.0.1:7233", "TEMPORAL_TLS": "true"},
            "127.0.0.1:7233 (namespace default, TLS)",
        ),
        (
            {"TEMPORAL_ADDRESS": "localhost:7233", "TEMPORAL_API_KEY": "tk-local"},
            "localhost:7233 (namespace default, TLS, API key)",
        ),
    ],
    ids=["temporal-address", "retention-address", "profile", "tls-here", "api-key-here"],
)
def test_make_run_uses_a_server_elsewhere_as_it_is_and_starts_no_dev_server(
    here: pytest.MonkeyPatch,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    given: dict[str, str],
    address: str,
) -> None:
    forbid_dev_server(here)
    for name, value in given.items():
        here.setenv(name, value.format(profile=cluster_profile(tmp_path)))

    with ExitStack() as stack:
        local_stack.start_temporal(Settings(), stack, tmp_path)

    said = capsys.readouterr().out
    assert f"Using the Temporal server at {address}" in said
    assert "tk-local" not in said


@pytest.mark.temporal
def test_make_run_starts_a_dev_server_at_the_local_address_the_worker_will_use(
    here: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    port = free_port()
    here.setenv("TEMPORAL_ADDRESS", f"127.0.0.1:{port}")
    here.setenv("RETENTION_UI_URL", f"http://127.0.0.1:{free_port()}")
    with ExitStack() as stack:
        local_stack.start_temporal(Settings(), stack, tmp_path)
        assert port_open(port) and (tmp_path / "temporal.db").exists()
        # a second `make run` beside it uses that one rather than starting another
        forbid_dev_server(here)
        local_stack.start_temporal(Settings(), stack, tmp_path)
        assert f"Using the Temporal server at 127.0.0.1:{port}" in capsys.readouterr().out
    assert not port_open(port)  # stopped with the stack, as Ctrl-C stops it
