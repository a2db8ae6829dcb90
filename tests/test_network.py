"""Networks built from the spec's preprocessing, and the TabularModel bundle that packs them."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from torch.nn import functional as F

from ml_assets.dataset import DatasetSpec
from ml_assets.datasets.samples import demo_training_set
from ml_assets.model.bundle import LogisticWeights, TabularModel
from ml_assets.model.network import NetworkConfig, build_network
from ml_assets.model.preprocessing import Preprocessing


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Tiny tensors: a second intra-op thread only spins against the other tests sharing the cores."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def rows(adult_spec: DatasetSpec) -> pd.DataFrame:
    return demo_training_set(adult_spec, 1500)


@pytest.fixture(scope="module")
def pre(adult_spec: DatasetSpec, rows: pd.DataFrame) -> Preprocessing:
    return Preprocessing.fit(adult_spec, rows[rows["split"] == "train"])


@pytest.mark.parametrize("architecture", ["mlp", "transformer"])
def test_network_learns_and_every_parameter_gets_gradient(
    architecture: str, pre: Preprocessing, rows: pd.DataFrame
) -> None:
    torch.manual_seed(0)
    small = NetworkConfig(architecture=architecture, dropout=0.0, hidden=[32], d_token=16, n_layers=1, n_heads=2)
    net = build_network(small, pre)
    batch = rows.head(256)
    num, cat = (torch.from_numpy(a) for a in pre.transform(batch))
    y = torch.from_numpy(batch["label"].to_numpy(dtype=np.float32))
    logits = net(num, cat)
    assert logits.shape == (len(batch),)
    first = F.binary_cross_entropy_with_logits(logits, y)
    first.backward()
    no_grad = [n for n, p in net.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert not no_grad, f"parameters without gradient: {no_grad}"
    opt = torch.optim.AdamW(net.parameters(), lr=1e-2)
    for _ in range(25):
        opt.zero_grad()
        loss = F.binary_cross_entropy_with_logits(net(num, cat), y)
        loss.backward()
        opt.step()
    assert loss.item() < 0.8 * first.item()


def test_transformer_rejects_heads_that_do_not_divide_the_token(pre: Preprocessing) -> None:
    with pytest.raises(ValueError, match="not divisible by n_heads"):
        build_network(NetworkConfig(architecture="transformer", d_token=30, n_heads=4), pre)


@pytest.mark.parametrize("architecture", ["mlp", "transformer"])
def test_bundle_round_trip_predicts_identically(
    architecture: str, adult_spec: DatasetSpec, pre: Preprocessing, rows: pd.DataFrame, tmp_path
) -> None:
    cfg = NetworkConfig(architecture=architecture)
    torch.manual_seed(1)
    state = build_network(cfg, pre).state_dict()
    model = TabularModel(
        kind=architecture, spec_name=adult_spec.name, preprocessing=pre, network_config=cfg, state_dict=state
    )
    model.save(tmp_path)
    again = TabularModel.load(tmp_path)
    assert again.kind == architecture and again.spec_name == "adult" and again.threshold == 0.5
    assert again.feature_names == [*adult_spec.numeric_features, *adult_spec.categorical_features]
    new_rows = rows.head(50).copy()
    new_rows.loc[new_rows.index[0], "occupation"] = "Astronaut"  # unseen category
    new_rows.loc[new_rows.index[1], "hours_per_week"] = pd.NA
    p1, p2 = model.predict_proba(new_rows), again.predict_proba(new_rows)
    np.testing.assert_array_equal(p1, p2)
    assert p1.dtype == np.float64 and ((p1 > 0) & (p1 < 1)).all()
    assert set(np.unique(again.predict(new_rows))) <= {0, 1}


def test_bundle_rejects_mismatched_weights(adult_spec: DatasetSpec, pre: Preprocessing) -> None:
    state = build_network(NetworkConfig(hidden=[8]), pre).state_dict()
    with pytest.raises(RuntimeError, match="size mismatch"):
        TabularModel(
            kind="mlp",
            spec_name="adult",
            preprocessing=pre,
            network_config=NetworkConfig(hidden=[16]),
            state_dict=state,
        )
    with pytest.raises(ValueError, match="coefficients"):
        TabularModel(kind="logistic", spec_name="adult", preprocessing=pre, logistic=LogisticWeights([1.0], 0.0))
