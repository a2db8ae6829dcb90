"""Synthetic rows: valid for any spec, at scale, deterministic, with a learnable target."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score

from ml_assets.data.features import featurize
from ml_assets.dataset import DatasetSpec, load_spec
from ml_assets.datasets.synthetic import synthetic_rows

START = datetime(2026, 11, 1, tzinfo=UTC)

OTHER_SPEC = """
name: sensors
positive_label: fault
partitions_start: "2026-01-01"
columns:
  - {name: reading_id, role: id, dtype: string}
  - {name: taken_at, role: time, dtype: datetime}
  - {name: temperature, role: numeric, dtype: float64, nullable: true}
  - {name: pressure, role: numeric, dtype: float64, range: {min: 0.5}}
  - {name: vibration, role: numeric, dtype: int64, nullable: true, range: {max: 40}}
  - {name: site, role: categorical, dtype: string, categories: [north, south, east]}
  - {name: model, role: sensitive, dtype: string, nullable: true, categories: [a, b]}
  - {name: state, role: target, dtype: string, categories: [ok, fault, unknown]}
"""


def assert_valid(spec: DatasetSpec, frame: pd.DataFrame) -> pd.DataFrame:
    """The rows obey every rule of the spec; returns them typed."""
    assert list(frame.columns) == spec.column_names
    typed, failures = spec.coerce(frame)
    assert failures == {}
    assert typed[spec.id.name].is_unique and typed[spec.id.name].notna().all()
    for c in spec.columns:
        values = typed[c.name]
        nulls = int(values.isna().sum())
        if c.nullable:
            assert 0 < nulls < 0.05 * len(values), f"{c.name}: a few nulls, got {nulls}"
        else:
            assert nulls == 0, c.name
        present = values.dropna()
        if c.categories:
            assert present.isin(c.categories).all(), c.name
        if c.range is not None:
            if c.range.min is not None:
                assert (present >= c.range.min).all(), c.name
            if c.range.max is not None:
                assert (present <= c.range.max).all(), c.name
    return typed


def test_adult_rows_obey_the_spec_at_1e5(adult_spec: DatasetSpec) -> None:
    started = time.perf_counter()
    frame = synthetic_rows(adult_spec, 100_000, seed=1, start=START, days=3)
    elapsed = time.perf_counter() - started
    assert len(frame) == 100_000
    assert elapsed < 5.0, f"1e5 rows took {elapsed:.1f}s"  # about 0.15 s here; a guard against per-row Python
    typed = assert_valid(adult_spec, frame)
    times = typed["event_time"]
    assert times.min() >= pd.Timestamp("2026-11-01") and times.max() < pd.Timestamp("2026-11-04")
    assert times.dt.normalize().value_counts().min() > 30_000, "spread over the three days"
    rate = (typed["income"] == ">50K").mean()
    assert 0.15 < rate < 0.4
    for c in adult_spec.columns:
        if c.categories:
            assert isinstance(frame[c.name].dtype, pd.CategoricalDtype), "compact codes, not per-row strings"
            assert set(frame[c.name].cat.categories) <= set(c.categories)
            assert typed[c.name].nunique() > 1, c.name
    assert frame.memory_usage(deep=True).sum() < 100 * 100_000, "under 100 bytes a row"


def test_the_target_is_learnable(adult_spec: DatasetSpec) -> None:
    typed, _ = adult_spec.coerce(synthetic_rows(adult_spec, 20_000, seed=4))
    rows = featurize(adult_spec, typed)
    cats = adult_spec.categorical_features
    x = pd.get_dummies(rows[cats].astype(object).fillna("NA"), dtype=float)
    nums = rows[adult_spec.numeric_features].astype(float)
    x = pd.concat([x, (nums - nums.mean()) / nums.std()], axis=1).to_numpy()
    y = rows["label"].to_numpy()
    model = LogisticRegression(max_iter=500).fit(x[:15_000], y[:15_000])
    auc = roc_auc_score(y[15_000:], model.predict_proba(x[15_000:])[:, 1])
    assert auc > 0.75, f"a linear model should find the signal, AUC {auc:.3f}"


def test_same_seed_same_rows(adult_spec: DatasetSpec) -> None:
    a = synthetic_rows(adult_spec, 2000, seed=9)
    pd.testing.assert_frame_equal(a, synthetic_rows(adult_spec, 2000, seed=9))
    assert not a.equals(synthetic_rows(adult_spec, 2000, seed=10))


def test_any_spec_without_demo_data(tmp_path: Path) -> None:
    path = tmp_path / "sensors.yaml"
    path.write_text(OTHER_SPEC)
    spec = load_spec(path)
    frame = synthetic_rows(spec, 20_000, seed=2, id_start=100)
    typed = assert_valid(spec, frame)
    assert typed["reading_id"].iloc[0] == "id-100"
    assert typed["taken_at"].dt.normalize().eq(pd.Timestamp("2026-01-01")).all(), "default start: partitions_start"
    assert set(typed["state"]) == {"ok", "fault", "unknown"}
    assert (typed["state"] == "fault").mean() == pytest.approx(0.25, abs=0.05)
    with pytest.raises(ValueError, match="ships no demo data"):
        synthetic_rows(spec, 10, from_demo=True)


def test_sampling_the_demo_data(adult_spec: DatasetSpec) -> None:
    frame = synthetic_rows(adult_spec, 5000, seed=3, from_demo=True, start=START)
    typed = adult_spec.coerce(frame)[0]
    assert adult_spec.coerce(frame)[1] == {}
    assert typed["record_id"].tolist() == list(range(1, 5001))
    demo = pd.read_parquet(adult_spec.path.parent / "adult.parquet")  # type: ignore[union-attr]
    rows = set(map(tuple, demo[["age", "education", "income"]].astype(str).to_numpy()))
    sample = set(map(tuple, typed[["age", "education", "income"]].astype(str).to_numpy()))
    assert sample <= rows, "demo rows keep their real joint values"


def test_string_columns_on_request(adult_spec: DatasetSpec) -> None:
    frame = synthetic_rows(adult_spec, 1000, categoricals="string")
    assert frame["education"].dtype == "string"
    assert_valid(adult_spec, frame)


def test_round_trips_through_parquet_and_csv(tmp_path: Path, adult_spec: DatasetSpec) -> None:
    frame = synthetic_rows(adult_spec, 3000, seed=5, start=START)
    frame.to_parquet(tmp_path / "a.parquet", index=False)
    # one timestamp format for the whole column: pandas' default writes ".717000" only where milliseconds are
    # non-zero, and a reader inferring the format from the first value then fails the others
    frame.to_csv(tmp_path / "a.csv", index=False, date_format="%Y-%m-%dT%H:%M:%S.%fZ")
    for back in (pd.read_parquet(tmp_path / "a.parquet"), pd.read_csv(tmp_path / "a.csv")):
        typed, failures = adult_spec.coerce(back)
        assert failures == {}
        pd.testing.assert_series_equal(typed["age"], adult_spec.coerce(frame)[0]["age"])


def test_bad_sizes_are_refused(adult_spec: DatasetSpec) -> None:
    with pytest.raises(ValueError, match="n must be"):
        synthetic_rows(adult_spec, -1)
    with pytest.raises(ValueError, match="days must be"):
        synthetic_rows(adult_spec, 10, days=0)
    assert len(synthetic_rows(adult_spec, 0)) == 0
    assert np.array_equal(synthetic_rows(adult_spec, 3)["record_id"], [1, 2, 3])
