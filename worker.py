"""Run the Temporal worker: the journeys and their activities on the task queue, scan scoring
and model training on the heavy queue; `--role` picks one part (docs/deployment.md)."""

from __future__ import annotations

import argparse
import asyncio
import concurrent.futures
import logging
import os
import signal
import sys
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from contextlib import ExitStack, asynccontextmanager
from datetime import timedelta
from functools import partial
from pathlib import Path
from typing import Any
from uuid import uuid4

from pydantic import ValidationError
from sqlalchemy import Engine
from temporalio import activity, workflow
from temporalio.client import Client
from temporalio.runtime import Runtime
from temporalio.service import RPCError
from temporalio.worker import Worker

from activities.assess import AssessActivities
from activities.crm import CrmActivities, CrmSyncRequest
from activities.decide import DecideActivities
from activities.deliver import DeliverActivities
from activities.privacy import PrivacyActivities, PurgeRequest
from activities.record import RecordActivities
from activities.rescore import RescoreActivities
from activities.scan import JourneyStarter, ScanActivities
from activities.train import TrainActivities
from retention.crm.sync import CrmSync, sync_from
from retention.delivery.alerting import AlertPoster, alert_poster_from
from retention.delivery.providers import Provider, providers_from
from retention.delivery.send import CAPTURE_ONLY
from retention.errors import InvalidInput, RetentionError
from retention.model.champion import ChampionScorer
from retention.model.retrain import RetrainPolicy
from retention.model.schedule import ensure_retrain_schedule
from retention.model.scorer import load_scorer
from retention.plan import Channel
from retention.rulebook.archive import archive_rule_set
from retention.rulebook.source import RulebookSource
from retention.runtime.connection import temporal_target
from retention.runtime.logs import configure_logging
from retention.runtime.readiness import Readiness, leave, serve_health
from retention.runtime.sandbox import workflow_runner
from retention.runtime.schedules import keep_schedule
from retention.runtime.settings import Settings, get_settings, settings_problem
from retention.runtime.temporal import connect, metrics_runtime
from retention.scan.schedule import keep_scan_schedule
from retention.scoring.assessment import ChurnScorer
from retention.scoring.sentiment import InteractionScorer, vader_score
from retention.scoring.sentiment_model import load_sentiment_scorer
from retention.store.db import make_engine
from retention.store.purge import RetentionPeriods, configured_periods
from workflows.crm_sync import CrmSyncWorkflow
from workflows.data_purge import DataPurge
from workflows.model_retrain import ModelRetrain
from workflows.portfolio_scan import PortfolioScan
from workflows.retention_journey import RetentionJourney

WORKFLOWS = [RetentionJourney, PortfolioScan, ModelRetrain, DataPurge, CrmSyncWorkflow]
SHUTDOWN_MARGIN_S = 10  # after the drain, for the SDK to stop its pollers
# What `--role heavy` runs, on RETENTION_HEAVY_TASK_QUEUE (docs/deployment.md).
HEAVY_ACTIVITIES = frozenset({"score_page", "train_challenger", "evaluate_on_holdout"})
# Their threads run this much nicer than the journeys' (bench/retrain_beside_journeys.py).
HEAVY_NICENESS = 10


def build_activities(
    engine: Engine,
    rules_dir: Path,
    outbox_dir: Path,
    providers: Mapping[Channel, Provider] = CAPTURE_ONLY,
    scorer: ChurnScorer | None = None,
    periods: RetentionPeriods | None = None,
    retrain: RetrainPolicy | None = None,
    sentiment: InteractionScorer = vader_score,
    csm_booking_url: str | None = None,
    alerts: AlertPoster | None = None,
    crm: CrmSync | None = None,
) -> list[Callable[..., Any]]:
    """Every activity, bound to the dependencies it needs (built once per worker); every rule
    set the worker loads is archived, so later messages of a journey use its templates.
    `providers` are the live channels (none: everything is captured); `scorer` the churn
    model (none: baseline-0); `retrain` where challengers go and how they are judged (none:
    from the settings); `csm_booking_url` the CSMs' calendar pattern (none: no link); `alerts`
    CSM alerts in Slack (none: the `internal` messages are only captured); `crm` where CSM tasks
    also go (none: nowhere)."""
    rulebooks = RulebookSource(rules_dir, on_load=partial(archive_rule_set, engine))
    delivery = DeliverActivities(
        engine, outbox_dir, rulebooks, providers, csm_booking_url, alerts, crm
    )
    training = TrainActivities(
        engine, rulebooks, retrain or RetrainPolicy.from_settings(get_settings())
    )
    assessing = AssessActivities(engine, rulebooks, scorer, sentiment)
    deciding = DecideActivities(rulebooks, engine)
    return [
        assessing.assess,
        deciding.decide,
        RescoreActivities(assessing, deciding).assess_and_decide,
        delivery.deliver,
        delivery.suppress,
        RecordActivities(engine, alerts).record,
        PrivacyActivities(engine, outbox_dir, periods or RetentionPeriods()).purge,
        training.train_challenger,
        training.evaluate_on_holdout,
        training.decide_promotion,
        CrmActivities(engine, crm).sync_crm,
    ]


def build_scan_activities(
    engine: Engine,
    rules_dir: Path,
    client: Client,
    task_queue: str,
    scorer: ChurnScorer | None = None,
    sentiment: InteractionScorer = vader_score,
) -> list[Callable[..., Any]]:
    """The portfolio scan's activities: scoring with the journeys' models, starting journeys on
    `task_queue` through `client`."""
    scan = ScanActivities(engine, RulebookSource(rules_dir), scorer, sentiment)
    return [
        scan.plan_pages,
        scan.score_page,
        scan.record_scan,
        JourneyStarter(client, task_queue).start_journeys,
    ]


@asynccontextmanager
async def running_worker(
    client: Client,
    activities: list[Callable[..., Any]],
    task_queue: str | None = None,
    threads: int = 4,
) -> AsyncIterator[str]:
    """Every workflow and `activities` polling `task_queue` (None: a fresh one) in this process,
    e.g. on the time-skipping server; yields the queue's name."""
    queue = task_queue or f"tq-{uuid4()}"
    with concurrent.futures.ThreadPoolExecutor(max_workers=threads) as executor:
        async with make_worker(client, queue, WORKFLOWS, activities, executor, threads):
            yield queue


def make_worker(
    client: Client,
    task_queue: str,
    workflows: Sequence[type],
    activities: list[Callable[..., Any]],
    executor: concurrent.futures.Executor,
    slots: int,
    drain: timedelta = timedelta(),
) -> Worker:
    """`workflows` and `activities` on `task_queue`, at most `slots` activities at once; on
    shutdown, running activities get `drain` to finish before they are cancelled."""
    return Worker(
        client,
        task_queue=task_queue,
        workflows=workflows,
        activities=activities,
        activity_executor=executor,
        max_concurrent_activities=slots,
        graceful_shutdown_timeout=drain,
        workflow_runner=workflow_runner(client.data_converter),  # the SDK's sandbox, leaner
    )


def by_kind(
    activities: list[Callable[..., Any]],
) -> tuple[list[Callable[..., Any]], list[Callable[..., Any]]]:
    """(journey work, heavy work): scan scoring and model training are the heavy part."""
    heavy = [a for a in activities if getattr(a, "__name__", "") in HEAVY_ACTIVITIES]
    return [a for a in activities if a not in heavy], heavy


def role_workers(
    client: Client,
    settings: Settings,
    activities: list[Callable[..., Any]],
    executors: ExitStack,
    drain: timedelta,
) -> list[Worker]:
    """The workers `settings.worker_role` runs: `journeys` (every workflow and the journey
    activities on the task queue), `heavy` (scoring and training on the heavy queue), `all`."""
    role, queue, heavy_queue = settings.worker_role, settings.task_queue, settings.heavy_task_queue
    if role == "heavy" and heavy_queue == queue:
        raise InvalidInput(
            "--role heavy needs RETENTION_HEAVY_TASK_QUEUE apart from the task queue"
        )
    journeys, heavy = by_kind(activities)
    if heavy_queue == queue:  # one queue: one worker does it all
        journeys, heavy = journeys + heavy, []
    plan: list[tuple[str, Sequence[type], list[Callable[..., Any]], int, int]] = []
    if role in ("journeys", "all"):
        plan.append((queue, WORKFLOWS, journeys, settings.journey_activity_slots, 0))
    if role in ("heavy", "all") and heavy:
        plan.append((heavy_queue, [], heavy, settings.heavy_activity_slots, HEAVY_NICENESS))
    return [
        make_worker(client, q, w, a, executors.enter_context(activity_threads(n, nice)), n, drain)
        for q, w, a, n, nice in plan
    ]


def activity_threads(n: int, niceness: int) -> concurrent.futures.ThreadPoolExecutor:
    """`n` threads for activities, `niceness` nicer than the worker (see `_lower_priority`)."""
    return concurrent.futures.ThreadPoolExecutor(
        max_workers=n, initializer=_lower_priority, initargs=(niceness,)
    )


def _lower_priority(niceness: int) -> None:
    """Linux keeps a nice value per thread (setpriority(2)), and the threads a training starts
    inherit it: heavy work then takes only the CPU a journey's due step leaves. Only ever
    nicer (that needs no privilege), at most 19."""
    if niceness and sys.platform == "linux":
        thread = threading.get_native_id()
        now = os.getpriority(os.PRIO_PROCESS, thread)
        os.setpriority(os.PRIO_PROCESS, thread, min(19, now + niceness))


async def poll_until_stopped(
    workers: list[Worker],
    stop: asyncio.Event,
    readiness: Readiness,
    client: Client,
    drain: timedelta,
) -> None:
    """Poll until `stop` (SIGTERM, SIGINT), then drain: no new work, running activities finish
    within `drain`. A shutdown that still hangs (Temporal gone mid-poll) ends the process."""
    polling = [asyncio.create_task(worker.run()) for worker in workers]
    watching = asyncio.create_task(readiness.watch(_server_answers(client)))
    readiness.status = "ready"
    stopping = asyncio.create_task(stop.wait())
    await asyncio.wait({*polling, stopping}, return_when=asyncio.FIRST_COMPLETED)
    readiness.stop()
    await watching
    for task in polling:
        if task.done():
            task.result()  # a worker failed: its error, not a drain
    logging.info("draining: no new work; running activities have %s s", drain.total_seconds())
    try:
        async with asyncio.timeout(drain.total_seconds() + SHUTDOWN_MARGIN_S):
            await asyncio.gather(*(worker.shutdown() for worker in workers))
    except TimeoutError:
        logging.warning("worker did not stop %s s after the drain; exiting", SHUTDOWN_MARGIN_S)
        leave()


async def main() -> None:
    settings = get_settings()
    configure_logging(settings.log_format)
    # The journey and customer ids go in fields of their own (retention.runtime.logs), not the
    # message.
    workflow.logger.workflow_info_on_message = False
    activity.logger.activity_info_on_message = False
    # Before connecting: a model the snapshot cannot feed stops the worker at once, named.
    initial = load_scorer(settings.model_dir)
    engine = make_engine(settings.database_url)
    # Follows promotions by the model-retrain schedule without a restart.
    scorer = ChampionScorer(engine, initial, check_seconds=settings.model_check_seconds)
    scorer.current()
    logging.info("churn model %s", scorer.version)
    sentiment = load_sentiment_scorer(settings.sentiment_model)  # a broken folder stops it, named
    logging.info("sentiment %s", settings.sentiment_model or "vader")
    client = await connect(settings, runtime=_metrics(settings.metrics_address))
    await _keep_schedules(client, settings)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    providers = providers_from(settings)
    engine = make_engine(settings.database_url)
    alerts = alert_poster_from(settings, engine)
    activities = build_activities(
        engine,
        settings.rules_dir,
        settings.outbox_dir,
        providers,
        scorer,
        configured_periods(settings),
        sentiment=sentiment,
        csm_booking_url=settings.csm_booking_url,
        alerts=alerts,
        crm=sync_from(engine, settings),
    )
    activities += build_scan_activities(
        engine, settings.rules_dir, client, settings.task_queue, scorer, sentiment
    )
    logging.info(
        "delivery mode %s: %s",
        settings.delivery_mode,
        ", ".join(f"{c} via {p.name}" for c, p in providers.items()) or "everything captured",
    )
    logging.info("CSM alerts: %s", "Slack" if alerts is not None else "captured only")
    logging.info("CSM tasks: %s", f"also in {settings.crm}" if settings.crm else "here only")
    readiness = Readiness()
    health = await serve_health(settings.health_address, readiness)
    drain = timedelta(seconds=settings.worker_drain_seconds)
    with ExitStack() as executors:
        workers = role_workers(client, settings, activities, executors, drain)
        where = temporal_target(settings).describe()  # never a secret
        for worker in workers:
            queue = worker.task_queue
            logging.info(
                "worker polling task queue %s (%s) at %s", queue, settings.worker_role, where
            )
        await poll_until_stopped(workers, stop, readiness, client, drain)
    if health is not None:
        health.close()
    logging.info("worker stopped")


def _server_answers(client: Client) -> Callable[[timedelta], Awaitable[bool]]:
    def ask(deadline: timedelta) -> Awaitable[bool]:
        return client.service_client.check_health(timeout=deadline)

    return ask


async def _keep_schedules(client: Client, settings: Settings) -> None:
    """The portfolio-scan, model-retrain, crm-sync and data-purge schedules as the settings say;
    one that cannot be set up is logged and the worker runs on: journeys matter more than
    schedules."""
    for name, keeping in (
        ("portfolio-scan", keep_scan_schedule(client, settings)),
        (
            "model-retrain",
            ensure_retrain_schedule(
                client,
                settings.task_queue,
                settings.model_retrain_every,
                settings.heavy_task_queue,
            ),
        ),
        (
            "crm-sync",
            keep_schedule(
                client,
                "crm-sync",
                "CrmSync",
                CrmSyncRequest(),
                settings.crm_sync_every if settings.crm else None,
                settings.task_queue,
            ),
        ),
        (
            "data-purge",
            keep_schedule(
                client,
                "data-purge",
                "DataPurge",
                PurgeRequest(),
                settings.data_purge_every,
                settings.task_queue,
            ),
        ),
    ):
        try:
            logging.info(await keeping)
        except RPCError as exc:
            logging.error("%s schedule not set up: %s", name, exc)


def _metrics(address: str) -> Runtime | None:
    """The runtime with the metrics endpoint; an address already taken (another worker on this
    machine) is logged and the worker runs on without one: journeys matter more than metrics."""
    if not address:
        return None
    try:
        runtime = metrics_runtime(address)
    except ValueError as exc:
        logging.warning(
            "no metrics endpoint at %s: %s (set RETENTION_METRICS_ADDRESS)", address, exc
        )
        return None
    logging.info("metrics at http://%s/metrics", address)
    return runtime


def _role_from_arguments() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "--role",
        choices=["journeys", "heavy", "all"],
        help="journeys: every workflow and the journey activities; heavy: scan scoring and "
        "model training; all (default, RETENTION_WORKER_ROLE): both",
    )
    if role := parser.parse_args().role:
        os.environ["RETENTION_WORKER_ROLE"] = role


if __name__ == "__main__":
    _role_from_arguments()
    try:
        get_settings()
    except ValidationError as exc:  # a setting out of range: one line naming it
        sys.exit(f"worker: {settings_problem(exc)}")
    try:
        asyncio.run(main())
    except RetentionError as exc:  # e.g. a model the snapshot cannot feed: one line, named
        sys.exit(f"worker: {exc}")
    leave()
