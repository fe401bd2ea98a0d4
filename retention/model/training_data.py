"""Training data: customer snapshots with their churn outcome, on disk and as a feature table.

A training file is a population file (retention/population.py: one column per snapshot field,
by dotted path) plus three label columns:

- `snapshot_date`: the ISO date the snapshot describes (features are computed as of that day);
- `churned`: true or false;
- `churn_date`: the ISO date the customer churned, blank when it did not; never before
  `snapshot_date`.

CSV, or Parquet when the file name ends in `.parquet` (the same columns; numbers and yes/no
typed, the rest as the CSV's text). Reading is all or nothing: the first problem is an
`InvalidInput` naming file, line (`row n` in Parquet) and column.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time
from pathlib import Path
from typing import Any

import pandas as pd

from retention.customer import CustomerSnapshot
from retention.errors import InvalidInput
from retention.model.features import feature_frame
from retention.population import (
    Row,
    read_rows_csv,
    read_rows_parquet,
    write_customers_csv,
    write_customers_parquet,
)
from retention.rulebook.schema import ScoringFile
from retention.scoring.expansion import ExpansionPolicy, expansion_opportunities
from retention.scoring.health import HealthScore, score_health

LABEL_COLUMNS = ("snapshot_date", "churned", "churn_date")
# How long after the snapshot a customer is watched: churn later than this is not churn here.
DEFAULT_HORIZON_DAYS = 180
_YES_NO = {"true": True, "false": False}


@dataclass
class TrainingSet:
    """Customers, each with its snapshot date and outcome, index for index."""

    customers: list[CustomerSnapshot]
    snapshot_dates: list[date]
    churned: list[bool]
    churn_dates: list[date | None]

    def __post_init__(self) -> None:
        sizes = {len(self.snapshot_dates), len(self.churned), len(self.churn_dates)}
        if sizes != {len(self.customers)}:
            raise ValueError("customers, snapshot_dates, churned and churn_dates differ in length")

    def __len__(self) -> int:
        return len(self.customers)

    @property
    def churn_rate(self) -> float:
        return sum(self.churned) / len(self) if self.customers else 0.0


# ---- files ------------------------------------------------------------------------------------


def is_parquet(path: Path) -> bool:
    return path.suffix.lower() == ".parquet"


def read_training_file(path: Path) -> TrainingSet:
    """A CSV or (by suffix) Parquet training file, or `InvalidInput` for its first problem."""
    read = read_rows_parquet if is_parquet(path) else read_rows_csv
    rows = read(path, LABEL_COLUMNS)
    labels = [_labels(row) for row in rows]
    return TrainingSet(
        customers=[row.customer for row in rows],
        snapshot_dates=[snapshot for snapshot, _, _ in labels],
        churned=[churned for _, churned, _ in labels],
        churn_dates=[churn for _, _, churn in labels],
    )


def _labels(row: Row) -> tuple[date, bool, date | None]:
    snapshot = _date(row, "snapshot_date")
    if snapshot is None:
        raise InvalidInput(f"{row.where}: snapshot_date: required")
    churned = _yes_no(row, "churned")
    churn = _date(row, "churn_date")
    _check_outcome(row.where, snapshot, churned, churn)
    return snapshot, churned, churn


def _check_outcome(where: str, snapshot: date, churned: bool, churn: date | None) -> None:
    if churned and churn is None:
        raise InvalidInput(f"{where}: churn_date: required when churned is true")
    if not churned and churn is not None:
        raise InvalidInput(f"{where}: churn_date: must be blank when churned is false")
    if churn is not None and churn < snapshot:
        raise InvalidInput(
            f"{where}: churn_date: {churn.isoformat()} is before snapshot_date "
            f"{snapshot.isoformat()}"
        )


def _date(row: Row, column: str) -> date | None:
    cell: Any = row.extra[column]
    if cell is None or cell == "":
        return None
    if isinstance(cell, datetime):  # a Parquet timestamp column
        return cell.date()
    if isinstance(cell, date):
        return cell
    try:
        return date.fromisoformat(str(cell).strip())
    except ValueError:
        raise InvalidInput(f"{row.where}: {column}: expected an ISO date, got {cell!r}") from None


def _yes_no(row: Row, column: str) -> bool:
    cell: Any = row.extra[column]
    if isinstance(cell, bool):
        return cell
    answer = _YES_NO.get(str(cell).strip().lower()) if cell is not None else None
    if answer is None:
        raise InvalidInput(f"{row.where}: {column}: expected true or false, got {cell!r}")
    return answer


def write_training_file(training_set: TrainingSet, path: Path) -> None:
    """CSV, or Parquet when the name ends in `.parquet`."""
    if is_parquet(path):
        write_training_parquet(training_set, path)
    else:
        write_training_csv(training_set, path)


def write_training_csv(training_set: TrainingSet, path: Path) -> None:
    write_customers_csv(training_set.customers, path, _label_cells(training_set, path))


def write_training_parquet(training_set: TrainingSet, path: Path) -> None:
    cells = _label_cells(training_set, path)
    typed: dict[str, Sequence[Any]] = {
        **cells,
        "churned": training_set.churned,
        "churn_date": [cell or None for cell in cells["churn_date"]],
    }
    write_customers_parquet(training_set.customers, path, typed)


def _label_cells(training_set: TrainingSet, path: Path) -> dict[str, list[str]]:
    """The label columns as CSV cells, after the checks a reader would make."""
    outcomes = zip(
        training_set.customers,
        training_set.snapshot_dates,
        training_set.churned,
        training_set.churn_dates,
        strict=True,
    )
    for customer, snapshot, churned, churn in outcomes:
        _check_outcome(f"{path}: customer {customer.customer_id!r}", snapshot, churned, churn)
    return {
        "snapshot_date": [day.isoformat() for day in training_set.snapshot_dates],
        "churned": ["true" if churned else "false" for churned in training_set.churned],
        "churn_date": [day.isoformat() if day else "" for day in training_set.churn_dates],
    }


# ---- the table a model trains on --------------------------------------------------------------


def training_table(
    ts: TrainingSet,
    scoring: ScoringFile,
    *,
    expansion: ExpansionPolicy | None = None,
    horizon_days: int = DEFAULT_HORIZON_DAYS,
) -> pd.DataFrame:
    """SEED_FEATURES (health scored with the rule set's policy as of each snapshot date), then
    `churned` and `duration_days`.

    - churned: churned within `horizon_days` of the snapshot; a later churn counts as not
      churned here, like any customer still there at the end of the horizon.
    - duration_days: days from snapshot_date to churn_date when churned, else `horizon_days`
      (censored: still a customer when observation ended).
    - expansion_count is the number of opportunities `expansion` finds (the rule set's
      rules/expansion.yaml); without a policy the column is missing (NaN) throughout.
    """
    pairs = zip(ts.customers, ts.snapshot_dates, strict=True)
    healths = [_health(customer, day, scoring) for customer, day in pairs]
    counts = (
        [len(expansion_opportunities(c, expansion)) for c in ts.customers] if expansion else None
    )
    table = feature_frame(ts.customers, healths, ts.snapshot_dates, counts)
    outcomes = [
        _outcome(day, churn if churned else None, horizon_days)
        for day, churned, churn in zip(ts.snapshot_dates, ts.churned, ts.churn_dates, strict=True)
    ]
    table["churned"] = pd.Series([churned for churned, _ in outcomes], dtype=bool)
    table["duration_days"] = pd.Series([days for _, days in outcomes], dtype="int64")
    return table


def _outcome(snapshot: date, churn: date | None, horizon_days: int) -> tuple[bool, int]:
    """(churned within the horizon, days observed until churn or the horizon's end)."""
    if churn is not None and (churn - snapshot).days <= horizon_days:
        return True, (churn - snapshot).days
    return False, horizon_days


def _health(customer: CustomerSnapshot, day: date, scoring: ScoringFile) -> HealthScore:
    return score_health(customer, datetime.combine(day, time(), UTC), scoring.health)
