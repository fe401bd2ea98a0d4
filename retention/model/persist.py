"""A model's folder: `save_model(model, card, out_dir)` and `load_model(dir)`.

The folder holds the model files of `artifacts` and `card.json`. Loading reads nothing but
that folder (never a download) and refuses, naming the file, a missing or corrupt file or a
card whose `model_version` is not the content hash of the files beside it.

The whole round, for a CLI or an activity (all errors are `InvalidInput`, naming the column,
row or file):

    spec = SEED_SPEC  # or load_feature_spec(path)
    model = train_churn_model(df, spec, seed=seed, source=str(data_file))
    card = build_card(model, df, seed=seed, data_hash=file_sha256, progress=print)
    save_model(model, card, Path("models/churn-1"))
    model, card = load_model(Path("models/churn-1"))
    predictions = model.predict(features_df, top=3)  # drivers only where shown or stored
    figures = evaluate(model, labelled_df, model.spec)  # a team's own history
"""

from __future__ import annotations

import os
from pathlib import Path

from pydantic import ValidationError

from retention.errors import InvalidInput
from retention.model.artifacts import MODEL_FILES, model_files, model_from_files, model_version
from retention.model.card import ModelCard
from retention.model.predict import ChurnModel

CARD_FILE = "card.json"


def save_model(model: ChurnModel, card: ModelCard, out_dir: Path) -> Path:
    """Write the model files and the card; each file is replaced whole, never half-written."""
    files = model_files(model)
    if card.model_version != model_version(files):
        raise InvalidInput(f"{out_dir}: the card describes model {card.model_version}, not this")
    files[CARD_FILE] = card.model_dump_json(indent=2).encode()
    out_dir.mkdir(parents=True, exist_ok=True)
    for name, content in files.items():
        partial = out_dir / f".{name}.partial"
        partial.write_bytes(content)
        os.replace(partial, out_dir / name)
    return out_dir


def load_model(folder: Path) -> tuple[ChurnModel, ModelCard]:
    files = {name: _read(folder / name) for name in (*MODEL_FILES, CARD_FILE)}
    model = model_from_files(files, str(folder))
    try:
        card = ModelCard.model_validate_json(files[CARD_FILE])
    except ValidationError as exc:
        raise InvalidInput(f"{folder / CARD_FILE}: not a model card ({exc})") from exc
    version = model_version(files)
    if card.model_version != version:
        raise InvalidInput(
            f"{folder / CARD_FILE}: describes model {card.model_version}, "
            f"but the files beside it are model {version}"
        )
    return model, card


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError as exc:
        raise InvalidInput(
            f"{path}: missing; a model folder holds {', '.join((*MODEL_FILES, CARD_FILE))}"
        ) from exc
    except OSError as exc:
        raise InvalidInput(f"{path}: cannot read ({exc.strerror})") from exc
