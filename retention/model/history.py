"""Labelled history from the database: one training row per stored customer snapshot.

What the database records (docs/model.md, Training data, "From the database"):

- the snapshot: `customers.snapshot` with `customers.contacts`, describing
  `customers.snapshot_date` (when empty, the day the row was last written, `updated_at`);
- the churn date: `customers.churn_date` (the billing/CRM cancellation date, written by
  `model import-history` or any import that knows it), else the day a journey of the customer
  ended with outcome `churned` (a `churned` event the service itself saw).

A customer is labelled *churned* when it left on or after its snapshot date, *retained* when it
has not left and the snapshot is at least `horizon_days` old (watched for the whole horizon).
A snapshot younger than that with no churn is not labelled yet, and a churn before the snapshot
date (a snapshot of a customer already gone) is skipped: both are counted, never guessed.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from datetime import date, timedelta

import pandas as pd
from sqlalchemy import Engine, func
from sqlmodel import col, select

from retention.customer import parse_customer
from retention.errors import InvalidInput
from retention.model.training_data import DEFAULT_HORIZON_DAYS, TrainingSet, training_table
from retention.rulebook.loader import Rulebook
from retention.store.db import session
from retention.store.tables import (
    CustomerRow,
    JourneyRow,
    customer_columns,
    utcnow,
    whole_snapshot,
)

# Fewer labelled customers than this cannot give a model and a held-out check worth the name.
MIN_LABELLED_ROWS = 50
MIN_ROWS_PER_CLASS = 10
SOURCE = "database"


@dataclass
class LabelledHistory:
    """The labelled rows (customer ids index for index) and what was left out, and why."""

    training_set: TrainingSet
    customer_ids: list[str]
    not_yet_labelled: int
    churned_before_snapshot: int

    def describe(self) -> str:
        churned = sum(self.training_set.churned)
        return (
            f"{len(self.customer_ids)} labelled customers ({churned} churned, "
            f"{len(self.customer_ids) - churned} retained); {self.not_yet_labelled} not labelled "
            f"yet (snapshot younger than the horizon, no churn), "
            f"{self.churned_before_snapshot} skipped (churned before their snapshot)"
        )


def labelled_history(
    engine: Engine,
    as_of: date | None = None,
    *,
    horizon_days: int = DEFAULT_HORIZON_DAYS,
    only: Collection[str] | None = None,
) -> LabelledHistory:
    """Every labelled customer in the database as of `as_of` (default today), ordered by
    snapshot date then id (oldest first); `only`: just these customer ids."""
    today = as_of or utcnow().date()
    journey_churn = _journey_churn_dates(engine)
    history = LabelledHistory(TrainingSet([], [], [], []), [], 0, 0)
    ts = history.training_set
    for row in _customer_rows(engine, only):
        snapshot_date = row.snapshot_date or row.updated_at.date()
        churn = row.churn_date or journey_churn.get(row.customer_id)
        if churn is not None and churn < snapshot_date:
            history.churned_before_snapshot += 1
            continue
        if churn is None and snapshot_date + timedelta(days=horizon_days) > today:
            history.not_yet_labelled += 1
            continue
        document = whole_snapshot(row.snapshot, row.contacts)
        ts.customers.append(parse_customer(document, source=f"customers[{row.customer_id}]"))
        ts.snapshot_dates.append(snapshot_date)
        ts.churned.append(churn is not None)
        ts.churn_dates.append(churn)
        history.customer_ids.append(row.customer_id)
    order = sorted(range(len(ts)), key=lambda i: (ts.snapshot_dates[i], history.customer_ids[i]))
    _reorder(history, order)
    return history


def history_table(
    history: LabelledHistory, rulebook: Rulebook, *, horizon_days: int = DEFAULT_HORIZON_DAYS
) -> pd.DataFrame:
    """The seed-feature table (retention/model/training_data.py) of the labelled rows,
    refused with the counts when a model cannot learn from it."""
    churned = sum(history.training_set.churned)
    retained = len(history.customer_ids) - churned
    if len(history.customer_ids) < MIN_LABELLED_ROWS or min(churned, retained) < (
        MIN_ROWS_PER_CLASS
    ):
        raise InvalidInput(
            f"{SOURCE}: {history.describe()}; training needs at least {MIN_LABELLED_ROWS} "
            f"labelled customers with at least {MIN_ROWS_PER_CLASS} churned and "
            f"{MIN_ROWS_PER_CLASS} retained"
        )
    return training_table(
        history.training_set,
        rulebook.scoring,
        expansion=rulebook.expansion,
        horizon_days=horizon_days,
    )


def save_history(engine: Engine, training_set: TrainingSet) -> int:
    """Store labelled snapshots (a training file) as customers with their snapshot and churn
    dates; a customer already there is replaced whole. One transaction."""
    now = utcnow()
    with session(engine) as db:
        for customer, day, churn in zip(
            training_set.customers,
            training_set.snapshot_dates,
            training_set.churn_dates,
            strict=True,
        ):
            db.merge(
                CustomerRow(
                    customer_id=customer.customer_id,
                    **customer_columns(customer.model_dump(mode="json")),
                    updated_at=now,
                    snapshot_date=day,
                    churn_date=churn,
                )
            )
    return len(training_set)


def _customer_rows(engine: Engine, only: Collection[str] | None) -> list[CustomerRow]:
    query = select(CustomerRow)
    if only is not None:
        query = query.where(col(CustomerRow.customer_id).in_(list(only)))
    with session(engine) as db:
        return list(db.exec(query).all())


def _journey_churn_dates(engine: Engine) -> dict[str, date]:
    """The first day a journey of each customer ended `churned`."""
    query = (
        select(JourneyRow.customer_id, func.min(JourneyRow.finished_at))
        .where(JourneyRow.outcome == "churned")
        .group_by(col(JourneyRow.customer_id))
    )
    with session(engine) as db:
        rows = db.exec(query).all()
    return {customer: finished.date() for customer, finished in rows if finished is not None}


def _reorder(history: LabelledHistory, order: list[int]) -> None:
    ts = history.training_set
    ts.customers = [ts.customers[i] for i in order]
    ts.snapshot_dates = [ts.snapshot_dates[i] for i in order]
    ts.churned = [ts.churned[i] for i in order]
    ts.churn_dates = [ts.churn_dates[i] for i in order]
    history.customer_ids = [history.customer_ids[i] for i in order]
