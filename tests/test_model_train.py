"""The churn model core on a synthetic table with a known relationship to the label."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from retention.errors import InvalidInput
from retention.kpis import KpiTarget
from retention.model.card import ModelCard, build_card
from retention.model.evaluate import compare_with_logistic, evaluate, make_folds
from retention.model.persist import CARD_FILE, load_model, save_model
from retention.model.predict import ChurnModel
from retention.model.quality import calibration_error, fpr_threshold, mean_figures
from retention.model.spec import (
    SEED_SPEC,
    Feature,
    FeatureSpec,
    check_table,
    design_matrix,
    load_feature_spec,
)
from retention.model.train import train_churn_model
from retention.scoring.risk import SEED_FEATURES

HORIZON_DAYS = 180.0
SEED = 7
TRAIN_ROWS = 3000
HELD_OUT_ROWS = 4000
FOLDS = 3

SPEC = FeatureSpec(
    features=[
        Feature(column="usage"),
        Feature(column="decline"),
        Feature(column="tickets"),
        Feature(column="plan", kind="categorical"),
        Feature(column="champion_left", kind="boolean"),
    ]
)


def synthetic_table(rows: int, seed: int) -> pd.DataFrame:
    """churned ~ Bernoulli(sigmoid(logit)) with a known logit holding a square, a step and an
    interaction (which a logistic regression on the raw columns cannot fit), a category and a
    flag. Churners churn sooner the riskier they are; the others are censored at 180 days.
    10% of usage and 5% of plan are blank (at random, so blanks carry no signal)."""
    rng = np.random.default_rng(seed)
    usage = rng.normal(size=rows)
    decline = rng.uniform(0, 1, rows)
    tickets = rng.poisson(2, rows).astype(float)
    plan = rng.choice(
        np.array(["basic", "pro", "enterprise"], dtype=object), rows, p=[0.5, 0.35, 0.15]
    )
    champion_left = rng.random(rows) < 0.2
    plan_effect = pd.Series(plan).map({"basic": 0.6, "pro": 0.0, "enterprise": -0.8}).to_numpy()
    steep = decline > 0.6
    logit = (
        -2.6
        - 0.8 * usage
        + 0.6 * usage**2
        + 1.0 * steep
        + 2.0 * steep * (tickets >= 3)
        + plan_effect
        + 1.0 * champion_left
    )
    probability = 1 / (1 + np.exp(-logit))
    churned = rng.random(rows) < probability
    duration = np.where(
        churned, 1 + (HORIZON_DAYS - 1) * rng.beta(1, 1 + 3 * probability), HORIZON_DAYS
    )
    usage[rng.random(rows) < 0.1] = np.nan
    plan[rng.random(rows) < 0.05] = None
    return pd.DataFrame(
        {
            "usage": usage,
            "decline": decline,
            "tickets": tickets,
            "plan": plan,
            "champion_left": champion_left,
            "churned": churned,
            "duration_days": duration,
        }
    )


@pytest.fixture(scope="module")
def table() -> pd.DataFrame:
    return synthetic_table(TRAIN_ROWS, seed=1)


@pytest.fixture(scope="module")
def held_out() -> pd.DataFrame:
    return synthetic_table(HELD_OUT_ROWS, seed=2)


@pytest.fixture(scope="module")
def model(table: pd.DataFrame) -> ChurnModel:
    return train_churn_model(table, SPEC, seed=SEED)


@pytest.fixture(scope="module")
def card(model: ChurnModel, table: pd.DataFrame) -> ModelCard:
    return build_card(model, table, seed=SEED, folds=FOLDS)


def test_cross_validated_model_is_at_least_as_good_as_the_logistic_baseline(
    card: ModelCard,
) -> None:
    assert card.figures.roc_auc >= card.baseline_figures.roc_auc - 0.01
    assert card.figures.roc_auc > 0.7
    assert card.figures.rows == card.baseline_figures.rows == TRAIN_ROWS
    assert card.figures.base_rate == pytest.approx(card.base_rate)
    assert card.figures.majority_accuracy == pytest.approx(max(card.base_rate, 1 - card.base_rate))
    assert card.figures.accuracy > card.figures.majority_accuracy


def test_probabilities_are_calibrated_on_held_out_rows(
    model: ChurnModel, held_out: pd.DataFrame
) -> None:
    probability = model.score(held_out).probability
    assert calibration_error(held_out["churned"].to_numpy(dtype=int), probability) <= 0.05


def test_drivers_and_bias_sum_to_the_margin(model: ChurnModel, held_out: pd.DataFrame) -> None:
    rows = held_out.head(200)
    predictions = model.predict(rows)
    margins = model.classifier.inplace_predict(model.matrix(rows), predict_type="margin")
    for prediction, margin in zip(predictions, margins, strict=True):
        contributions = [value for _, value in prediction.drivers]
        assert sorted(name for name, _ in prediction.drivers) == sorted(SPEC.columns)
        assert contributions == sorted(contributions, reverse=True)
        assert sum(contributions) + prediction.bias == pytest.approx(margin, abs=1e-4)
        assert prediction.margin == pytest.approx(margin)
    approximate = model.score(rows, contributions=True, method="approximate").contributions
    assert approximate is not None
    np.testing.assert_allclose(approximate.sum(axis=1), margins, atol=1e-4)


def test_top_drivers_and_predictions_without_drivers(
    model: ChurnModel, held_out: pd.DataFrame
) -> None:
    rows = held_out.head(20)
    full, top, bare = (
        model.predict(rows),
        model.predict(rows, top=2),
        model.predict(rows, drivers=False),
    )
    for a, b, c in zip(full, top, bare, strict=True):
        assert b.drivers == a.drivers[:2]
        assert c.drivers == () and c.probability == a.probability
        assert 0 <= a.confidence <= 1 and a.time_to_churn_days >= 1


def test_card_figures_match_a_fresh_evaluation_of_each_fold(
    card: ModelCard, table: pd.DataFrame
) -> None:
    folds = make_folds(table, SPEC, SEED, FOLDS)
    fresh = [
        evaluate(train_churn_model(table.iloc[train], SPEC, seed=SEED), table.iloc[test], SPEC)
        for train, test in folds
    ]
    assert fresh == card.fold_figures
    assert mean_figures(fresh) == card.figures
    baseline = compare_with_logistic(table, SPEC, folds, SEED)
    assert mean_figures(baseline) == card.baseline_figures


def test_survival_model_gives_churners_shorter_times(
    model: ChurnModel, held_out: pd.DataFrame
) -> None:
    days = model.score(held_out).time_to_churn_days
    churned = held_out["churned"].to_numpy()
    assert days[churned].mean() < days[~churned].mean()
    assert days.min() >= 1


def test_categorical_and_boolean_columns_are_read_natively(
    model: ChurnModel, held_out: pd.DataFrame
) -> None:
    assert model.classifier.feature_types == ["float", "float", "float", "c", "float"]
    assert model.categories == {"plan": ["basic", "enterprise", "pro"]}
    row = held_out.head(1)
    by_plan = {
        plan: model.score(row.assign(plan=plan)).probability[0] for plan in ["basic", "enterprise"]
    }
    assert by_plan["basic"] > by_plan["enterprise"]  # the generator's plan effect
    unseen = model.score(row.assign(plan="platinum")).probability[0]
    blank = model.score(row.assign(plan=None)).probability[0]
    assert unseen == blank  # a category never seen in training is a blank
    as_text = row.assign(champion_left=row["champion_left"].map({True: "yes", False: "no"}))
    assert model.score(as_text).probability[0] == model.score(row).probability[0]


def test_blanks_are_missing_unless_the_spec_fills_them() -> None:
    df = pd.DataFrame({"a": [1.0, None], "b": [None, "x"], "c": [True, None], "d": [None, 2]})
    spec = FeatureSpec(
        features=[
            Feature(column="a"),
            Feature(column="b", kind="categorical", blanks="other"),
            Feature(column="c", kind="boolean", blanks=False),
            Feature(column="d", blanks="zero"),
        ]
    )
    matrix = design_matrix(df, spec)
    assert np.isnan(matrix["a"][1])
    assert list(matrix["b"]) == ["other", "x"]
    assert list(matrix["c"]) == [1.0, 0.0]
    assert list(matrix["d"]) == [0.0, 2.0]
    missing = design_matrix(df, FeatureSpec(features=[Feature(column="c", kind="boolean")]))
    assert np.isnan(missing["c"][1])


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda df: df.drop(columns="tickets"), "column 'tickets' is missing"),
        (lambda df: df.drop(columns="churned"), "column 'churned' is missing"),
        (lambda df: df.assign(region="eu"), "column 'region' is not in the feature spec"),
        (
            lambda df: df.assign(decline=["0.5", "0.2", "lots", *["0.1"] * (len(df) - 3)]),
            "column 'decline': row 3: 'lots' is not a finite number",
        ),
        (
            lambda df: df.assign(usage=[np.inf, *df["usage"][1:]]),
            "column 'usage': row 1: inf is not a finite number",
        ),
        (
            lambda df: df.assign(champion_left=["yes", "maybe", *["no"] * (len(df) - 2)]),
            "column 'champion_left': row 2: 'maybe' is not true or false",
        ),
        (
            lambda df: df.assign(churned=[None, *df["churned"][1:]]),
            "column 'churned': row 1 is blank",
        ),
        (
            lambda df: df.assign(duration_days=[-3.0, *df["duration_days"][1:]]),
            "column 'duration_days': row 1: -3.0 days is negative",
        ),
    ],
)
def test_a_table_that_does_not_fit_the_spec_is_refused_naming_the_column(
    table: pd.DataFrame, change: object, message: str
) -> None:
    bad = change(table.head(50).copy())  # type: ignore[operator]
    with pytest.raises(InvalidInput, match=message.replace("(", r"\(")):
        check_table(bad, SPEC, "history.csv")
    with pytest.raises(InvalidInput, match="history.csv"):
        train_churn_model(bad, SPEC, seed=SEED, source="history.csv")


def test_a_table_a_model_cannot_learn_from_is_refused(table: pd.DataFrame) -> None:
    few = pd.concat([table[~table["churned"]].head(200), table[table["churned"]].head(3)])
    with pytest.raises(InvalidInput, match="'churned': fewer than 10 churned customers"):
        train_churn_model(few, SPEC, seed=SEED)
    with pytest.raises(InvalidInput, match="column 'plan': blank in every row"):
        train_churn_model(table.head(300).assign(plan=None), SPEC, seed=SEED)


def test_save_then_load_gives_the_same_predictions(
    model: ChurnModel, card: ModelCard, held_out: pd.DataFrame, tmp_path: Path
) -> None:
    save_model(model, card, tmp_path / "m")
    loaded, loaded_card = load_model(tmp_path / "m")
    assert loaded_card == card
    assert loaded.predict(held_out.head(100)) == model.predict(held_out.head(100))
    assert sorted(p.name for p in (tmp_path / "m").iterdir()) == sorted(
        ["model.ubj", "survival.ubj", "calibration.json", "categories.json", "spec.yaml", CARD_FILE]
    )
    assert load_feature_spec(tmp_path / "m" / "spec.yaml") == SPEC


def test_a_broken_model_folder_is_refused_naming_the_file(
    model: ChurnModel, card: ModelCard, tmp_path: Path
) -> None:
    folder = save_model(model, card, tmp_path / "m")
    (folder / "survival.ubj").unlink()
    with pytest.raises(InvalidInput, match=r"survival\.ubj: missing"):
        load_model(folder)
    save_model(model, card, folder)
    (folder / "model.ubj").write_bytes(b"not a model")
    with pytest.raises(InvalidInput, match=r"model\.ubj: not an XGBoost model"):
        load_model(folder)
    save_model(model, card, folder)
    (folder / "calibration.json").write_text('{"platt_slope": 2}')
    with pytest.raises(InvalidInput, match=r"calibration\.json: cannot be read"):
        load_model(folder)
    save_model(model, card, folder)
    (folder / CARD_FILE).write_text(
        card.model_copy(update={"model_version": "0" * 12}).model_dump_json()
    )
    with pytest.raises(InvalidInput, match=r"card\.json: describes model 000000000000"):
        load_model(folder)
    with pytest.raises(InvalidInput, match="the card describes model"):
        save_model(model, card.model_copy(update={"model_version": "x"}), tmp_path / "other")


def test_the_seed_spec_and_a_spec_file(tmp_path: Path) -> None:
    assert SEED_SPEC.columns == list(SEED_FEATURES) and len(SEED_FEATURES) == 16
    assert {f.kind for f in SEED_SPEC.features} == {"numeric"}
    assert (SEED_SPEC.label, SEED_SPEC.duration) == ("churned", "duration_days")
    path = tmp_path / "spec.yaml"
    path.write_text(
        "label: left\nduration: days\nfeatures:\n"
        "  - {column: plan, kind: categorical}\n"
        "  - {column: seats, blanks: 0}\n"
    )
    spec = load_feature_spec(path)
    assert spec.label == "left" and spec.features[1].blanks == 0
    path.write_text("features:\n  - column: seats\n    kind: numeric\n    blanks: lots\n")
    with pytest.raises(InvalidInput, match=r"spec\.yaml:2:5: features\.0: .*cannot be 'lots'"):
        load_feature_spec(path)
    path.write_text("features:\n  - {column: churned}\n")
    with pytest.raises(InvalidInput, match="the label and duration cannot be features"):
        load_feature_spec(path)


@pytest.mark.parametrize(
    "target", [KpiTarget(below=0.10), KpiTarget(at_most=0.05), KpiTarget(below=0.3)]
)
def test_the_threshold_is_the_best_recall_within_the_false_positive_target(
    target: KpiTarget,
) -> None:
    rng = np.random.default_rng(3)
    churned = (rng.random(2000) < 0.2).astype(int)
    probability = np.clip(0.25 * churned + 0.75 * rng.random(2000), 0, 1)

    threshold = fpr_threshold(churned, probability, target)

    def false_positive_rate(at: float) -> float:
        return float((probability[churned == 0] >= at).mean())

    assert target.met(false_positive_rate(threshold))
    lower = probability[probability < threshold].max()  # the next threshold down, more recall
    assert not target.met(false_positive_rate(lower))


def test_the_card_says_how_its_threshold_was_chosen_and_the_folds_keep_near_it(
    model: ChurnModel, card: ModelCard, table: pd.DataFrame
) -> None:
    assert card.false_positive_target == KpiTarget(below=0.10)
    assert "false-positive rate on the validation split is < 0.1" in card.threshold_rule
    assert card.threshold == model.threshold
    # chosen on each fold's own validation split, measured on rows it has not seen
    assert card.figures.false_positive_rate < 0.15
    assert card.figures.recall is not None and card.figures.recall > 0.3
    stricter = train_churn_model(table, SPEC, seed=SEED, false_positives=KpiTarget(below=0.02))
    assert stricter.threshold > model.threshold
