"""Labelled customer histories for retraining tests: generated customers whose snapshots are
spread over three months, with their true, shuffled or flipped outcomes."""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path
from typing import Literal

import numpy as np

from retention.model.card import build_card
from retention.model.generator import generate_population
from retention.model.persist import save_model
from retention.model.spec import SEED_SPEC
from retention.model.train import train_churn_model
from retention.model.training_data import TrainingSet, training_table
from retention.rulebook.loader import Rulebook

Labels = Literal["true", "shuffled", "flipped"]
FIRST_SNAPSHOT = date(2026, 1, 1)
SPREAD_DAYS = 90
FLIPPED_CHURN_DAYS = 30


def labelled_population(customers: int, seed: int, labels: Labels = "true") -> TrainingSet:
    """`customers` generated customers; snapshot i taken i mod 90 days after 2026-01-01 (the
    churn date moves with it). `shuffled`: outcomes dealt to other customers; `flipped`: every
    churner stays and every stayer churns 30 days after its snapshot."""
    generated = generate_population(customers, seed)
    shifts = [timedelta(days=i % SPREAD_DAYS) for i in range(customers)]
    days_to_churn = [
        (churn - snapshot).days if churn else None
        for snapshot, churn in zip(generated.snapshot_dates, generated.churn_dates, strict=True)
    ]
    if labels == "shuffled":
        order = np.random.default_rng(seed).permutation(customers)
        days_to_churn = [days_to_churn[i] for i in order]
    elif labels == "flipped":
        days_to_churn = [None if days is not None else FLIPPED_CHURN_DAYS for days in days_to_churn]
    snapshots = [FIRST_SNAPSHOT + shift for shift in shifts]
    return TrainingSet(
        customers=generated.customers,
        snapshot_dates=snapshots,
        churned=[days is not None for days in days_to_churn],
        churn_dates=[
            day + timedelta(days=days) if days is not None else None
            for day, days in zip(snapshots, days_to_churn, strict=True)
        ],
    )


def train_model_on(training_set: TrainingSet, rulebook: Rulebook, out: Path, seed: int) -> str:
    """A model folder trained on `training_set` (a two-fold card: quick); its version."""
    table = training_table(training_set, rulebook.scoring, expansion=rulebook.expansion)
    model = train_churn_model(table, SEED_SPEC, seed=seed)
    card = build_card(model, table, seed=seed, folds=2)
    save_model(model, card, out)
    return card.model_version
