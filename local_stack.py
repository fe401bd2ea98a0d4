"""`make run`: the whole service on this machine, with sample journeys to watch.

Starts the Temporal dev server (unless the connection settings name a server elsewhere, or one
already listens), the worker, imports the sample customers, starts a journey for each one that
has none yet, plays the demo events into them and shows a live table until Ctrl-C, which stops
every child process.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
from contextlib import ExitStack
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from rich.console import Console, Group
from rich.live import Live
from rich.table import Table
from rich.text import Text
from temporalio.client import Client

from retention.customer import CustomerSnapshot
from retention.journey_state import JourneyOptions, JourneyState, journey_id
from retention.population import read_customers
from retention.runtime.connection import TemporalTarget, temporal_target
from retention.runtime.devserver import port_open, start_dev_server, stop
from retention.runtime.operations import (
    JourneyNotFound,
    TemporalUnreachable,
    journey_state,
    start_journey,
)
from retention.runtime.settings import ROOT, Settings, get_settings
from retention.runtime.temporal import connect
from retention.store.db import make_engine
from retention.store.records import save_customer

EXAMPLES = ROOT / "examples"
VAR = ROOT / "var"
console = Console()


def load_samples() -> list[CustomerSnapshot]:
    return read_customers(EXAMPLES / "customers")


def start_children(settings: Settings, stack: ExitStack) -> None:
    """The dev server (when the service is to use one on this machine) and the worker."""
    VAR.mkdir(exist_ok=True)
    start_temporal(settings, stack)
    log = stack.enter_context((VAR / "worker.log").open("ab"))
    worker = subprocess.Popen(
        [sys.executable, str(ROOT / "worker.py")], stdout=log, stderr=subprocess.STDOUT,
        cwd=ROOT, env=os.environ.copy(),
    )  # fmt: skip
    stack.callback(stop, worker)
    start_ingest(settings, stack)


# The dev server listens on this host only and speaks plain text (retention.runtime.devserver).
DEV_SERVER_HOSTS = ("127.0.0.1", "localhost")


def start_temporal(settings: Settings, stack: ExitStack, state: Path = VAR) -> TemporalTarget:
    """The server the worker and the CLI will connect to, as they resolve it
    (retention.runtime.connection). A dev server is started only where one could serve them:
    a plain-text address on this machine with nothing listening; any other is used as it is.
    Its UI serves at the port RETENTION_UI_URL names, where the printed links point."""
    target = temporal_target(settings)
    port = dev_server_port(target)
    if port is None or port_open(port):
        console.print(f"Using the Temporal server at {target.describe()}")
    else:
        console.print(f"Starting Temporal dev server (state in {state / 'temporal.db'}) ...")
        ui_port = urlsplit(settings.ui_url).port or 8233
        server = start_dev_server(state / "temporal.db", port, ui_port, state / "temporal.log")
        stack.callback(stop, server)
    return target


def dev_server_port(target: TemporalTarget) -> int | None:
    """The port a dev server of ours would serve `target` on; None when it could not (another
    host, TLS or an API key: a real cluster)."""
    host, _, port = target.address.rpartition(":")
    if host not in DEV_SERVER_HOSTS or target.tls or target.api_key or not port.isdigit():
        return None
    return int(port)


def start_ingest(settings: Settings, stack: ExitStack) -> None:
    """The ingest service (`python -m retention.ingest`), webhooks in beside the worker."""
    log = stack.enter_context((VAR / "ingest.log").open("ab"))
    service = subprocess.Popen(
        [sys.executable, "-m", "retention.ingest"], stdout=log, stderr=subprocess.STDOUT,
        cwd=ROOT, env=os.environ.copy(),
    )  # fmt: skip
    stack.callback(stop, service)
    url = f"http://{settings.ingest_host}:{settings.ingest_port}"
    console.print(
        f"Ingest service: POST {url}/events/<source>, OpenAPI at {url}/docs (log: var/ingest.log;"
        " a source refuses every webhook until RETENTION_INGEST_SECRET_<SOURCE> is set)"
    )


async def start_samples(
    client: Client, customers: list[CustomerSnapshot], scale: float
) -> list[str]:
    """Start a journey for each sample customer that has none; returns those started now."""
    started = []
    for customer in customers:
        try:
            await journey_state(client, customer.customer_id)
            continue  # a journey from an earlier `make run` survives: show it, do not restart
        except JourneyNotFound:
            pass
        await start_journey(
            client,
            None,
            customer.customer_id,
            JourneyOptions(time_scale=scale),
            known_customer=customer,
        )
        started.append(customer.customer_id)
    return started


async def play_demo_events(client: Client, started: list[str], scale: float) -> None:
    """Send examples/demo_events.json into the journeys started now, at their journey hour."""
    began = datetime.now(UTC)
    plan = sorted(
        (e for e in _demo_events() if e["customer_id"] in started), key=lambda e: e["after_hours"]
    )
    for item in plan:
        due = began + timedelta(hours=item["after_hours"] / scale)
        await asyncio.sleep(max(0.0, (due - datetime.now(UTC)).total_seconds()))
        # sent as upstream systems send them: raw, so the journey's own validation is on show
        handle = client.get_workflow_handle(journey_id(item["customer_id"]))
        await handle.signal("customer_event", item["event"])


def _demo_events() -> list[dict[str, Any]]:
    """The demo script, with `every_hours` ... `until_hours` entries expanded (regular logins)."""
    events = []
    for item in json.loads((EXAMPLES / "demo_events.json").read_text()):
        hours = item["after_hours"]
        while True:
            events.append({**item, "after_hours": hours})
            hours += item.get("every_hours", 0)
            if not item.get("every_hours") or hours > item["until_hours"]:
                break
    return events


def journey_table(states: list[JourneyState | str], settings: Settings) -> Group:
    table = Table(title="Retention journeys", expand=True)
    for column in ("customer", "risk tier", "strategy", "stage", "steps", "next step", "outcome"):
        table.add_column(column)
    for state in states:
        if isinstance(state, str):
            table.add_row(state, "", "", "starting", "", "", "")
            continue
        table.add_row(*_row(state))
    footer = Text(
        f'Temporal UI: {settings.ui_url}   ·   filter e.g. RiskTier="critical"   ·   '
        f"time scale {settings.demo_time_scale:g}x   ·   Ctrl-C stops everything",
        style="dim",
    )
    return Group(table, footer)


def _row(s: JourneyState) -> list[str]:
    done = sum(step.status == "done" for step in s.steps)
    nxt = s.next_step()
    next_text = f"{nxt.step.action} ({nxt.step.channel})" if nxt else "-"
    outcome = f"{s.outcome}" if s.outcome else ""
    tier_style = {"critical": "bold red", "high": "red", "medium": "yellow"}.get(s.risk_tier or "")
    tier = f"[{tier_style}]{s.risk_tier}[/]" if tier_style else (s.risk_tier or "-")
    return [
        f"{s.customer_id} [magenta](holdout)[/]" if s.holdout else s.customer_id,
        tier,
        s.strategy or "-",
        s.stage,
        f"{done}/{len(s.steps)}",
        next_text,
        outcome,
    ]


async def snapshot_states(client: Client, ids: list[str]) -> list[JourneyState | str]:
    states: list[JourneyState | str] = []
    for customer_id in ids:
        try:
            states.append(await journey_state(client, customer_id))
        except Exception:  # noqa: BLE001 - a journey still starting has no state to show yet
            states.append(customer_id)
    return states


async def watch(client: Client, ids: list[str], settings: Settings) -> None:
    with Live(console=console, refresh_per_second=1) as live:
        while True:
            live.update(journey_table(await snapshot_states(client, ids), settings))
            await asyncio.sleep(2)


async def serve(settings: Settings) -> None:
    customers = load_samples()
    engine = make_engine(settings.database_url)
    for customer in customers:
        save_customer(engine, customer)
    client = await _connect_with_retry(settings)
    started = await start_samples(client, customers, settings.demo_time_scale)
    console.print(
        f"{len(started)} journeys started, {len(customers) - len(started)} resumed from var/. "
        f"Temporal UI: {settings.ui_url}"
    )
    events = asyncio.create_task(play_demo_events(client, started, settings.demo_time_scale))
    try:
        await watch(client, [c.customer_id for c in customers], settings)
    finally:
        events.cancel()


async def _connect_with_retry(settings: Settings, attempts: int = 30) -> Client:
    """The server takes a few seconds to serve after it listens."""
    for _ in range(attempts - 1):
        try:
            return await connect(settings)
        except TemporalUnreachable:
            await asyncio.sleep(1)
    return await connect(settings)


def _interrupt(_signum: int, _frame: Any) -> None:
    raise KeyboardInterrupt  # SIGTERM stops the children as cleanly as Ctrl-C


def main() -> None:
    signal.signal(signal.SIGTERM, _interrupt)
    settings = get_settings()
    with ExitStack() as stack:
        start_children(settings, stack)
        try:
            asyncio.run(serve(settings))
        except KeyboardInterrupt:
            console.print("\nStopping the worker and the Temporal server ...")
    console.print("Stopped. Journeys and history are kept in var/; `make run` resumes them.")


if __name__ == "__main__":
    main()
