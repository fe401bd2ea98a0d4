"""The labelled table a model trains or is evaluated on, from a user's file.

Without a feature spec the file is a training file of customer snapshots (docs/model.md,
Training data) and the sixteen seed features are computed from it with the rule set's scoring;
with a spec the file's own columns are the features (a team's own history).
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import pandas as pd

from retention.errors import InvalidInput
from retention.model.spec import SEED_SPEC, FeatureSpec, check_table
from retention.model.training_data import read_training_file, training_table
from retention.rulebook.loader import Rulebook


def labelled_table(
    path: Path, spec: FeatureSpec | None, rulebook: Rulebook
) -> tuple[pd.DataFrame, FeatureSpec]:
    if spec is None or spec == SEED_SPEC:
        snapshots = read_training_file(path)
        table = training_table(snapshots, rulebook.scoring, expansion=rulebook.expansion)
        return table, SEED_SPEC
    table = _read_table(path)
    check_table(table, spec, str(path))
    return table, spec


def _read_table(path: Path) -> pd.DataFrame:
    try:
        if path.suffix.lower() == ".parquet":
            return pd.read_parquet(path)
        if path.suffix.lower() == ".csv":
            return pd.read_csv(path, keep_default_na=True)
    except (OSError, ValueError) as exc:
        raise InvalidInput(f"{path}: cannot read it as a table ({exc})") from exc
    raise InvalidInput(f"{path}: name a .csv or .parquet file")


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
