"""Preprocessing: fitted on train only, unknown and missing values handled, JSON round trip is exact."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from ml_assets.dataset import DatasetSpec
from ml_assets.datasets.samples import demo_training_set
from ml_assets.model.preprocessing import MISSING_INDEX, UNKNOWN_INDEX, Preprocessing


@pytest.fixture(scope="module")
def splits(adult_spec: DatasetSpec) -> pd.DataFrame:
    return demo_training_set(adult_spec, 2000)


def test_fit_uses_train_split_only(adult_spec: DatasetSpec, splits: pd.DataFrame) -> None:
    train = splits[splits["split"] == "train"]
    pre = Preprocessing.fit(adult_spec, train)
    age = next(n for n in pre.numeric if n.name == "age")
    assert age.mean == pytest.approx(train["age"].astype(float).mean())
    assert age.mean != pytest.approx(splits["age"].astype(float).mean(), abs=1e-9)
    vocab = next(v for v in pre.categorical if v.name == "native_country")
    assert set(vocab.values) == set(train["native_country"].dropna())
    num, _ = pre.transform(train)
    standardized = num[:, 0::2]  # even columns: values; odd: missing flags
    assert np.abs(standardized.mean(axis=0)).max() < 0.05  # heavy-tailed columns are log1p'd then clipped


def test_heavy_tailed_column_is_log_transformed(adult_spec: DatasetSpec, splits: pd.DataFrame) -> None:
    pre = Preprocessing.fit(adult_spec, splits[splits["split"] == "train"])
    logged = {n.name for n in pre.numeric if n.log1p}
    assert "capital_gain" in logged
    assert "age" not in logged


def test_unknown_and_missing_values(adult_spec: DatasetSpec, splits: pd.DataFrame) -> None:
    pre = Preprocessing.fit(adult_spec, splits[splits["split"] == "train"])
    rows = splits.head(3).copy()
    rows["workclass"] = pd.array(["Martian-gov", None, "Private"], dtype="string")
    rows["age"] = pd.array([None, 40, 40], dtype="Int64")
    rows["extra_column"] = "ignored"
    num, cat = pre.transform(rows)
    j = pre.categorical_names.index("workclass")
    assert cat[0, j] == UNKNOWN_INDEX
    assert cat[1, j] == MISSING_INDEX
    assert cat[2, j] >= 2
    i = pre.numeric_names.index("age")
    assert num[0, 2 * i + 1] == 1.0 and num[1, 2 * i + 1] == 0.0
    assert num[0, 2 * i] == pytest.approx(0.0)  # filled with the train mean, i.e. 0 after standardising
    assert np.isfinite(num).all()


def test_json_round_trip_gives_the_same_transform(adult_spec: DatasetSpec, splits: pd.DataFrame, tmp_path) -> None:
    pre = Preprocessing.fit(adult_spec, splits[splits["split"] == "train"])
    pre.save(tmp_path / "pre.json")
    json.loads((tmp_path / "pre.json").read_text())  # plain JSON, no pickles
    again = Preprocessing.load(tmp_path / "pre.json")
    assert again == pre
    for a, b in zip(pre.transform(splits), again.transform(splits), strict=True):
        np.testing.assert_array_equal(a, b)
    assert pre.one_hot(splits).shape == (len(splits), pre.n_numeric_inputs + sum(pre.cardinalities))


def test_clear_errors(adult_spec: DatasetSpec, splits: pd.DataFrame) -> None:
    with pytest.raises(ValueError, match="train split has no rows"):
        Preprocessing.fit(adult_spec, splits.iloc[0:0])
    pre = Preprocessing.fit(adult_spec, splits)
    with pytest.raises(KeyError, match="lacks feature columns \\['age'\\]"):
        pre.transform(splits.drop(columns=["age"]))
    with pytest.raises(ValueError, match="unsupported preprocessing version"):
        Preprocessing.from_dict({**pre.to_dict(), "version": 99})


def test_quantile_bins_and_map_are_fitted_on_train_and_version_1_still_loads(
    adult_spec: DatasetSpec, splits: pd.DataFrame
) -> None:
    pre = Preprocessing.fit(adult_spec, splits[splits["split"] == "train"])
    assert pre.version == 2
    gain = next(n for n in pre.numeric if n.name == "capital_gain")
    # mostly 0, yet bins reach into the non-zero values: the quantiles of the distinct values are edges too
    assert len(gain.bins) > 5 and gain.bins == sorted(gain.bins) and sum(b > 0 for b in gain.bins) > 3
    assert gain.quantile_points == sorted(set(gain.quantile_points))
    assert gain.quantile_scores == sorted(gain.quantile_scores)  # a monotone map onto normal scores
    # a model saved before version 2 has no bins or map: it loads, and transforms exactly as before
    old = pre.to_dict()
    old["version"] = 1
    for n in old["numeric"]:
        del n["bins"], n["quantile_points"], n["quantile_scores"]
    legacy = Preprocessing.from_dict(old)
    assert legacy.version == 1 and legacy.numeric[0].bins == []
    for a, b in zip(pre.transform(splits), legacy.transform(splits), strict=True):
        np.testing.assert_array_equal(a, b)
