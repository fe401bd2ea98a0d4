"""A trained model as files (bytes) and back, and its version: a content hash of those files.

- model.ubj: the classifier (XGBoost's binary JSON); survival.ubj: the survival model;
- calibration.json: Platt slope and intercept, the flag threshold, the validation AUC;
- categories.json: each categorical column's categories in training (their order is the code
  XGBoost's splits use);
- spec.yaml: the feature spec, readable by `load_feature_spec` to train again on it.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping
from typing import TypeVar

import xgboost as xgb
import yaml
from pydantic import BaseModel, ConfigDict, TypeAdapter, ValidationError

from retention.errors import InvalidInput
from retention.model.predict import PREDICTION_THREADS, Calibration, ChurnModel
from retention.model.spec import FeatureSpec

CLASSIFIER_FILE = "model.ubj"
SURVIVAL_FILE = "survival.ubj"
CALIBRATION_FILE = "calibration.json"
CATEGORIES_FILE = "categories.json"
SPEC_FILE = "spec.yaml"
MODEL_FILES = (CLASSIFIER_FILE, SURVIVAL_FILE, CALIBRATION_FILE, CATEGORIES_FILE, SPEC_FILE)
VERSION_LENGTH = 12
CATEGORIES = TypeAdapter(dict[str, list[str]])
_T = TypeVar("_T")


class CalibrationFile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    platt_slope: float
    platt_intercept: float
    threshold: float
    validation_auc: float


def model_files(model: ChurnModel) -> dict[str, bytes]:
    calibration = CalibrationFile(
        platt_slope=model.calibration.slope,
        platt_intercept=model.calibration.intercept,
        threshold=model.threshold,
        validation_auc=model.validation_auc,
    )
    spec = yaml.safe_dump(model.spec.model_dump(mode="json"), sort_keys=False)
    return {
        CLASSIFIER_FILE: bytes(model.classifier.save_raw("ubj")),
        SURVIVAL_FILE: bytes(model.survival.save_raw("ubj")),
        CALIBRATION_FILE: calibration.model_dump_json(indent=2).encode(),
        CATEGORIES_FILE: json.dumps(dict(model.categories), indent=2).encode(),
        SPEC_FILE: spec.encode(),
    }


def model_version(files: Mapping[str, bytes]) -> str:
    """sha256 of the model files' names and contents, first 12 hex digits."""
    digest = hashlib.sha256()
    for name in MODEL_FILES:
        digest.update(name.encode() + b"\0" + files[name] + b"\0")
    return digest.hexdigest()[:VERSION_LENGTH]


def model_from_files(files: Mapping[str, bytes], where: str) -> ChurnModel:
    """The model in `files` (as `model_files` wrote them); `where` names their folder in errors."""
    spec = _parse(files, SPEC_FILE, where, lambda t: FeatureSpec.model_validate(yaml.safe_load(t)))
    calibration = _parse(files, CALIBRATION_FILE, where, CalibrationFile.model_validate_json)
    categories = _parse(files, CATEGORIES_FILE, where, CATEGORIES.validate_json)
    classifier, survival = (
        _booster(files, name, where) for name in (CLASSIFIER_FILE, SURVIVAL_FILE)
    )
    for name, booster in ((CLASSIFIER_FILE, classifier), (SURVIVAL_FILE, survival)):
        if booster.feature_names != spec.columns:
            raise InvalidInput(f"{where}/{name}: its features are not those of {SPEC_FILE}")
    return ChurnModel(
        spec=spec,
        classifier=classifier,
        survival=survival,
        calibration=Calibration(calibration.platt_slope, calibration.platt_intercept),
        categories=categories,
        threshold=calibration.threshold,
        validation_auc=calibration.validation_auc,
    )


def _parse(files: Mapping[str, bytes], name: str, where: str, parse: Callable[[str], _T]) -> _T:
    try:
        return parse(files[name].decode())
    except (ValueError, yaml.YAMLError, ValidationError) as exc:
        raise InvalidInput(f"{where}/{name}: cannot be read ({exc})") from exc


def _booster(files: Mapping[str, bytes], name: str, where: str) -> xgb.Booster:
    try:
        return xgb.Booster(
            model_file=bytearray(files[name]), params={"nthread": PREDICTION_THREADS}
        )
    except xgb.core.XGBoostError as exc:
        reason = str(exc).strip().splitlines()[0]
        raise InvalidInput(f"{where}/{name}: not an XGBoost model ({reason})") from exc
