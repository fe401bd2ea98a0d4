"""What the PortfolioScan workflow, its activities and the CLI exchange (pydantic, no I/O)."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field

SCAN_WORKFLOW_TYPE = "PortfolioScan"
SCHEDULE_ID = "portfolio-scan"
DEFAULT_PAGE_SIZE = 500
MAX_PAGE_SIZE = 10_000
MAX_FAILURES_KEPT = 20  # the count goes on; the reasons listed stop here
# Pages a run scores at once (docs/operators.md, "Portfolio scan"): 4 keeps two heavy workers of
# two activity slots each busy; 16 bounds a run's history and the at-risk ids it carries.
DEFAULT_PARALLEL_PAGES = 4
MAX_PARALLEL_PAGES = 16

ScanStatus = Literal["running", "completed", "failed"]


class ScanFailure(BaseModel):
    customer_id: str
    reason: str


class ScanFigures(BaseModel):
    """Running totals of a scan, carried from run to run."""

    pages: int = 0
    scored: int = 0
    at_risk: int = 0
    started: int = 0
    skipped: int = Field(default=0, description="at risk, but a journey was already running")
    failed: int = Field(default=0, description="unreadable, undecidable or not started")
    failures: list[ScanFailure] = Field(
        default_factory=list, description=f"the first {MAX_FAILURES_KEPT}, with reasons"
    )

    def plus(self, page: ScoredPage, starts: StartedJourneys) -> ScanFigures:
        failures = self.failures + page.failures + starts.failures
        return ScanFigures(
            pages=self.pages + 1,
            scored=self.scored + page.scored,
            at_risk=self.at_risk + len(page.at_risk_ids),
            started=self.started + starts.started,
            skipped=self.skipped + starts.skipped,
            failed=self.failed + len(page.failures) + len(starts.failures),
            failures=failures[:MAX_FAILURES_KEPT],
        )


class ScanRequest(BaseModel):
    """The scan's input: its settings (`page_size`, `parallel_pages`, `heavy_task_queue`) and
    what continue-as-new carries from run to run."""

    page_size: int = Field(default=DEFAULT_PAGE_SIZE, ge=1, le=MAX_PAGE_SIZE)
    parallel_pages: int = Field(
        default=DEFAULT_PARALLEL_PAGES,
        ge=1,
        le=MAX_PARALLEL_PAGES,
        description="pages each run scores at once, on as many heavy workers as there are",
    )
    scan_id: str | None = Field(default=None, description="None: the first run's run id")
    started_at: datetime | None = None
    after: str | None = Field(default=None, description="the last customer id already scanned")
    figures: ScanFigures = Field(default_factory=ScanFigures)
    runs: int = Field(default=1, ge=1, description="runs of this scan so far, this one included")
    heavy_task_queue: str | None = Field(
        default=None,
        description="where its heavy activities run (worker.py --role heavy); None: its own queue",
    )


class ScanResult(ScanFigures):
    """The workflow's result, the `progress` query's answer and a `scan_runs` row."""

    scan_id: str
    workflow_id: str
    status: ScanStatus
    started_at: datetime
    finished_at: datetime | None = None
    runs: int = 1

    @property
    def figures(self) -> ScanFigures:
        return ScanFigures(**{name: getattr(self, name) for name in ScanFigures.model_fields})

    def with_figures(self, figures: ScanFigures) -> ScanResult:
        return self.model_copy(update=dict(figures))


class PageRequest(BaseModel):
    scan_id: str
    page: int = Field(ge=1)
    after: str | None = None
    page_size: int = Field(ge=1, le=MAX_PAGE_SIZE)
    until: str | None = Field(
        default=None,
        description="a planned page: every customer after `after` up to this id; "
        "None: the `page_size` customers after `after`",
    )


class PlanRequest(BaseModel):
    after: str | None = None
    page_size: int = Field(ge=1, le=MAX_PAGE_SIZE)
    pages: int = Field(ge=1, le=MAX_PARALLEL_PAGES)


class PagePlan(BaseModel):
    ends: list[str] = Field(
        default_factory=list,
        description="the last customer id of each full page after `after`, in order; fewer "
        "than asked: the portfolio ends sooner",
    )


class ScoredPage(BaseModel):
    page: int
    read: int = Field(description="customers read from the database, scored or not")
    scored: int
    last_customer_id: str | None = None
    at_risk_ids: list[str] = Field(default_factory=list)
    failures: list[ScanFailure] = Field(default_factory=list)


class StartRequest(BaseModel):
    scan_id: str
    page: int
    customer_ids: list[str]


class StartedJourneys(BaseModel):
    started: int = 0
    skipped: int = 0
    failures: list[ScanFailure] = Field(default_factory=list)
