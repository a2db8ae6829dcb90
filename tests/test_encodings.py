"""Each numeric input encoding on constructed data where it must help, and an interaction the linear baseline
cannot fit: the network (plain torch, full batch, a few hundred steps) against the same network without it."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from torch.nn import functional as F

from ml_assets.dataset import DatasetSpec
from ml_assets.model.network import NetworkConfig, build_network
from ml_assets.model.preprocessing import Preprocessing

ROWS = 3000
STEPS = 150


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def spec_for(numeric: list[str], categorical: list[str] = ()) -> DatasetSpec:
    """A spec with the given feature columns and a 0/1 label."""
    columns = [
        {"name": "row_id", "role": "id", "dtype": "int64"},
        {"name": "event_time", "role": "time", "dtype": "datetime"},
        *({"name": n, "role": "numeric", "dtype": "float64", "nullable": True} for n in numeric),
        *({"name": c, "role": "categorical", "dtype": "string", "categories": ["p", "q"]} for c in categorical),
        {"name": "label", "role": "target", "dtype": "string", "categories": ["0", "1"]},
    ]
    return DatasetSpec.model_validate({"name": "constructed", "positive_label": "1", "columns": columns})


def fit_auc(spec: DatasetSpec, frame: pd.DataFrame, y: np.ndarray, cfg: NetworkConfig) -> float:
    """Train ``cfg`` on the first 2/3 of the rows, return its ROC AUC on the rest."""
    cut = 2 * len(frame) // 3
    pre = Preprocessing.fit(spec, frame.iloc[:cut])
    num, cat = (torch.from_numpy(a) for a in pre.transform(frame))
    target = torch.from_numpy(y.astype(np.float32))
    torch.manual_seed(0)
    net = build_network(cfg, pre)
    opt = torch.optim.AdamW(net.parameters(), lr=1e-2)
    for _ in range(STEPS):
        opt.zero_grad()
        F.binary_cross_entropy_with_logits(net(num[:cut], cat[:cut]), target[:cut]).backward()
        opt.step()
    with torch.no_grad():
        return roc_auc_score(y[cut:], net.eval()(num[cut:], cat[cut:]).numpy())


MLP = NetworkConfig(hidden=[32, 32], dropout=0.0, d_embedding=8)


def test_periodic_embedding_fits_a_periodic_signal_a_plain_mlp_cannot() -> None:
    rng = np.random.default_rng(0)
    x = rng.uniform(-3, 3, ROWS)
    y = (np.sin(2 * np.pi * 2.5 * x) > 0).astype(int)  # 15 periods across the column
    spec, frame = spec_for(["x"]), pd.DataFrame({"x": x})
    periodic = fit_auc(spec, frame, y, MLP.model_copy(update={"numeric_embedding": "periodic", "frequency_scale": 4.0}))
    plain = fit_auc(spec, frame, y, MLP)
    assert periodic > 0.95 and plain < 0.7, (periodic, plain)


def test_piecewise_linear_embedding_fits_stripes_a_plain_mlp_cannot() -> None:
    rng = np.random.default_rng(1)
    x = rng.exponential(1.0, ROWS) - 0.5  # skewed, not log-transformed (it has negative values)
    y = (np.floor(np.argsort(np.argsort(x)) / ROWS * 16) % 2).astype(int)  # 16 stripes of equal mass
    spec, frame = spec_for(["x"]), pd.DataFrame({"x": x})
    ple = fit_auc(spec, frame, y, MLP.model_copy(update={"numeric_embedding": "ple"}))
    plain = fit_auc(spec, frame, y, MLP)
    assert ple > 0.95 and plain < 0.85, (ple, plain)


def test_quantile_scaling_spreads_a_heavy_tailed_column_standard_scaling_squeezes() -> None:
    rng = np.random.default_rng(2)
    x = rng.standard_cauchy(ROWS) ** 3  # tails so heavy that the std is set by a handful of rows
    y = ((x > 0.3) & (x < 1.5)).astype(int)  # the signal lives in the bulk, squeezed to ~0 by standard scaling
    spec, frame = spec_for(["x"]), pd.DataFrame({"x": x})
    quantile = fit_auc(spec, frame, y, MLP.model_copy(update={"numeric_scaling": "quantile"}))
    standard = fit_auc(spec, frame, y, MLP)
    assert quantile > 0.95 and standard < 0.8, (quantile, standard)


def test_the_network_fits_an_interaction_the_linear_baseline_cannot() -> None:
    rng = np.random.default_rng(3)
    a, b = rng.normal(size=ROWS), rng.choice(["p", "q"], ROWS)
    y = ((a > 0) ^ (b == "q")).astype(int)
    spec, frame = spec_for(["a"], ["b"]), pd.DataFrame({"a": a, "b": b})
    network = fit_auc(spec, frame, y, MLP.model_copy(update={"numeric_embedding": "ple"}))
    cut = 2 * ROWS // 3
    pre = Preprocessing.fit(spec, frame.iloc[:cut])
    linear = LogisticRegression(max_iter=1000).fit(pre.one_hot(frame.iloc[:cut]), y[:cut])
    baseline = roc_auc_score(y[cut:], linear.predict_proba(pre.one_hot(frame.iloc[cut:]))[:, 1])
    assert network > 0.95 and baseline < 0.6, (network, baseline)


def test_missing_value_flags_let_missingness_carry_signal() -> None:
    rng = np.random.default_rng(4)
    x = rng.normal(size=ROWS)
    y = rng.integers(0, 2, ROWS)
    x[y == 1] = np.where(rng.random((y == 1).sum()) < 0.8, np.nan, x[y == 1])  # most positives lack x
    spec, frame = spec_for(["x"]), pd.DataFrame({"x": x})
    assert fit_auc(spec, frame, y, MLP) > 0.85
