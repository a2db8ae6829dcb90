"""The fast transform/predict path equals the original pandas path on real Adult rows (nulls, unseen values).

``_reference_transform`` and ``_reference_logistic`` are frozen copies of the original implementation (per
column ``to_numeric``/``astype``/``map``, dense one-hot matmul); the optimised code must agree with them.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from ml_assets.dataset import DatasetSpec
from ml_assets.datasets.samples import demo_training_set
from ml_assets.model.bundle import TabularModel
from ml_assets.model.network import NetworkConfig, build_network
from ml_assets.model.preprocessing import CLIP, MISSING_INDEX, UNKNOWN_INDEX, Preprocessing
from ml_assets.serving.schema import records_frame


def _reference_transform(pre: Preprocessing, frame: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    n = len(frame)
    num = np.empty((n, pre.n_numeric_inputs), dtype=np.float32)
    for j, stats in enumerate(pre.numeric):
        values = pd.to_numeric(frame[stats.name], errors="coerce").astype("float64").to_numpy(na_value=np.nan)
        missing = np.isnan(values)
        if stats.log1p:
            values = np.log1p(np.clip(values, 0.0, None))
        values = np.where(missing, stats.fill, values)
        num[:, 2 * j] = np.clip((values - stats.mean) / stats.std, -CLIP, CLIP)
        num[:, 2 * j + 1] = missing
    cat = np.empty((n, len(pre.categorical)), dtype=np.int64)
    for j, vocab in enumerate(pre.categorical):
        index = {v: i + 2 for i, v in enumerate(vocab.values)}
        col = frame[vocab.name].astype("string")
        codes = col.map(index).astype("float64").fillna(UNKNOWN_INDEX).to_numpy()
        codes[col.isna().to_numpy()] = MISSING_INDEX
        cat[:, j] = codes.astype(np.int64)
    return num, cat


def _reference_logistic(model: TabularModel, frame: pd.DataFrame) -> np.ndarray:
    num, cat = _reference_transform(model.preprocessing, frame)
    blocks = [num]
    for j, card in enumerate(model.preprocessing.cardinalities):
        block = np.zeros((len(frame), card), dtype=np.float32)
        block[np.arange(len(frame)), cat[:, j]] = 1.0
        blocks.append(block)
    x = np.concatenate(blocks, axis=1).astype(np.float64)
    assert model.logistic is not None
    z = x @ np.asarray(model.logistic.coef) + model.logistic.intercept
    return 1.0 / (1.0 + np.exp(-z))


@pytest.fixture(scope="module")
def data(adult_spec: DatasetSpec) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(train split, scored rows): real Adult rows, with nulls and unseen values injected in every column kind."""
    splits = demo_training_set(adult_spec, 3000)
    train = splits[splits["split"] == "train"]
    rows = splits.reset_index(drop=True).copy()
    assert rows["workclass"].isna().any() and rows["native_country"].isna().any()  # real nulls in Adult
    rng = np.random.default_rng(0)
    for name in ("age", "capital_gain", "hours_per_week"):
        rows.loc[rng.random(len(rows)) < 0.05, name] = pd.NA
    for name in ("workclass", "native_country", "occupation"):
        rows.loc[rng.random(len(rows)) < 0.05, name] = "Never-seen-" + name
        rows.loc[rng.random(len(rows)) < 0.05, name] = pd.NA
    rows.loc[0, "capital_gain"] = 10**9  # beyond the clip
    return train, rows


def _frames(adult_spec: DatasetSpec, rows: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """The same rows as the training code, the serving code and an untyped client would hand them over."""
    names = [c.name for c in adult_spec.feature_columns]
    records = [{k: (None if pd.isna(v) else v) for k, v in r.items()} for r in rows[names].to_dict("records")]
    untyped = rows[names].astype(object).where(rows[names].notna(), None)
    floats = rows[names].copy()
    for name in ("age", "capital_gain", "fnlwgt"):
        floats[name] = floats[name].astype("float64")
    return {
        "typed": rows,
        "served": records_frame(adult_spec, records),
        "object": untyped,
        "numpy floats": floats,
        "one row": rows.iloc[[7]],
        "large (hash-table lookups)": pd.concat([rows] * 3, ignore_index=True),
        "empty": rows.iloc[0:0],
    }


def test_transform_equals_reference(adult_spec: DatasetSpec, data) -> None:
    train, rows = data
    pre = Preprocessing.fit(adult_spec, train)
    for what, frame in _frames(adult_spec, rows).items():
        ref_num, ref_cat = _reference_transform(pre, frame)
        num, cat = pre.transform(frame)
        assert num.dtype == np.float32 and cat.dtype == np.int64, what
        np.testing.assert_array_equal(num, ref_num, err_msg=what)
        np.testing.assert_array_equal(cat, ref_cat, err_msg=what)
    _, cat = pre.transform(rows)
    assert (cat == UNKNOWN_INDEX).any() and (cat == MISSING_INDEX).any()


def test_logistic_and_network_predictions_equal_reference(adult_spec: DatasetSpec, data) -> None:
    from ml_assets.model.assets import BaselineConfig, fit_baseline

    train, rows = data
    logistic = fit_baseline(adult_spec, train.assign(split="train"), BaselineConfig())
    cfg = NetworkConfig(architecture="mlp")
    torch.manual_seed(0)
    net = build_network(cfg, logistic.preprocessing)
    mlp = TabularModel(
        kind="mlp",
        spec=adult_spec,
        preprocessing=logistic.preprocessing,
        network_config=cfg,
        state_dict=net.state_dict(),
    )
    for what, frame in _frames(adult_spec, rows).items():
        np.testing.assert_allclose(
            logistic.predict_proba(frame), _reference_logistic(logistic, frame), rtol=0, atol=1e-9
        )
        num, cat = _reference_transform(mlp.preprocessing, frame)
        with torch.no_grad():
            ref = torch.sigmoid(net.eval()(torch.from_numpy(num), torch.from_numpy(cat)).float()).numpy()
        got = mlp.predict_proba(frame)
        assert got.dtype == np.float64 and got.shape == (len(frame),), what
        np.testing.assert_allclose(got, ref, rtol=0, atol=1e-6, err_msg=what)
