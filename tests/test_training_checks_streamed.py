"""The training_set checks on a stored window (queries and bounded samples) against today's in-memory checks."""

from datetime import timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from ml_assets.data.splits import SPLIT, SPLITS
from ml_assets.data.training_checks import check_window, validate_training_set
from ml_assets.data.window import TrainingWindow, store_window
from ml_assets.data.window_facts import facts_of_window
from ml_assets.dataset import DatasetSpec, load_spec
from ml_assets.datasets.samples import DEMO_WINDOW_END, demo_training_set
from ml_assets.settings import PACKAGE_DIR
from resources.parquet_tables import ParquetTables


def windows(spec: DatasetSpec, current: pd.DataFrame, previous: pd.DataFrame, root: Path) -> tuple[TrainingWindow, ...]:
    tables = ParquetTables(root=str(root))
    return store_window(spec, current, tables), store_window(spec, previous, tables)


def by_name(results) -> dict:
    return {r.check_name: r for r in results}


def with_leaks(spec: DatasetSpec, frame: pd.DataFrame) -> pd.DataFrame:
    """Three train ids reused in test, and a feature that is the label: checks that fail, with their numbers."""
    out = frame.copy()
    train_ids = out.loc[out[SPLIT] == "train", spec.id.name].iloc[:3].to_numpy()
    out.loc[out.index[out[SPLIT] == "test"][:3], spec.id.name] = train_ids
    feature = spec.categorical_features[0]
    out[feature] = out[spec.label_column].astype("int64").map({0: "no", 1: "yes"}).astype("string")
    return out


@pytest.mark.parametrize(
    ("name", "rows", "leaky"), [("compas", None, False), ("compas", None, True), ("adult", 12_000, False)]
)
def test_streamed_checks_give_todays_verdicts_on_the_demo_data(
    name: str, rows: int | None, leaky: bool, tmp_path: Path
) -> None:
    """On a demo window (smaller than the sample bound) the checks on the stored window give the verdicts,
    descriptions and metadata of the in-memory checks on the whole window frame; the query facts are pandas'."""
    spec = load_spec(PACKAGE_DIR / "datasets" / f"{name}.yaml")
    current = demo_training_set(spec, rows)
    previous = demo_training_set(spec, rows, seed=1, window_end=DEMO_WINDOW_END - timedelta(days=1))
    if leaky:
        current = with_leaks(spec, current)
    window, before = windows(spec, current, previous, tmp_path)
    whole = window.frame()
    streamed = by_name(check_window(spec, window, before, "compared"))
    in_memory = by_name(validate_training_set(spec, whole, before.frame(), "compared"))
    assert list(streamed) == list(in_memory)
    for check, expected in in_memory.items():
        got = streamed[check]
        assert (got.passed, got.description) == (expected.passed, expected.description), check
        assert got.metadata == expected.metadata, check
    failed = {n for n, r in streamed.items() if not r.passed}
    # a feature that is the label leaks alone and together, and drifts from the previous window
    assert failed == (
        {"split_overlap", "single_feature_leakage", "multivariate_leakage", "feature_drift"} if leaky else set()
    )
    assert streamed["feature_drift"].metadata["sample_rows"].value == len(whole)  # a small window: every row

    facts = facts_of_window(spec, window)  # counted as pandas counts them
    for split in SPLITS:
        label = whole.loc[whole[SPLIT] == split, spec.label_column]
        assert (facts.splits[split].rows, facts.splits[split].labeled) == (len(label), label.notna().sum())
        assert facts.splits[split].positives == label.sum()
    ids = {s: whole.loc[whole[SPLIT] == s, spec.id.name].dropna().to_numpy() for s in SPLITS}
    for split in ("train", "validation"):
        shared = np.intersect1d(ids[split], ids["test"]).tolist()
        assert (facts.shared[f"{split}&test"].count, facts.shared[f"{split}&test"].smallest) == (
            len(shared),
            shared[:10],
        )


def test_a_window_larger_than_the_sample_bound_is_judged_on_the_sample_and_counted_whole(
    adult_spec: DatasetSpec, tmp_path: Path
) -> None:
    spec = adult_spec
    current = demo_training_set(spec, 3000)
    last_test = current.index[current[SPLIT] == "test"][-7:]
    current.loc[last_test, spec.id.name] = current.loc[current[SPLIT] == "train", spec.id.name].iloc[-7:].to_numpy()
    previous = demo_training_set(spec, 2500, seed=1, window_end=DEMO_WINDOW_END - timedelta(days=1))
    window, before = windows(spec, current, previous, tmp_path)
    out = by_name(check_window(spec, window, before, sample_rows=500))

    balance = out["class_balance"]  # exact: every row counted
    assert balance.passed
    table = pd.Series(current[SPLIT].value_counts())
    for split in SPLITS:
        assert f"| {split} | {table[split]} |" in balance.metadata["splits"].value
    overlap = out["split_overlap"]
    assert not overlap.passed and "7 ids in both train and test" in overlap.description
    assert overlap.metadata["overlap_counts"].value == {"train&test": 7, "validation&test": 0}

    single = out["single_feature_leakage"]  # sampled: 500 of the ~2400 labeled train rows
    assert single.passed and single.metadata["sample_rows"].value == 500
    assert single.metadata["train_rows_scored"].value == 500
    assert single.metadata["sample_split"].value == "train (labeled rows)"
    joint = out["multivariate_leakage"]
    assert joint.passed and joint.metadata["sample_rows"].value == 1000  # 500 train, 500 validation
    assert joint.metadata["sample_split"].value == "train, validation (labeled rows)"
    drift = out["feature_drift"]
    assert drift.passed, drift.description
    assert drift.metadata["sample_rows"].value == 500 and drift.metadata["previous_sample_rows"].value == 500
    assert drift.metadata["previous_rows"].value == 2500  # counted, not sampled


def test_a_window_sample_is_the_table_scans_sample_read_in_arrow(adult_spec: DatasetSpec, tmp_path: Path) -> None:
    spec = adult_spec
    window = store_window(spec, demo_training_set(spec, 3000), ParquetTables(root=str(tmp_path)))
    columns = ["age", "workclass", spec.label_column, spec.time.name]
    for split, labeled in ((None, False), ("train", True), ("validation", False)):
        scan = window.rows if split is None else window.labeled(split) if labeled else window.split(split)
        got = window.sample(split, 700, columns, labeled=labeled, seed=3)
        pd.testing.assert_frame_equal(got, scan.sample(700, 3, columns))
    assert len(window.sample("test", 10_000, columns)) == window.split("test").count_rows()  # all: fewer than asked
