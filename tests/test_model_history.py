"""Training from the database: which customers are labelled and how, the refusals, the
champion a worker follows, the recorded decisions, and the CLI (`model import-history`,
`model train --from-database`, `model history`)."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
from conftest import RULES_DIR
from factories import make_customer
from labelled import labelled_population, train_model_on
from sqlalchemy import Engine
from typer.testing import CliRunner

import starter
from retention.errors import InvalidInput
from retention.model.champion import ChampionScorer
from retention.model.history import history_table, labelled_history, save_history
from retention.model.persist import load_model
from retention.model.quality import ModelFigures
from retention.model.retrain import (
    Challenger,
    Champion,
    HoldoutFigures,
    RetrainPolicy,
    decide,
    install_model,
    judge,
)
from retention.model.scorer import load_scorer
from retention.model.training_data import TrainingSet, write_training_file
from retention.rulebook.loader import Rulebook, load_rulebook
from retention.runtime.settings import ROOT
from retention.scoring.health import score_health
from retention.store.db import make_engine, session
from retention.store.model_versions import model_decisions, promoted_model
from retention.store.records import save_customer
from retention.store.tables import JourneyRow

DEFAULT_MODEL = ROOT / "models" / "churn-default"
TODAY = date(2026, 11, 26)
runner = CliRunner()


@pytest.fixture(scope="module")
def rulebook() -> Rulebook:
    return load_rulebook(RULES_DIR)


def _one(customer_id: str, snapshot: date, churn: date | None) -> TrainingSet:
    return TrainingSet(
        [make_customer(profile={"customer_id": customer_id})], [snapshot], [churn is not None],
        [churn],
    )  # fmt: skip


def _save(engine: Engine, *sets: TrainingSet) -> None:
    for training_set in sets:
        save_history(engine, training_set)


# ---- labels ---------------------------------------------------------------------------------


@pytest.mark.database
def test_each_customer_is_labelled_from_what_the_database_records(engine: Engine) -> None:
    _save(
        engine,
        _one("left", date(2026, 3, 1), date(2026, 4, 1)),  # churn date on the customer
        _one("stayed", date(2026, 1, 1), None),  # watched for the whole 180 days
        _one("too-recent", TODAY - timedelta(days=30), None),  # not yet known
        _one("gone-before", date(2026, 5, 1), date(2026, 4, 1)),  # snapshot of a lost customer
        _one("journey-churn", date(2026, 2, 1), None),
    )
    with session(engine) as db:  # the service saw this one churn: its journey ended `churned`
        db.add(
            JourneyRow(
                journey_key="k1", workflow_id="retention-journey-churn",
                customer_id="journey-churn", stage="closed", outcome="churned",
                started_at=datetime(2026, 2, 10, tzinfo=UTC),
                finished_at=datetime(2026, 3, 5, 12, tzinfo=UTC),
            )
        )  # fmt: skip

    history = labelled_history(engine, TODAY)

    assert history.customer_ids == ["stayed", "journey-churn", "left"]  # oldest snapshot first
    ts = history.training_set
    assert ts.churned == [False, True, True]
    assert ts.churn_dates == [None, date(2026, 3, 5), date(2026, 4, 1)]
    assert (history.not_yet_labelled, history.churned_before_snapshot) == (1, 1)
    assert "3 labelled customers (2 churned, 1 retained); 1 not labelled yet" in history.describe()


@pytest.mark.database
def test_a_newer_snapshot_of_a_customer_is_not_labelled_with_the_old_date(engine: Engine) -> None:
    _save(engine, _one("acme", date(2026, 1, 1), None))
    save_customer(engine, make_customer(profile={"customer_id": "acme"}))  # today's snapshot

    history = labelled_history(engine)

    assert (history.customer_ids, history.not_yet_labelled) == ([], 1)


@pytest.mark.database
def test_too_little_history_is_refused_with_the_counts(engine: Engine, rulebook: Rulebook) -> None:
    _save(engine, labelled_population(30, seed=3))

    with pytest.raises(InvalidInput, match=r"^database: 30 labelled customers \(\d+ churned"):
        history_table(labelled_history(engine, TODAY), rulebook)


@pytest.mark.database
def test_a_single_class_is_refused_with_the_counts(engine: Engine, rulebook: Rulebook) -> None:
    population = labelled_population(80, seed=3)
    population.churned = [False] * 80
    population.churn_dates = [None] * 80
    _save(engine, population)

    with pytest.raises(InvalidInput, match=r"80 labelled customers \(0 churned, 80 retained\)"):
        history_table(labelled_history(engine, TODAY), rulebook)


# ---- the decision -----------------------------------------------------------------------------


def _figures(auc: float, ece: float) -> ModelFigures:
    return ModelFigures(
        rows=100, base_rate=0.2, roc_auc=auc, pr_auc=0.5, accuracy=0.8, majority_accuracy=0.8,
        threshold=0.3, false_positive_rate=0.1, calibration_error=ece, early_warning_days=None,
    )  # fmt: skip


POLICY = RetrainPolicy(models_root=Path("unused"), initial_champion="baseline",
                       auc_tolerance=0.01, ece_tolerance=0.02)  # fmt: skip


@pytest.mark.parametrize(
    ("challenger", "champion", "decision", "why"),
    [
        ((0.80, 0.05), (0.79, 0.05), "promoted", "not worse"),
        ((0.795, 0.06), (0.80, 0.05), "promoted", "not worse"),  # within both tolerances
        ((0.78, 0.03), (0.80, 0.05), "kept", "lower ROC AUC 0.780 vs 0.800"),
        ((0.85, 0.08), (0.80, 0.05), "kept", "higher ECE 0.080 vs 0.050"),
    ],
)
def test_promoted_only_when_not_worse_on_auc_and_calibration(
    challenger: tuple[float, float], champion: tuple[float, float], decision: str, why: str
) -> None:
    found, reason = judge(_figures(*challenger), _figures(*champion), POLICY)

    assert found == decision and why in reason


@pytest.mark.database
def test_a_decision_is_recorded_once_per_retrain(engine: Engine) -> None:
    _, card = load_model(DEFAULT_MODEL)
    challenger = Challenger(version="abc123", path="/models/abc123",
                            card=card.model_dump(mode="json"), training_rows=900,
                            holdout_ids=["a"])  # fmt: skip
    held_out = HoldoutFigures(
        rows=100, challenger=_figures(0.9, 0.02), champion=_figures(0.8, 0.03),
        champion_model=Champion(version="baseline-0", path=""),
    )  # fmt: skip

    first = decide(engine, POLICY, "model-retrain/run-1", challenger, held_out)
    retried = decide(engine, POLICY, "model-retrain/run-1", challenger, held_out)

    assert first == retried and first.decision == "promoted"
    [row] = model_decisions(engine)
    assert (row.version, row.champion_version, row.card["rows"]) == (
        "abc123", "baseline-0", card.rows,
    )  # fmt: skip
    assert promoted_model(engine) == row


def test_a_model_is_installed_whole_and_a_retry_keeps_it(
    rulebook: Rulebook, tmp_path: Path
) -> None:
    version = train_model_on(labelled_population(600, seed=6), rulebook, tmp_path / "m", seed=6)
    model, card = load_model(tmp_path / "m")
    root = tmp_path / "models"
    root.mkdir()

    first = install_model(model, card, root)
    (first / "card.json").touch()  # a retry must not rewrite what a worker may be reading
    stamp = (first / "card.json").stat().st_mtime_ns
    again = install_model(model, card, root)

    assert first == again == root / version
    assert [p.name for p in root.iterdir()] == [version]  # no temporary folder left
    assert (again / "card.json").stat().st_mtime_ns == stamp


# ---- the champion a worker scores with ----------------------------------------------------------


@pytest.mark.database
def test_the_scorer_follows_a_promotion_at_its_next_check(
    engine: Engine, rulebook: Rulebook, tmp_path: Path
) -> None:
    promoted_version = train_model_on(labelled_population(600, seed=5), rulebook,
                                      tmp_path / "promoted", seed=5)  # fmt: skip
    now = [0.0]
    scorer = ChampionScorer(engine, load_scorer(DEFAULT_MODEL), check_seconds=30,
                            clock=lambda: now[0])  # fmt: skip
    customer = make_customer()
    health = score_health(customer, datetime.now(UTC), rulebook.scoring.health)

    def version() -> str:
        return scorer.predict_one(customer, health, 0, rulebook.scoring.risk, TODAY).model_version

    before = version()
    decide(engine, POLICY, "r/1", _challenger(promoted_version, tmp_path / "promoted"),
           _held_out(better=True))  # fmt: skip
    now[0] = 10.0
    within_the_interval = version()
    now[0] = 31.0
    after = version()

    assert before == within_the_interval == load_model(DEFAULT_MODEL)[1].model_version
    assert after == promoted_version == scorer.version


@pytest.mark.database
def test_a_promoted_folder_that_cannot_load_keeps_the_model_in_use(
    engine: Engine, tmp_path: Path
) -> None:
    scorer = ChampionScorer(engine, None, check_seconds=0)  # baseline-0
    decide(engine, POLICY, "r/1", _challenger("deadbeef0000", tmp_path / "missing"),
           _held_out(better=True))  # fmt: skip

    assert scorer.current() is None and scorer.version == "baseline-0"


def _challenger(version: str, path: Path) -> Challenger:
    return Challenger(version=version, path=str(path), card={}, training_rows=1, holdout_ids=[])


def _held_out(*, better: bool) -> HoldoutFigures:
    ours = _figures(0.9, 0.02) if better else _figures(0.6, 0.2)
    return HoldoutFigures(rows=10, challenger=ours, champion=_figures(0.8, 0.03),
                          champion_model=Champion(version="baseline-0", path=""))  # fmt: skip


# ---- the CLI ------------------------------------------------------------------------------------


def test_import_history_then_train_from_the_database(cli_database: str, tmp_path: Path) -> None:
    write_training_file(labelled_population(600, seed=7), tmp_path / "history.csv")

    history = str(tmp_path / "history.csv")
    imported = runner.invoke(starter.app, ["model", "import-history", history])
    trained = runner.invoke(starter.app, ["model", "train", "--from-database",
                                          "--out", str(tmp_path / "churn")])  # fmt: skip

    assert imported.exit_code == 0, imported.output
    assert "stored 600 customers" in imported.stdout
    assert trained.exit_code == 0, trained.output
    assert "database: 600 labelled customers" in trained.stdout
    _, card = load_model(tmp_path / "churn")
    assert card.rows == 600 and card.model_version in trained.stdout


def test_training_from_a_nearly_empty_database_says_how_many(
    cli_database: str, tmp_path: Path
) -> None:
    save_history(make_engine(cli_database), labelled_population(20, seed=7))

    result = runner.invoke(starter.app, ["model", "train", "--from-database",
                                         "--out", str(tmp_path / "churn")])  # fmt: skip

    assert result.exit_code == 2
    assert "20 labelled customers" in result.output and "at least 50" in result.output
    assert not (tmp_path / "churn").exists()


def test_train_wants_exactly_one_source(cli_database: str, tmp_path: Path) -> None:
    neither = runner.invoke(starter.app, ["model", "train", "--out", str(tmp_path / "m")])
    both = runner.invoke(starter.app, ["model", "train", "--from-database", "--data", "x.csv",
                                       "--out", str(tmp_path / "m")])  # fmt: skip

    assert neither.exit_code == both.exit_code == 2
    assert "--data FILE or --from-database" in neither.output + both.output


def test_history_lists_every_decision(cli_database: str) -> None:
    engine = make_engine(cli_database)
    decide(engine, POLICY, "r/1", _challenger("aaaa11112222", Path("/m/a")), _held_out(better=True))
    decide(engine, POLICY, "r/2", _challenger("bbbb33334444", Path("/m/b")),
           _held_out(better=False))  # fmt: skip

    listed = runner.invoke(starter.app, ["model", "history", "--json"])
    shown = runner.invoke(starter.app, ["model", "history"])

    assert listed.exit_code == 0, listed.output
    rows = json.loads(listed.stdout)
    assert [(r["version"], r["decision"]) for r in rows] == [
        ("aaaa11112222", "promoted"), ("bbbb33334444", "kept"),
    ]  # fmt: skip
    assert rows[1]["reason"].startswith("challenger worse: lower ROC AUC 0.600 vs 0.800")
    assert rows[0]["figures"]["roc_auc"] == 0.9 and rows[0]["champion_figures"]["roc_auc"] == 0.8
    assert shown.exit_code == 0, shown.output
    assert "aaaa11112222" in shown.stdout and "kept" in shown.stdout
    assert "workers score with aaaa11112222 (/m/a)" in shown.stdout
