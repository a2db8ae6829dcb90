"""DatasetSpec: loading, validation errors that name the problem, and type coercion."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
import yaml

from ml_assets.dataset import DatasetSpec, SpecError, demo_data_path, load_spec, read_demo_data
from ml_assets.settings import DEFAULT_SPEC_PATH


def test_adult_spec_roles(adult_spec: DatasetSpec) -> None:
    assert adult_spec.id.name == "record_id"
    assert adult_spec.time.name == "event_time"
    assert adult_spec.target.name == "income"
    assert adult_spec.sensitive_columns == ["race", "sex"]
    assert "age" in adult_spec.numeric_features
    assert "sex" not in adult_spec.categorical_features  # sensitive attributes are not model inputs here
    assert adult_spec.slice_columns == ["race", "sex", "age_band"]


def test_demo_data_matches_spec(adult_spec: DatasetSpec) -> None:
    frame = pd.read_parquet(demo_data_path(adult_spec))
    assert len(frame) == 48_842
    frame["event_time"] = "2026-01-05T12:00:00Z"
    typed, failures = adult_spec.coerce(frame)
    assert failures == {}
    for col in adult_spec.columns:
        values = typed[col.name].dropna()
        if col.categories:
            assert set(values) <= set(col.categories), col.name
        if col.range:
            assert values.min() >= col.range.min and values.max() <= col.range.max, col.name


def _write(tmp_path: Path, mutate) -> Path:
    raw = yaml.safe_load(DEFAULT_SPEC_PATH.read_text())
    mutate(raw)
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda r: r.update(positive_label="rich"), "positive_label 'rich'"),
        (lambda r: r["columns"].append({"name": "age", "role": "numeric", "dtype": "int64"}), "duplicate column"),
        (lambda r: r["columns"][2].update(dtype="string"), "column 'age': numeric role needs dtype"),
        (lambda r: r["columns"].pop(0), "exactly one column must have role 'id'"),
        (lambda r: r["columns"][3].pop("categories"), "column 'workclass'"),
        (lambda r: r["training"].update(window_days=3, test_days=2), "validation_days + test_days"),
        (lambda r: r.update(unknown_key=1), "unknown_key"),
        (lambda r: r["columns"].append({"name": "", "role": "numeric", "dtype": "int64"}), "at least 1 character"),
    ],
)
def test_invalid_spec_names_the_problem(tmp_path: Path, mutate, message: str) -> None:
    with pytest.raises(SpecError) as err:
        load_spec(_write(tmp_path, mutate))
    assert message in str(err.value)
    assert "spec.yaml" in str(err.value)


def test_missing_spec_file(tmp_path: Path) -> None:
    with pytest.raises(SpecError, match="does not exist"):
        load_spec(tmp_path / "nope.yaml")


def test_coerce_counts_cast_failures_and_adds_missing_columns(adult_spec: DatasetSpec) -> None:
    landed = pd.DataFrame(
        {
            "record_id": [1, 2, 3],
            "event_time": ["2026-01-05 01:00", "2026-01-05 02:00", "not a time"],
            "age": ["39", "n/a", "41.5"],
            "sex": ["Male", " Female ", ""],
        }
    )
    typed, failures = adult_spec.coerce(landed)
    assert list(typed.columns) == adult_spec.column_names
    assert failures == {"event_time": 1, "age": 2}  # '' is a missing value, not a failed cast
    assert typed["age"].tolist()[0] == 39 and typed["age"].isna().sum() == 2
    assert typed["sex"].tolist()[:2] == ["Male", "Female"] and pd.isna(typed["sex"][2])
    assert typed["income"].isna().all()  # a missing column lands as nulls, for the checks to flag


def test_bands_and_label(adult_spec: DatasetSpec) -> None:
    band = adult_spec.bands[0]
    values = adult_spec.band_values(band, pd.Series([17, 25, 34, 64, 65, 90]))
    assert values.tolist() == ["<25", "25-34", "25-34", "55-64", "65+", "65+"]
    assert adult_spec.encode_label(pd.Series([">50K", "<=50K"])).tolist() == [1, 0]


def test_demo_rows_are_a_fresh_copy_and_follow_the_file(tmp_path: Path) -> None:
    """read_demo_data decodes a file version once: each caller gets its own frame, and a rewritten file is
    read again."""
    rows = pd.DataFrame({"record_id": [1, 2], "age": [30, 40]})
    rows.to_parquet(tmp_path / "demo.parquet")
    raw = yaml.safe_load(DEFAULT_SPEC_PATH.read_text()) | {"demo_data": "demo.parquet"}
    (tmp_path / "spec.yaml").write_text(yaml.safe_dump(raw))
    spec = load_spec(tmp_path / "spec.yaml")
    first = read_demo_data(spec)
    first.loc[0, "age"] = 99
    assert read_demo_data(spec)["age"].tolist() == [30, 40], "a caller's change never reaches the next caller"
    rows.assign(age=[31, 41]).iloc[:1].to_parquet(tmp_path / "demo.parquet")
    assert read_demo_data(spec)["age"].tolist() == [31], "a rewritten file is decoded again"
