"""The portfolio scan's I/O: score a page of customers, start their journeys, record the run."""

from __future__ import annotations

from sqlalchemy import Engine
from temporalio import activity
from temporalio.client import Client

from retention.rulebook.source import RulebookSource
from retention.scan.requests import (
    PagePlan,
    PageRequest,
    PlanRequest,
    ScanResult,
    ScoredPage,
    StartedJourneys,
    StartRequest,
)
from retention.scan.scoring import score_page
from retention.scan.starting import start_journeys
from retention.scoring.assessment import ChurnScorer
from retention.scoring.sentiment import InteractionScorer, vader_score
from retention.store.scans import page_ends, save_scan_run


class ScanActivities:
    def __init__(
        self,
        engine: Engine,
        rulebooks: RulebookSource,
        scorer: ChurnScorer | None = None,
        sentiment: InteractionScorer = vader_score,
    ) -> None:
        """`scorer`, `sentiment`: the models the journeys use too (None: baseline-0; VADER)."""
        self._engine = engine
        self._rulebooks = rulebooks
        self._scorer = scorer
        self._sentiment = sentiment

    @activity.defn(name="score_page")
    def score_page(self, request: PageRequest) -> ScoredPage:
        return score_page(
            self._engine,
            self._rulebooks.current(),
            self._scorer,
            request,
            activity.heartbeat,
            self._sentiment,
        )

    @activity.defn(name="plan_pages")
    def plan_pages(self, request: PlanRequest) -> PagePlan:
        ends = page_ends(self._engine, request.after, request.page_size, request.pages)
        return PagePlan(ends=ends)

    @activity.defn(name="record_scan")
    def record_scan(self, result: ScanResult) -> None:
        values = result.model_dump(mode="json", exclude={"scan_id"})
        values |= {"id": result.scan_id, "started_at": result.started_at}
        values["finished_at"] = result.finished_at
        save_scan_run(self._engine, values, ended=result.status != "running")


class JourneyStarter:
    """Holds the worker's Temporal client: starting a journey is a client call."""

    def __init__(self, client: Client, task_queue: str) -> None:
        self._client = client
        self._task_queue = task_queue

    @activity.defn(name="start_journeys")
    async def start_journeys(self, request: StartRequest) -> StartedJourneys:
        return await start_journeys(
            self._client,
            request.customer_ids,
            scan_id=request.scan_id,
            task_queue=self._task_queue,
            retried=activity.info().attempt > 1,
            heartbeat=activity.heartbeat,
        )
