"""`starter.py model train` and `model evaluate`, as a data owner runs them on their files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

import starter
from retention.model.generator import generate_population
from retention.model.persist import load_model
from retention.model.training_data import write_training_file


def run(*args: str) -> Result:
    return CliRunner().invoke(starter.app, list(args))


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("model")
    write_training_file(generate_population(1_500, seed=21), folder / "history.csv")
    result = run("model", "train", "--data", str(folder / "history.csv"), "--out",
                 str(folder / "churn"), "--seed", "21")  # fmt: skip
    assert result.exit_code == 0, result.output
    return folder


def test_train_writes_a_model_whose_card_is_shown(trained: Path) -> None:
    model, card = load_model(trained / "churn")

    assert card.rows == 1_500 and card.folds == 5
    assert card.baseline_figures.rows == card.figures.rows == 1_500
    assert 0.6 < card.figures.roc_auc <= 1
    assert card.figures.majority_accuracy == pytest.approx(1 - card.base_rate, abs=1e-9)
    assert model.spec == card.features


def test_evaluate_on_other_history_beside_the_logistic_baseline(
    trained: Path, tmp_path: Path
) -> None:
    later = tmp_path / "later.parquet"
    write_training_file(generate_population(800, seed=22), later)

    result = run("model", "evaluate", "--data", str(later), "--model", str(trained / "churn"),
                 "--baseline", "logistic", "--json")  # fmt: skip

    assert result.exit_code == 0, result.output
    figures = json.loads(result.stdout)
    assert list(figures)[1:] == ["XGBoost recipe, k-fold", "logistic, same folds"]
    assert {f["rows"] for f in figures.values()} == {800}
    assert len({f["base_rate"] for f in figures.values()}) == 1
    assert all(0.6 < f["roc_auc"] <= 1 for f in figures.values())


def test_a_training_file_missing_a_column_is_named(trained: Path, tmp_path: Path) -> None:
    lines = (trained / "history.csv").read_text().splitlines()
    header = lines[0].split(",")
    drop = header.index("churned")
    broken = tmp_path / "broken.csv"
    broken.write_text(
        "\n".join(",".join(c for i, c in enumerate(line.split(",")) if i != drop)
                  for line in lines[:20]) + "\n"
    )  # fmt: skip

    result = run("model", "train", "--data", str(broken), "--out", str(tmp_path / "m"))

    assert result.exit_code != 0
    assert "churned" in result.output
    assert not (tmp_path / "m").exists()


def test_an_unknown_baseline_is_refused(trained: Path) -> None:
    result = run("model", "evaluate", "--data", str(trained / "history.csv"), "--model",
                 str(trained / "churn"), "--baseline", "forest")  # fmt: skip

    assert result.exit_code != 0 and "logistic" in result.output
