"""Run the Temporal worker: every workflow and activity of the service, on one task queue."""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import signal
import sys
from collections.abc import Callable, Mapping
from functools import partial
from pathlib import Path
from typing import Any

from sqlalchemy import Engine
from temporalio.worker import Worker

from activities.assess import AssessActivities
from activities.decide import DecideActivities
from activities.deliver import DeliverActivities
from activities.record import RecordActivities
from retention.assessment import ChurnScorer
from retention.delivery.providers import Provider, providers_from
from retention.delivery.send import CAPTURE_ONLY
from retention.errors import RetentionError
from retention.model.scorer import load_scorer
from retention.plan import Channel
from retention.rulebook.source import RulebookSource
from retention.sentiment import InteractionScorer, vader_score
from retention.sentiment_model import load_sentiment_scorer
from retention.settings import get_settings
from retention.store.db import make_engine
from retention.store.rule_sets import archive_rule_set
from retention.temporal import connect
from workflows.journey import RetentionJourney

WORKFLOWS = [RetentionJourney]


def build_activities(
    engine: Engine,
    rules_dir: Path,
    outbox_dir: Path,
    providers: Mapping[Channel, Provider] = CAPTURE_ONLY,
    scorer: ChurnScorer | None = None,
    sentiment: InteractionScorer = vader_score,
) -> list[Callable[..., Any]]:
    """Every activity, bound to the dependencies it needs (built once per worker); every rule
    set the worker loads is archived, so later messages of a journey use its templates.
    `providers` are the live channels (none: everything is captured); `scorer` the churn
    model (none: baseline-0)."""
    rulebooks = RulebookSource(rules_dir, on_load=partial(archive_rule_set, engine))
    delivery = DeliverActivities(engine, outbox_dir, rulebooks, providers)
    return [
        AssessActivities(engine, rulebooks, scorer, sentiment).assess,
        DecideActivities(rulebooks).decide,
        delivery.deliver,
        delivery.suppress,
        RecordActivities(engine).record,
    ]


async def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    settings = get_settings()
    # Before connecting: a model the snapshot cannot feed stops the worker at once, named.
    scorer = load_scorer(settings.model_dir)
    logging.info("churn model %s", scorer.version if scorer else "baseline-0")
    sentiment = load_sentiment_scorer(settings.sentiment_model)  # a broken folder stops it, named
    logging.info("sentiment %s", settings.sentiment_model or "vader")
    client = await connect(settings)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    providers = providers_from(settings)
    activities = build_activities(
        make_engine(settings.database_url),
        settings.rules_dir,
        settings.outbox_dir,
        providers,
        scorer,
        sentiment,
    )
    logging.info(
        "delivery mode %s: %s",
        settings.delivery_mode,
        ", ".join(f"{c} via {p.name}" for c, p in providers.items()) or "everything captured",
    )
    with concurrent.futures.ThreadPoolExecutor(max_workers=8) as executor:
        async with Worker(
            client,
            task_queue=settings.task_queue,
            workflows=WORKFLOWS,
            activities=activities,
            activity_executor=executor,
        ):
            logging.info(
                "worker polling task queue %s at %s", settings.task_queue, settings.temporal_address
            )
            await stop.wait()
    logging.info("worker stopped")


if __name__ == "__main__":
    try:
        asyncio.run(main())
    except RetentionError as exc:  # e.g. a model the snapshot cannot feed: one line, named
        sys.exit(f"worker: {exc}")
