"""The churn model's data: seed features, the population generator, training files and table."""

from __future__ import annotations

import csv
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from factories import make_customer, read_csv_rows, write_csv_rows
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from typer.testing import CliRunner

import starter
from retention.customer import CustomerSnapshot
from retention.errors import InvalidInput
from retention.model.features import feature_frame, seed_features
from retention.model.generator import BASE_CHURN_BAND, HORIZON_DAYS, generate_population
from retention.model.training_data import (
    TrainingSet,
    read_training_file,
    training_table,
    write_training_csv,
    write_training_file,
)
from retention.population import write_customers_csv
from retention.rulebook.loader import Rulebook, load_rulebook
from retention.runtime.settings import ROOT
from retention.scoring.health import HealthScore
from retention.scoring.risk import SEED_FEATURES

AS_OF = date(2026, 1, 1)


@pytest.fixture(scope="module")
def rulebook() -> Rulebook:
    return load_rulebook(ROOT / "rules")


def health(overall: float = 55.0, alerts: tuple[str, ...] = ()) -> HealthScore:
    categories = dict.fromkeys(
        ("product_usage", "engagement", "support", "financial", "relationship"), overall
    )
    return HealthScore(
        overall=overall,
        categories=categories,  # type: ignore[arg-type]
        trend="declining",
        status="at_risk",
        alerts=list(alerts),
        scored_at=datetime(2026, 1, 1, tzinfo=UTC),
    )


# ---- features ---------------------------------------------------------------------------------


def test_each_seed_feature_of_a_known_snapshot() -> None:
    snapshot = make_customer(
        profile={"signup_date": "2025-01-01"},
        usage={
            "logins_per_week": 3.0,
            "logins_per_week_prior": 5.0,
            "features_used": 6,
            "total_features": 20,
            "days_since_last_login": 12,
        },
        engagement={"email_open_rate": 0.25},
        support={"tickets_90d": 4, "avg_ticket_sentiment": -0.4},
        financial={"annual_contract_value": 30_000.0, "payment_delays_90d": 2, "discount_pct": 15},
        relationship={"nps": 4},
        health_history=[70.0, 64.0, 62.0, 58.0],
    )
    features = seed_features(
        snapshot, health(55.0, ("usage_low", "payment_delays")), AS_OF, expansion_count=2
    )

    assert list(features) == list(SEED_FEATURES)
    assert features == {
        "logins_per_week": 3.0,
        "usage_decline": pytest.approx(0.4),  # 1 - 3 / 5
        "feature_adoption": 0.3,  # 6 / 20
        "days_since_last_active": 12.0,
        "email_open_rate": 0.25,
        "support_tickets": 4.0,
        "ticket_sentiment": -0.4,
        "contract_value": 30_000.0,
        "payment_delays": 2.0,
        "discount_pct": 15.0,
        "nps": 4.0,
        "tenure_days": 365.0,  # 2025-01-01 to 2026-01-01
        "expansion_count": 2.0,
        "health_score": 55.0,
        "health_trend": -6.3,  # 55 - mean(64, 62, 58)
        "health_alerts": 2.0,
    }


def test_missing_features_are_none_and_nan_in_the_frame() -> None:
    unknown = make_customer(
        relationship={"nps": None},
        support={"tickets_90d": 0, "avg_ticket_sentiment": 0.0},
        profile={"signup_date": None},
    )
    features = seed_features(unknown, health(), AS_OF)
    missing = {"nps", "tenure_days", "ticket_sentiment", "expansion_count"}
    assert {name for name, value in features.items() if value is None} == missing
    assert features["health_trend"] == 0.0  # no history: no trend

    known = make_customer(profile={"signup_date": "2026-02-01"})  # after as_of: counts as new
    frame = feature_frame([unknown, known], [health(), health()], [AS_OF, AS_OF], [None, 3])
    assert list(frame.columns) == list(SEED_FEATURES)
    assert (frame.dtypes == np.float64).all()
    assert set(frame.columns[frame.iloc[0].isna()]) == missing
    assert frame.iloc[1]["tenure_days"] == 0.0
    assert frame.iloc[1]["expansion_count"] == 3.0
    assert not frame.iloc[1].drop("ticket_sentiment").isna().any()
    assert feature_frame([], [], []).shape == (0, len(SEED_FEATURES))


# ---- the generator ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def population() -> TrainingSet:
    return generate_population(5_000, seed=11)


def test_the_generator_is_deterministic_for_a_seed_and_differs_across_seeds() -> None:
    first, again = generate_population(300, seed=5), generate_population(300, seed=5)
    assert first == again
    other = generate_population(300, seed=6)
    assert [c.customer_id for c in other.customers] == [c.customer_id for c in first.customers]
    assert other.customers != first.customers
    assert other.churned != first.churned


def test_churn_rate_is_within_the_documented_band(population: TrainingSet) -> None:
    low, high = BASE_CHURN_BAND
    assert low <= population.churn_rate <= high


def test_churned_customers_churn_within_the_horizon(population: TrainingSet) -> None:
    outcomes = zip(
        population.snapshot_dates, population.churned, population.churn_dates, strict=True
    )
    for snapshot, churned, churn in outcomes:
        if churned:
            assert churn is not None
            assert 1 <= (churn - snapshot).days <= HORIZON_DAYS
        else:
            assert churn is None


def test_riskier_customers_churn_sooner(population: TrainingSet, rulebook: Rulebook) -> None:
    table = training_table(population, rulebook.scoring)
    churned = table[table["churned"]]
    low_health = churned["health_score"] < churned["health_score"].median()
    days = churned["duration_days"]
    assert days[low_health].mean() < days[~low_health].mean()


def test_every_generated_snapshot_validates_and_is_plausible(population: TrainingSet) -> None:
    for customer in population.customers:
        assert CustomerSnapshot.model_validate(customer.model_dump()) == customer
    ids = [c.customer_id for c in population.customers]
    assert ids[:2] == ["gen-000001", "gen-000002"] and len(set(ids)) == len(ids)
    assert all(c.profile.email.endswith("@example.com") for c in population.customers)
    signups = [c.profile.signup_date for c in population.customers]
    assert all(day is None or day < AS_OF for day in signups)
    assert any(day is None for day in signups)
    assert {c.profile.segment for c in population.customers} == {"smb", "mid_market", "enterprise"}
    assert {c.relationship.champion_status for c in population.customers} == {
        "active",
        "at_risk",
        "left",
        "none",
    }
    assert all(len(c.health_history) <= 3 for c in population.customers)
    assert any(c.relationship.nps is None for c in population.customers)


def test_contacts_leave_the_rest_of_a_generated_population_as_it_was() -> None:
    plain = generate_population(200, seed=5)
    with_people = generate_population(200, seed=5, contacts=25)

    assert all(c.contacts == [] for c in plain.customers)
    assert [c.model_copy(update={"contacts": []}) for c in with_people.customers] == plain.customers
    assert with_people.churn_dates == plain.churn_dates


def test_generated_contacts_hold_the_roles_an_account_keeps() -> None:
    customers = generate_population(200, seed=5, contacts=25).customers

    emails = [p.email for c in customers for p in c.contacts]
    phones = [p.phone for c in customers for p in c.contacts if p.phone is not None]
    assert len(emails) == 200 * 25 and len(set(emails)) == len(emails)
    assert len(set(phones)) == len(phones) > 0
    for customer in customers:
        roles = [p.roles[0] for p in customer.contacts]
        champion = roles.count("champion")
        assert roles[0] == "executive_sponsor" and roles[2:5] == ["admin", "admin", "billing"]
        assert roles.count("user") == 25 - 4 - champion
        assert customer.primary_contact is customer.contacts[2]
    statuses = {c.relationship.champion_status for c in customers}
    assert statuses == {"active", "at_risk", "left", "none"}
    assert any(not p.active for c in customers for p in c.contacts if p.roles == ["user"])


def test_fewer_contacts_take_the_leading_roles_first() -> None:
    customer = generate_population(1, seed=5, contacts=2).customers[0]

    assert [p.roles for p in customer.contacts] in (
        [["executive_sponsor"], ["champion"]],
        [["executive_sponsor"], ["user"]],  # an account without a champion
    )
    assert customer.primary_contact.contact_id == "primary"  # the profile's person: not listed


def test_the_signal_is_learnable_but_noisy(rulebook: Rulebook) -> None:
    """A logistic regression on the seed features reaches AUC > 0.7 on held-out customers."""
    population = generate_population(3_000, seed=2)
    table = training_table(population, rulebook.scoring, expansion=rulebook.expansion)
    features, labels = table[list(SEED_FEATURES)], table["churned"].to_numpy()
    train_x, test_x, train_y, test_y = train_test_split(
        features, labels, test_size=0.3, random_state=0, stratify=labels
    )
    model = make_pipeline(SimpleImputer(), StandardScaler(), LogisticRegression(max_iter=1000))
    model.fit(train_x, train_y)
    auc = roc_auc_score(test_y, model.predict_proba(test_x)[:, 1])
    assert 0.7 < auc < 0.95  # learnable, and not a giveaway


# ---- training files ---------------------------------------------------------------------------


def small_set() -> TrainingSet:
    return generate_population(40, seed=3)


@pytest.mark.parametrize("name", ["train.csv", "train.parquet"])
def test_training_file_round_trip(tmp_path: Path, name: str) -> None:
    written = small_set()
    assert any(written.churned) and not all(written.churned)
    write_training_file(written, tmp_path / name)
    assert read_training_file(tmp_path / name) == written


def test_the_csv_has_the_population_columns_then_the_labels(tmp_path: Path) -> None:
    path = tmp_path / "train.csv"
    write_training_csv(small_set(), path)
    with path.open(encoding="utf-8", newline="") as handle:
        header = next(csv.reader(handle))
        handle.seek(0)
        first = next(csv.DictReader(handle))
    assert header[:2] == ["profile.customer_id", "profile.name"]
    assert header[-3:] == ["snapshot_date", "churned", "churn_date"]
    assert first["snapshot_date"] == "2026-01-01"
    assert first["churned"] in ("true", "false")


def test_a_typed_parquet_file_from_pandas_reads(tmp_path: Path) -> None:
    """A team's own export: pandas types, NaN for blanks, real dates."""
    source = tmp_path / "train.csv"
    write_training_csv(small_set(), source)
    frame = pd.read_csv(source, dtype={"profile.phone": str})
    frame["snapshot_date"] = pd.to_datetime(frame["snapshot_date"])
    frame["churned"] = frame["churned"].astype(bool)
    frame.to_parquet(tmp_path / "pandas.parquet")
    assert read_training_file(tmp_path / "pandas.parquet") == read_training_file(source)


def rows(tmp_path: Path) -> list[dict[str, str]]:
    path = tmp_path / "source.csv"
    write_training_csv(small_set(), path)
    return read_csv_rows(path)


def churned_index(table: list[dict[str, str]]) -> int:
    return next(i for i, row in enumerate(table) if row["churned"] == "true")


def refusal(path: Path) -> str:
    with pytest.raises(InvalidInput) as error:
        read_training_file(path)
    return str(error.value)


def test_a_missing_or_extra_column_is_refused_by_name(tmp_path: Path) -> None:
    table = rows(tmp_path)
    for row in table:
        del row["churned"]
    path = write_csv_rows(tmp_path / "missing.csv", table)
    assert refusal(path) == f"{path}:1: missing column 'churned'"

    table = rows(tmp_path)
    for row in table:
        row["churn_reason"] = "price"
    path = write_csv_rows(tmp_path / "extra.csv", table)
    assert refusal(path) == f"{path}:1: unknown column 'churn_reason'"


@pytest.mark.parametrize(
    ("column", "cell", "message"),
    [
        ("churned", "maybe", "churned: expected true or false, got 'maybe'"),
        ("snapshot_date", "01/02/2026", "snapshot_date: expected an ISO date, got '01/02/2026'"),
        ("snapshot_date", "", "snapshot_date: required"),
        ("usage.total_features", "ten", "usage.total_features: Input should be a valid integer"),
    ],
)
def test_a_badly_typed_cell_is_refused_with_file_line_and_column(
    tmp_path: Path, column: str, cell: str, message: str
) -> None:
    table = rows(tmp_path)
    table[2][column] = cell
    path = write_csv_rows(tmp_path / "bad.csv", table)
    assert refusal(path).startswith(f"{path}:4: {message}")


def test_inconsistent_outcomes_are_refused(tmp_path: Path) -> None:
    table = rows(tmp_path)
    i = churned_index(table)
    table[i]["churn_date"] = "2025-12-31"
    path = write_csv_rows(tmp_path / "early.csv", table)
    assert refusal(path) == (
        f"{path}:{i + 2}: churn_date: 2025-12-31 is before snapshot_date 2026-01-01"
    )

    table[i]["churn_date"] = ""
    path = write_csv_rows(tmp_path / "undated.csv", table)
    assert refusal(path) == f"{path}:{i + 2}: churn_date: required when churned is true"

    table = rows(tmp_path)
    table[0].update(churned="false", churn_date="2026-02-01")
    path = write_csv_rows(tmp_path / "stayed.csv", table)
    assert refusal(path) == f"{path}:2: churn_date: must be blank when churned is false"


def test_parquet_errors_name_the_row_and_column(tmp_path: Path) -> None:
    path = tmp_path / "train.parquet"
    write_training_file(small_set(), path)
    table = pq.read_table(path)
    dates = table.column("churn_date").to_pylist()
    churned = table.column("churned").to_pylist()
    i = churned.index(True)
    dates[i] = None
    index = table.column_names.index("churn_date")
    pq.write_table(table.set_column(index, "churn_date", pa.array(dates, pa.string())), path)
    assert refusal(path) == f"{path}:row {i + 1}: churn_date: required when churned is true"

    path.write_text("not parquet", encoding="utf-8")
    assert refusal(path).startswith(f"{path}: not a Parquet file")


def test_the_writer_refuses_an_inconsistent_outcome(tmp_path: Path) -> None:
    written = small_set()
    i = written.churned.index(False)
    written.churn_dates[i] = AS_OF + timedelta(days=3)
    with pytest.raises(InvalidInput, match="churn_date: must be blank when churned is false"):
        write_training_csv(written, tmp_path / "bad.csv")
    with pytest.raises(ValueError, match="differ in length"):
        replace(written, churned=[])


def test_a_plain_population_is_not_a_training_file(tmp_path: Path) -> None:
    path = tmp_path / "population.csv"
    write_customers_csv([make_customer()], path)
    assert refusal(path) == (f"{path}:1: missing columns 'snapshot_date', 'churned', 'churn_date'")


# ---- the training table -----------------------------------------------------------------------


def test_training_table_censors_at_the_horizon(rulebook: Rulebook) -> None:
    customers = [make_customer(profile={"customer_id": f"c{i}"}) for i in range(3)]
    outcomes = TrainingSet(
        customers=customers,
        snapshot_dates=[AS_OF] * 3,
        churned=[True, False, True],
        churn_dates=[AS_OF + timedelta(days=30), None, AS_OF + timedelta(days=200)],
    )
    table = training_table(outcomes, rulebook.scoring, expansion=rulebook.expansion)
    assert list(table.columns) == [*SEED_FEATURES, "churned", "duration_days"]
    assert table["churned"].tolist() == [True, False, False]  # day 200 is after the horizon
    assert table["duration_days"].tolist() == [30, 180, 180]
    assert table["churned"].dtype == bool
    assert table["expansion_count"].notna().all()
    shorter = training_table(outcomes, rulebook.scoring, horizon_days=20)
    assert shorter["churned"].tolist() == [False, False, False]
    assert shorter["duration_days"].tolist() == [20, 20, 20]
    assert training_table(outcomes, rulebook.scoring)["expansion_count"].isna().all()


def test_training_table_scores_health_as_of_the_snapshot(
    population: TrainingSet, rulebook: Rulebook
) -> None:
    from retention.scoring.health import score_health

    first = population.customers[0]
    table = training_table(replace_set(population, 1), rulebook.scoring)
    expected = score_health(first, datetime(2026, 1, 1, tzinfo=UTC), rulebook.scoring.health)
    assert table.loc[0, "health_score"] == expected.overall
    assert table.loc[0, "health_alerts"] == len(expected.alerts)


def replace_set(ts: TrainingSet, n: int) -> TrainingSet:
    return TrainingSet(ts.customers[:n], ts.snapshot_dates[:n], ts.churned[:n], ts.churn_dates[:n])


# ---- the CLI ----------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["generated.csv", "deeper/generated.parquet"])
def test_model_generate_writes_a_training_file(tmp_path: Path, name: str) -> None:
    out = tmp_path / name
    result = CliRunner().invoke(
        starter.app, ["model", "generate", "--customers", "250", "--seed", "4", "--out", str(out)]
    )
    assert result.exit_code == 0, result.output
    expected = generate_population(250, seed=4)
    assert "wrote 250 rows" in result.stdout
    assert f"churn rate {expected.churn_rate:.1%}" in result.stdout
    assert str(out) in result.stdout
    assert read_training_file(out) == expected


def test_model_generate_refuses_another_file_kind(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        starter.app,
        ["model", "generate", "--customers", "5", "--out", str(tmp_path / "g.json")],
    )
    assert result.exit_code == 2
    assert "name a .csv or .parquet file" in result.stderr
