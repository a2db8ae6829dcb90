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


INPUTS = [
    {},
    {"numeric_embedding": "ple"},
    {"numeric_embedding": "periodic"},
    {"numeric_scaling": "quantile", "numeric_embedding": "periodic"},
    {"numeric_scaling": "quantile", "numeric_embedding": "ple"},
]


@pytest.mark.parametrize("inputs", INPUTS, ids=lambda d: "-".join(d.values()) or "plain")
@pytest.mark.parametrize("architecture", ["mlp", "transformer"])
def test_network_learns_and_every_parameter_gets_gradient(
    architecture: str, inputs: dict, pre: Preprocessing, rows: pd.DataFrame
) -> None:
    torch.manual_seed(0)
    small = NetworkConfig(
        architecture=architecture, dropout=0.0, hidden=[32], d_token=16, n_layers=1, n_heads=2, **inputs
    )
    net = build_network(small, pre)
    batch = rows.head(256).copy()
    for name in pre.numeric_names:  # a missing value per column, so every missing-flag weight is used
        batch[name] = batch[name].astype("Float64")
        batch.loc[batch.index[pre.numeric_names.index(name)], name] = pd.NA
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


def ensemble_config() -> NetworkConfig:
    """Three different networks averaged: the form a search's ensemble takes."""
    members = [
        NetworkConfig(numeric_scaling="quantile", numeric_embedding="periodic", hidden=[16]),
        NetworkConfig(numeric_embedding="ple", hidden=[16, 8], logit_offset=-1.2),  # a class-weighted trial
        NetworkConfig(architecture="transformer", d_token=8, n_heads=2, n_layers=1),
    ]
    return NetworkConfig(architecture="ensemble", members=members)


@pytest.mark.parametrize("architecture", ["mlp", "transformer", "ensemble"])
def test_bundle_round_trip_predicts_identically(
    architecture: str, adult_spec: DatasetSpec, pre: Preprocessing, rows: pd.DataFrame, tmp_path
) -> None:
    cfg = ensemble_config() if architecture == "ensemble" else NetworkConfig(architecture=architecture)
    torch.manual_seed(1)
    state = build_network(cfg, pre).state_dict()
    model = TabularModel(kind=architecture, spec=adult_spec, preprocessing=pre, network_config=cfg, state_dict=state)
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
            spec=adult_spec,
            preprocessing=pre,
            network_config=NetworkConfig(hidden=[16]),
            state_dict=state,
        )
    with pytest.raises(ValueError, match="coefficients"):
        TabularModel(kind="logistic", spec=adult_spec, preprocessing=pre, logistic=LogisticWeights([1.0], 0.0))


def test_an_ensemble_averages_its_members_in_probability(pre: Preprocessing, rows: pd.DataFrame) -> None:
    cfg = ensemble_config()
    torch.manual_seed(2)
    ensemble = build_network(cfg, pre).eval()
    members = [build_network(m, pre).eval() for m in cfg.members]
    for i, member in enumerate(members):
        member.load_state_dict(
            {
                k.removeprefix(f"members.{i}."): v
                for k, v in ensemble.state_dict().items()
                if k.startswith(f"members.{i}.")
            }
        )
    num, cat = (torch.from_numpy(a) for a in pre.transform(rows.head(64)))
    with torch.no_grad():
        mean = torch.stack([torch.sigmoid(m(num, cat).double()) for m in members]).mean(0)
        np.testing.assert_allclose(torch.sigmoid(ensemble(num, cat)).numpy(), mean.numpy(), rtol=1e-9)


def test_served_ensemble_predictions_equal_its_offline_ones(
    adult_spec: DatasetSpec, pre: Preprocessing, rows: pd.DataFrame, tmp_path
) -> None:
    """Offline: the model in memory, as the candidate asset packs it. Served: loaded back from its directory
    through TabularModel.load and scored by the Bento's Scorer on validated request records."""
    from ml_assets.serving.schema import request_schemas
    from ml_assets.serving.scoring import Scorer

    cfg = ensemble_config()
    torch.manual_seed(3)
    state = build_network(cfg, pre).state_dict()
    offline = TabularModel(kind="ensemble", spec=adult_spec, preprocessing=pre, network_config=cfg, state_dict=state)
    offline.save(tmp_path / "model")
    served_model = TabularModel.load(tmp_path / "model")
    assert served_model.kind == "ensemble" and len(served_model.network_config.members) == 3
    batch = rows.head(40)
    names = [c.name for c in adult_spec.feature_columns]
    records = batch[names].astype(object).where(batch[names].notna(), None).to_dict("records")
    adapter = request_schemas(adult_spec).record_adapter
    served = Scorer(adult_spec, served_model, "adult-classifier:ensemble", log=None).score(
        [adapter.validate_python(r) for r in records]
    )
    np.testing.assert_array_equal([p["probability"] for p in served], offline.predict_proba(batch))


@pytest.mark.parametrize("inputs", INPUTS, ids=lambda d: "-".join(d.values()) or "plain")
@pytest.mark.parametrize("architecture", ["mlp", "transformer"])
def test_bf16_weights_take_float32_inputs_and_encode_them_in_float32(
    architecture: str, inputs: dict, pre: Preprocessing, rows: pd.DataFrame
) -> None:
    """GPU training runs bf16 weights on the float32 inputs serving uses. The scaling and encodings compute in
    float32 (bf16 has 3 digits: a periodic phase 2 pi c x at high frequency would be noise), so they give exactly
    what the float32 model serving loads gives; only the layers after them round."""
    cfg = NetworkConfig(
        architecture=architecture, hidden=[16], d_token=8, n_heads=2, n_layers=1, frequency_scale=24.0, **inputs
    )
    torch.manual_seed(0)
    half = build_network(cfg, pre).eval().to(torch.bfloat16)
    full = build_network(cfg, pre).eval()  # what serving loads: the bf16 run's weights as float32
    full.load_state_dict({k: v.float() for k, v in half.state_dict().items()})
    num, cat = (torch.from_numpy(a) for a in pre.transform(rows.head(64)))
    with torch.no_grad():
        p_half = torch.sigmoid(half(num, cat).float()).numpy()
        p_full = torch.sigmoid(full(num, cat)).numpy()
        assert np.abs(p_half - p_full).max() < 0.1
        owner = (lambda m: m.tokenizer) if architecture == "transformer" else (lambda m: m)
        values = num[:, 0::2]
        if owner(full).scaling is not None:
            np.testing.assert_array_equal(owner(half).scaling(values), owner(full).scaling(values))
            values = owner(full).scaling(values)
        if hasattr(owner(full), "numeric_embedding"):
            encoded = owner(half).numeric_embedding.encode(values)
            assert encoded.dtype == torch.float32
            np.testing.assert_array_equal(encoded, owner(full).numeric_embedding.encode(values))
