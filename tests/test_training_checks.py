"""training_set checks (class balance, overlap, leakage, drift) and the PSI they and monitoring share."""

import time
from collections.abc import Iterator
from datetime import date, timedelta

import dagster as dg
import numpy as np
import pandas as pd
import pytest

from ml_assets.data.approval import build_approved_training_set
from ml_assets.data.features import featurize
from ml_assets.data.splits import SPLIT, split_by_time
from ml_assets.data.training_checks import (
    CHECKS,
    build_training_set_checks,
    check_joint_leakage,
    check_window,
    previous_partition_key,
    psi,
    single_feature_auc,
)
from ml_assets.data.window import TrainingWindow, store_window
from ml_assets.dataset import Column, DatasetSpec, demo_data_path, load_spec, read_demo_data
from ml_assets.settings import PACKAGE_DIR
from resources.parquet_tables import ParquetTables
from tests.conftest import in_process
from tests.windows import window_of

END = date(2026, 1, 12)


@pytest.fixture(scope="module")
def spec(adult_spec: DatasetSpec) -> DatasetSpec:
    return adult_spec


def training_set(spec: DatasetSpec, end: date, n: int = 3000, offset: int = 0) -> pd.DataFrame:
    """A real training set: n Adult rows spread over the window's days, featurized and split by time."""
    days = spec.training.window_days
    df = pd.read_parquet(demo_data_path(spec)).iloc[offset : offset + n].reset_index(drop=True)
    start = pd.Timestamp(end - timedelta(days=days - 1))
    df[spec.time.name] = start + pd.to_timedelta(np.arange(n) * (days * 86_400 // n), unit="s")
    typed, _ = spec.coerce(df)
    return split_by_time(spec, featurize(spec, typed), end)


@pytest.fixture(scope="module")
def clean(spec: DatasetSpec) -> pd.DataFrame:
    return training_set(spec, END)


@pytest.fixture(scope="module", autouse=True)
def tables(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ParquetTables]:
    """Where ``results`` stores the windows it checks (one folder for the module's tests)."""
    TABLES.append(ParquetTables(root=str(tmp_path_factory.mktemp("tables"))))
    yield TABLES[-1]
    TABLES.pop()


TABLES: list[ParquetTables] = []


def results(spec: DatasetSpec, ts: pd.DataFrame, previous: pd.DataFrame | None = None) -> dict:
    """The checks as the asset runs them: on ``ts`` stored as a window of Parquet files (and ``previous`` too)."""
    before = None if previous is None else store_window(spec, previous, TABLES[-1])
    return {r.check_name: r for r in check_window(spec, store_window(spec, ts, TABLES[-1]), before)}


# ---- psi ----------------------------------------------------------------------------------------------------


def test_psi_of_identical_samples_is_zero() -> None:
    x = np.random.default_rng(0).normal(size=5000)
    assert psi(x, x) == pytest.approx(0.0, abs=1e-12)
    assert psi(pd.Series(["a", "b"] * 50), pd.Series(["b", "a"] * 50)) == pytest.approx(0.0, abs=1e-12)


def test_psi_known_categorical_value() -> None:
    # shares (0.5, 0.5) -> (0.75, 0.25): 0.25 ln 1.5 + 0.25 ln 2
    expected = 0.25 * np.log(1.5) + 0.25 * np.log(2.0)
    assert psi(["a", "a", "b", "b"], ["a", "a", "a", "b"]) == pytest.approx(expected, rel=1e-9)


def test_psi_numeric_uses_quantile_bins_of_expected() -> None:
    rng = np.random.default_rng(1)
    base, same = rng.normal(size=20_000), rng.normal(size=20_000)
    assert psi(base, same) < 0.01
    small, large = psi(base, same + 0.1), psi(base, same + 1.0)
    assert 0.0 < small < 0.1 < 0.2 < large  # the conventional "no change" and "large shift" bands
    # deciles of expected hold 10 % each; every actual value lands in the top decile, the other nine are
    # empty and floored at 1e-4
    top = 0.9 * np.log(1.0 / 0.1)
    empty = 9 * (1e-4 - 0.1) * np.log(1e-4 / 0.1)
    assert psi(np.arange(100.0), np.full(100, 1000.0)) == pytest.approx(top + empty, rel=1e-9)


def test_psi_counts_nulls_new_categories_and_constants() -> None:
    assert psi([1.0, 2.0, None, None], [1.0, 2.0, 3.0, 4.0]) > 0.2  # nulls are a bin of their own
    nullable = pd.Series([1, 2, None, None], dtype="Int64")
    assert psi(nullable, nullable) == pytest.approx(0.0)
    assert psi(nullable, pd.Series([1, 2, 3, 4], dtype="Int64")) == pytest.approx(
        psi([1.0, 2.0, None, None], [1.0, 2.0, 3.0, 4.0])
    )
    assert psi(pd.Series(["a", None], dtype="string"), pd.Series(["a", "a"], dtype="string")) > 0.2
    assert psi(["a"] * 10, ["a"] * 9 + ["new"]) > 0.0  # a category never seen before counts
    assert psi([5] * 10, [5] * 10) == pytest.approx(0.0)
    with pytest.raises(ValueError, match="rows on both sides"):
        psi([], [1, 2])


# ---- checks on real training sets --------------------------------------------------------------------------


def test_clean_training_set_passes_every_check(spec: DatasetSpec, clean: pd.DataFrame) -> None:
    assert set(clean[SPLIT]) == {"train", "validation", "test"}
    out = results(spec, clean)
    assert set(out) == set(CHECKS)
    assert all(r.passed for r in out.values()), {n: r.description for n, r in out.items() if not r.passed}
    assert "not evaluated" in out["feature_drift"].description  # no previous training set
    assert out["single_feature_leakage"].metadata["max_auc"].value < spec.training.leakage_auc


def test_class_imbalance_fails_naming_the_split(spec: DatasetSpec, clean: pd.DataFrame) -> None:
    skewed = clean.copy()
    skewed.loc[skewed[SPLIT] == "test", spec.label_column] = 1
    r = results(spec, skewed)["class_balance"]
    assert not r.passed and r.severity == dg.AssetCheckSeverity.ERROR
    assert "split 'test' positive rate 1.000" in r.description and "'label'" in r.description
    assert "| test |" in r.metadata["splits"].value


def test_ids_in_train_and_test_fail(spec: DatasetSpec, clean: pd.DataFrame) -> None:
    leaked = clean.copy()
    test_idx = leaked.index[leaked[SPLIT] == "test"][:7]
    train_ids = leaked.loc[leaked[SPLIT] == "train", spec.id.name].iloc[:7].to_numpy()
    leaked.loc[test_idx, spec.id.name] = train_ids
    r = results(spec, leaked)["split_overlap"]
    assert not r.passed
    assert "7 ids in both train and test" in r.description and "'record_id'" in r.description
    assert r.metadata["overlap_counts"].value == {"train&test": 7, "validation&test": 0}


@pytest.mark.parametrize("feature", ["capital_gain", "occupation"])
def test_a_feature_that_encodes_the_label_is_leakage(spec: DatasetSpec, clean: pd.DataFrame, feature: str) -> None:
    leaky = clean.copy()
    y = leaky[spec.label_column].astype("int64")
    if feature in spec.numeric_features:
        leaky[feature] = (y * 50_000 + np.arange(len(y)) % 7).astype("Int64")
    else:
        leaky[feature] = y.map({1: "Exec-managerial", 0: "Sales"}).astype("string")
    r = results(spec, leaky)["single_feature_leakage"]
    assert not r.passed and r.severity == dg.AssetCheckSeverity.ERROR
    assert f"'{feature}': alone scores ROC AUC" in r.description
    assert single_feature_auc(spec, leaky[leaky[SPLIT] == "train"])[feature] >= 0.99


def test_drift_against_previous_training_set_warns(spec: DatasetSpec, clean: pd.DataFrame) -> None:
    previous = training_set(spec, END - timedelta(days=1), offset=5000)
    assert results(spec, clean, previous)["feature_drift"].passed  # same population, other rows
    shifted = clean.copy()
    shifted["age"] = (shifted["age"] + 25).astype("Int64")
    r = results(spec, shifted, previous)["feature_drift"]
    assert not r.passed and r.severity == dg.AssetCheckSeverity.WARN
    assert "'age' PSI" in r.description and "'fnlwgt'" not in r.description
    assert r.metadata["max_psi"].value > spec.training.drift_psi


def test_previous_partition_key(spec: DatasetSpec) -> None:
    daily = dg.DailyPartitionsDefinition(start_date=spec.partitions_start.isoformat())
    assert previous_partition_key(daily, "2026-01-12") == "2026-01-11"
    assert previous_partition_key(daily, spec.partitions_start.isoformat()) is None
    assert previous_partition_key(None, "2026-01-12") is None


# ---- in process: the multi_asset_check with the DuckDB IO manager ---------------------------------------------


@in_process
def test_training_set_checks_materialize_and_compare_with_previous_partition(spec: DatasetSpec, tmp_path) -> None:
    daily = dg.DailyPartitionsDefinition(start_date=spec.partitions_start.isoformat())
    drifted_day = "2026-01-12"

    @dg.asset(name="training_set", partitions_def=daily)
    def training_set_asset(context: dg.AssetExecutionContext) -> TrainingWindow:
        end = date.fromisoformat(context.partition_key)
        ts = training_set(spec, end, n=2000, offset=(end.day % 3) * 2000)
        if context.partition_key == drifted_day:
            ts["hours_per_week"] = (ts["hours_per_week"] + 30).clip(upper=99).astype("Int64")
        return window_of(spec, ts, tmp_path / "tables")

    checks = build_training_set_checks(spec, daily)
    assert {k.name for k in checks.check_keys} == set(CHECKS)
    resources = {"io_manager": dg.FilesystemIOManager(base_dir=str(tmp_path / "storage"))}
    instance = dg.DagsterInstance.ephemeral()

    def run(day: str) -> dict[str, dg.AssetCheckEvaluation]:
        result = dg.materialize([training_set_asset, checks], partition_key=day, resources=resources, instance=instance)
        assert result.success  # drift only warns: it never fails the run
        return {e.check_name: e for e in result.get_asset_check_evaluations()}

    first = run("2026-01-10")
    assert all(e.passed for e in first.values())
    assert "never materialized" in first["feature_drift"].description  # 2026-01-09 was not

    second = run("2026-01-11")
    assert all(e.passed for e in second.values())
    assert second["feature_drift"].metadata["note"].text == "compared with training_set partition 2026-01-10"
    assert second["feature_drift"].metadata["previous_rows"].value == 2000

    third = run(drifted_day)
    assert {n for n, e in third.items() if not e.passed} == {"feature_drift"}
    assert third["feature_drift"].severity == dg.AssetCheckSeverity.WARN
    assert "'hours_per_week' PSI" in third["feature_drift"].description
    assert {e.partition for e in third.values()} == {drifted_day}
    # the window_end partition column round-trips, so the stored training set is the one the check read
    assert set(instance.get_materialized_partitions(dg.AssetKey("training_set"))) == {
        "2026-01-10",
        "2026-01-11",
        drifted_day,
    }


# ---- label purity: a feature value that fixes the label -----------------------------------------------------
def test_an_outcome_column_that_fixes_the_label_on_most_rows_is_leakage(spec: DatasetSpec, clean: pd.DataFrame) -> None:
    """Like COMPAS's is_recid next to two_year_recid: 0 always means label 0, 1 means either; its AUC alone stays
    under the limit, but its value 0 fixes the label for over half the rows."""
    leaky = clean.copy()
    y = leaky[spec.label_column].astype("int64").to_numpy()
    rng = np.random.default_rng(0)
    outcome = np.where(y == 1, 1, (rng.random(len(y)) < 0.35).astype(int))  # negatives: 0 mostly, 1 sometimes
    leaky["capital_loss"] = pd.array(outcome, dtype="Int64")
    train = leaky[leaky[SPLIT] == "train"]
    assert single_feature_auc(spec, train)["capital_loss"] < spec.training.leakage_auc  # the AUC test misses it
    r = results(spec, leaky)["single_feature_leakage"]
    assert not r.passed and r.severity == dg.AssetCheckSeverity.ERROR
    assert "'capital_loss': values that fix the label cover" in r.description and "largest 0 (" in r.description
    assert r.metadata["max_pure_share"].value > spec.training.leakage_share
    table = r.metadata["top_features"].value
    assert table.splitlines()[2].startswith("| capital_loss |")  # the riskiest feature first
    assert "roc_auc" in table and "pure_share" in table


def test_a_rare_label_does_not_make_every_value_pure(spec: DatasetSpec, clean: pd.DataFrame) -> None:
    """With 3% positives most values carry the negative label on 97%+ of their rows: that is the base rate, not
    leakage, so purity asks for the other label to be far rarer than overall."""
    rare = clean.copy()
    y = rare[spec.label_column].astype("int64")
    keep = (y == 0) | (np.arange(len(y)) % 8 == 0)
    rare = rare[keep.to_numpy()]
    r = results(spec, rare)["single_feature_leakage"]
    assert r.passed, r.description
    assert r.metadata["max_pure_share"].value < spec.training.leakage_share


def test_unlabeled_rows_are_left_out_of_label_checks(spec: DatasetSpec, clean: pd.DataFrame) -> None:
    nullable = spec.model_copy(
        update={"columns": [c.model_copy(update={"nullable": True}) if c.role == "target" else c for c in spec.columns]}
    )
    partly = clean.copy()
    partly[spec.label_column] = partly[spec.label_column].astype("Int8")
    partly.loc[partly.index[::3], spec.label_column] = pd.NA
    out = results(nullable, partly)
    assert out["class_balance"].passed and out["single_feature_leakage"].passed
    table = out["class_balance"].metadata["splits"].value
    assert "labeled" in table.splitlines()[0]
    none = partly.copy()
    none.loc[none[SPLIT] == "test", spec.label_column] = pd.NA
    r = results(nullable, none)["class_balance"]
    assert not r.passed and "split 'test' has no labeled rows" in r.description


# ---- leakage that no single column shows -----------------------------------------------------------------
def pair_spec() -> DatasetSpec:
    """The reproducer's flights: a scheduled arrival, the actual arrival, noise, and whether it was late."""
    return DatasetSpec(
        name="flights",
        positive_label="yes",
        columns=[
            Column(name="rid", role="id", dtype="int64"),
            Column(name="t", role="time", dtype="datetime"),
            Column(name="sched_arr", role="numeric", dtype="int64"),
            Column(name="arr", role="numeric", dtype="int64"),
            Column(name="noise", role="numeric", dtype="float64"),
            Column(name="late", role="target", dtype="string", categories=["no", "yes"]),
        ],
    )


def in_window(spec: DatasetSpec, raw: pd.DataFrame, end: date = END) -> pd.DataFrame:
    """Rows in their own order spread over the spec's window ending ``end``, featurized and split by time."""
    days = spec.training.window_days
    raw = raw.reset_index(drop=True).assign(
        **{
            spec.time.name: pd.Timestamp(end - timedelta(days=days - 1))
            + pd.to_timedelta(np.arange(len(raw)) * (days * 86_400 // len(raw)), unit="s")
        }
    )
    typed, _ = spec.coerce(raw)
    return split_by_time(spec, featurize(spec, typed), end)


def flights(n: int = 6000, seed: int = 1) -> pd.DataFrame:
    """late = arrival - scheduled arrival >= 15 minutes, as /work/shared/repro writes pair.csv: each column alone
    says next to nothing (ROC AUC near 0.5), together they are the label."""
    rng = np.random.default_rng(seed)
    scheduled = rng.integers(300, 1400, n)
    delay = np.round(rng.gamma(1.0, 20.0, n) - 12)
    return pd.DataFrame(
        {
            "rid": np.arange(1, n + 1),
            "sched_arr": scheduled,
            "arr": (scheduled + delay).astype(int),
            "noise": rng.normal(size=n),
            "late": np.where(delay >= 15, "yes", "no"),
        }
    )


def test_a_pair_of_columns_that_rebuilds_the_label_fails_the_multivariate_check_naming_both() -> None:
    spec = pair_spec()
    out = results(spec, in_window(spec, flights()))
    single, joint = out["single_feature_leakage"], out["multivariate_leakage"]
    assert single.passed, single.description  # one column at a time, nothing shows
    assert single.metadata["max_auc"].value < 0.6
    assert not joint.passed and joint.severity == dg.AssetCheckSeverity.ERROR
    assert joint.description.startswith("FAILED multivariate_leakage: logistic regression fitted on the train rows")
    assert "on the validation split (limit 0.99)" in joint.description
    assert "'arr', 'sched_arr' alone score 0.99" in joint.description or "'sched_arr', 'arr' alone" in joint.description
    assert set(joint.metadata["carrying_features"].value.split(", ")) == {"arr", "sched_arr"}
    assert joint.metadata["roc_auc"].value > 0.999 and joint.metadata["best_single_feature_auc"].value < 0.6
    table = joint.metadata["relies_on"].value.splitlines()
    assert {table[2].split(" | ")[0], table[3].split(" | ")[0]} == {"| arr", "| sched_arr"}
    assert table[4].startswith("| noise |")


def test_the_leakage_checks_say_when_they_cannot_judge(spec: DatasetSpec, clean: pd.DataFrame) -> None:
    """A train split of one label leaves nothing to judge: both checks fail saying so (class_balance says why);
    single_feature_leakage used to pass "(not evaluated)"."""
    one = clean.copy()
    one.loc[one[SPLIT] == "train", spec.label_column] = 0
    out = results(spec, one)
    r = out["multivariate_leakage"]
    assert not r.passed and r.description.startswith("FAILED multivariate_leakage: could not judge:")
    assert "see class_balance" in r.description
    single = out["single_feature_leakage"]
    assert not single.passed and single.description.startswith("FAILED single_feature_leakage: could not judge:")
    assert not out["class_balance"].passed


def test_validation_of_one_label_is_replaced_by_the_newest_train_rows() -> None:
    spec = pair_spec()
    window = in_window(spec, flights())
    window.loc[window[SPLIT] == "validation", spec.label_column] = 0
    r = results(spec, window)["multivariate_leakage"]
    assert not r.passed and "on the newest 25% of the train rows (validation has one label)" in r.description


@pytest.mark.parametrize("name", ["adult", "compas", "mpls_stops"])
def test_honest_strong_signal_in_the_shipped_data_is_not_called_a_leak(name: str) -> None:
    """Every shipped dataset in its source order over one window: the joint models stay far from the limit (a
    GBDT reaches ROC AUC ~0.92 on Adult), and the check takes about a second."""
    shipped = load_spec(PACKAGE_DIR / "datasets" / f"{name}.yaml")
    raw = read_demo_data(shipped)
    if shipped.time.name in raw.columns:
        raw = raw.sort_values(shipped.time.name, kind="stable")
    window = in_window(shipped, raw)
    start = time.perf_counter()
    r = check_joint_leakage(shipped, window)
    seconds = time.perf_counter() - start
    assert r.passed, r.description
    assert r.metadata["roc_auc"].value < 0.95 and "relies most on" in r.description
    assert seconds < 10, seconds  # about 1 s on 2 idle cores; the bound leaves room for a busy machine


def test_approved_training_set_refuses_a_window_with_a_joint_leak(tmp_path) -> None:
    spec = pair_spec().model_copy(update={"partitions_start": date(2026, 1, 1)})
    daily = dg.DailyPartitionsDefinition(start_date="2026-01-01")
    frame = in_window(spec, flights(), date(2026, 1, 12))

    @dg.asset(name="training_set", partitions_def=daily)
    def training_set_asset() -> TrainingWindow:
        return window_of(spec, frame, tmp_path / "tables")

    checks = build_training_set_checks(spec, daily)
    approved = build_approved_training_set(daily, [s.name for s in checks.check_specs if s.blocking])
    resources = {"io_manager": dg.FilesystemIOManager(base_dir=str(tmp_path / "storage"))}
    instance = dg.DagsterInstance.ephemeral()
    cut = dg.materialize(
        [training_set_asset, checks],
        partition_key="2026-01-12",
        resources=resources,
        instance=instance,
        raise_on_error=False,
    )
    verdicts = {e.check_name: e for e in cut.get_asset_check_evaluations()}
    assert not verdicts["multivariate_leakage"].passed and verdicts["single_feature_leakage"].passed
    assert next(iter(verdicts)) == "multivariate_leakage"  # failed results first
    assert all(e.description and "\n" not in e.description for e in verdicts.values())
    refused = dg.materialize(
        [training_set_asset, checks, approved],
        selection=["approved_training_set"],
        resources=resources,
        instance=instance,
        raise_on_error=False,
    )
    assert not refused.success
    failure = next(e for e in refused.all_events if e.event_type_value == "STEP_FAILURE")
    message = failure.event_specific_data.error.message
    assert "approved_training_set refuses to use training_set[2026-01-12]" in message
    assert "failed blocking checks: multivariate_leakage" in message


def test_a_feature_named_self_is_screened_like_any_other() -> None:
    """The joint screen encodes categories column by column; a column named ``self`` (Ecdat's Hdma data) must not
    collide with a keyword of the frame method that sets them."""
    from ml_assets.data.leakage import auc_drops, fit_logistic, roc_auc

    r = np.random.default_rng(0)
    y = r.integers(0, 2, 600)
    x = pd.DataFrame({"self": pd.Categorical(np.where(y == 1, "yes", "no")), "kwargs": r.normal(size=600)})
    predict = fit_logistic(x, y)
    assert roc_auc(y, predict(x)) > 0.99
    drops = {d.feature: d.auc_drop for d in auc_drops(predict, x, y, ["self", "kwargs"])}
    assert drops["self"] > 0.4 and abs(drops["kwargs"]) < 0.05
