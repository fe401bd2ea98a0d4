"""Run the Temporal worker: every workflow and activity of the service, on one task queue."""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import signal
import sys
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from functools import partial
from pathlib import Path
from typing import Any
from uuid import uuid4

from sqlalchemy import Engine
from temporalio import activity, workflow
from temporalio.client import Client
from temporalio.runtime import Runtime
from temporalio.service import RPCError
from temporalio.worker import Worker

from activities.assess import AssessActivities
from activities.decide import DecideActivities
from activities.deliver import DeliverActivities
from activities.privacy import PrivacyActivities, PurgeRequest
from activities.record import RecordActivities
from activities.rescore import RescoreActivities
from activities.scan import JourneyStarter, ScanActivities
from activities.train import TrainActivities
from retention.assessment import ChurnScorer
from retention.delivery.providers import Provider, providers_from
from retention.delivery.send import CAPTURE_ONLY
from retention.errors import RetentionError
from retention.logs import configure_logging
from retention.model.champion import ChampionScorer
from retention.model.retrain import RetrainPolicy
from retention.model.scorer import load_scorer
from retention.plan import Channel
from retention.retraining import ensure_retrain_schedule
from retention.rulebook.source import RulebookSource
from retention.sandbox import WORKFLOW_RUNNER
from retention.scan.schedule import keep_scan_schedule
from retention.schedules import keep_schedule
from retention.sentiment import InteractionScorer, vader_score
from retention.sentiment_model import load_sentiment_scorer
from retention.settings import Settings, get_settings
from retention.store.db import make_engine
from retention.store.purge import RetentionPeriods, configured_periods
from retention.store.rule_sets import archive_rule_set
from retention.temporal import connect, metrics_runtime
from workflows.data_purge import DataPurge
from workflows.journey import RetentionJourney
from workflows.model_retrain import ModelRetrain
from workflows.portfolio_scan import PortfolioScan

WORKFLOWS = [RetentionJourney, PortfolioScan, ModelRetrain, DataPurge]


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
) -> list[Callable[..., Any]]:
    """Every activity, bound to the dependencies it needs (built once per worker); every rule
    set the worker loads is archived, so later messages of a journey use its templates.
    `providers` are the live channels (none: everything is captured); `scorer` the churn
    model (none: baseline-0); `retrain` where challengers go and how they are judged (none:
    from the settings); `csm_booking_url` the CSMs' calendar pattern (none: no link)."""
    rulebooks = RulebookSource(rules_dir, on_load=partial(archive_rule_set, engine))
    delivery = DeliverActivities(engine, outbox_dir, rulebooks, providers, csm_booking_url)
    training = TrainActivities(
        engine, rulebooks, retrain or RetrainPolicy.from_settings(get_settings())
    )
    assessing = AssessActivities(engine, rulebooks, scorer, sentiment)
    deciding = DecideActivities(rulebooks)
    return [
        assessing.assess,
        deciding.decide,
        RescoreActivities(assessing, deciding).assess_and_decide,
        delivery.deliver,
        delivery.suppress,
        RecordActivities(engine).record,
        PrivacyActivities(engine, outbox_dir, periods or RetentionPeriods()).purge,
        training.train_challenger,
        training.evaluate_on_holdout,
        training.decide_promotion,
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
    return [scan.score_page, scan.record_scan, JourneyStarter(client, task_queue).start_journeys]


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
        async with Worker(
            client,
            task_queue=queue,
            workflows=WORKFLOWS,
            activities=activities,
            activity_executor=executor,
            workflow_runner=WORKFLOW_RUNNER,  # the SDK's sandbox, less a cost per signal
        ):
            yield queue


async def main() -> None:
    settings = get_settings()
    configure_logging(settings.log_format)
    # The journey and customer ids go in fields of their own (retention.logs), not the message.
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
    activities = build_activities(
        engine,
        settings.rules_dir,
        settings.outbox_dir,
        providers,
        scorer,
        configured_periods(settings),
        sentiment=sentiment,
        csm_booking_url=settings.csm_booking_url,
    )
    activities += build_scan_activities(
        engine, settings.rules_dir, client, settings.task_queue, scorer, sentiment
    )
    logging.info(
        "delivery mode %s: %s",
        settings.delivery_mode,
        ", ".join(f"{c} via {p.name}" for c, p in providers.items()) or "everything captured",
    )
    async with running_worker(client, activities, settings.task_queue, threads=8):
        logging.info(
            "worker polling task queue %s at %s", settings.task_queue, settings.temporal_address
        )
        await stop.wait()
    logging.info("worker stopped")


async def _keep_schedules(client: Client, settings: Settings) -> None:
    """The portfolio-scan, model-retrain and data-purge schedules as the settings say; one that
    cannot be set up is logged and the worker runs on: journeys matter more than schedules."""
    for name, keeping in (
        ("portfolio-scan", keep_scan_schedule(client, settings)),
        (
            "model-retrain",
            ensure_retrain_schedule(client, settings.task_queue, settings.model_retrain_every),
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


if __name__ == "__main__":
    try:
        asyncio.run(main())
    except RetentionError as exc:  # e.g. a model the snapshot cannot feed: one line, named
        sys.exit(f"worker: {exc}")
