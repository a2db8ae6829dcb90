"""The gbdt family: with ``gbdt`` in ``search.families`` gradient-boosted trees compete for the candidate on the same
validation rows as the networks, and a trees candidate is stored, judged by the same gates, built into the same Bento
and served like a network.

With ``families: [gbdt]`` no DeepSpeed rank starts (the fast tier's guard would fail the test otherwise); the Bento
test serves the trees for real (``bentoml serve``) and is marked integration.
"""

from __future__ import annotations

from pathlib import Path

import bentoml.models  # noqa: F401  first imported at collection: it runs ldconfig (trio), which a fast test may not
import httpx
import numpy as np
import pandas as pd
import pytest

from ml_assets.dataset import DatasetSpec
from ml_assets.datasets.samples import demo_training_set
from ml_assets.model.bundle import TabularModel
from ml_assets.model.gates import GATE_NAMES
from ml_assets.model.refs import load_stored
from ml_assets.serving.assets import validation_sample
from ml_assets.serving.build import build_bento
from resources.model_store import ModelLineage, ModelStore
from resources.process_tree import stop_tree
from tests.conftest import in_process, pinned
from tests.serving_support import serve
from tests.test_gates_e2e import (  # noqa: F401  (module fixtures: the real training set and fitted models)
    Pipeline,
    checks,
    models,
    spec,
    training_set,
    window_end,
)
from tests.training_graph import WINDOW_END, build_graph, run_assets, trainer


def trees_only(base: DatasetSpec) -> DatasetSpec:
    return pinned(base, search=base.search.model_copy(update={"families": ["gbdt"]}))


@pytest.fixture(scope="module")
def candidate(tmp_path_factory: pytest.TempPathFactory, adult_spec: DatasetSpec):
    """candidate_model run for real in process with only the gbdt family listed: its ref, metadata and store."""
    home = tmp_path_factory.mktemp("gbdt")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("ML_ASSETS_HOME", str(home))
        mp.setenv("BENTOML_DO_NOT_TRACK", "true")
        spec = trees_only(adult_spec)
        graph = build_graph(spec, demo_training_set(spec, 6000, seed=0, window_end=WINDOW_END), home)
        result = run_assets(graph, home, ["candidate_model"], trainer())
        assert result.success
        ref = result.output_for_node("candidate_model")
        meta = result.asset_materializations_for_node("candidate_model")[0].metadata
        yield ref, meta, ModelStore(home=str(home / "bentoml")), home


def test_with_only_gbdt_listed_the_candidate_is_trees_and_no_rank_starts(candidate) -> None:
    ref, meta, store, _ = candidate
    assert ref.kind == "gbdt" and meta["family"].value == "gbdt"
    assert "| gbdt |" in meta["families"].value and meta["boosting_rounds"].value > 0
    model = load_stored(store, ref.tag)
    assert isinstance(model, TabularModel) and model.kind == "gbdt" and 0.0 < model.threshold < 1.0
    assert meta["decision_threshold"].value == pytest.approx(model.threshold)
    # Platt scaling on validation, stored with the model when it lowered the validation log loss, and said either way
    said = meta["calibration"].value
    assert said.startswith(("calibrated on validation", "not calibrated")), said
    assert (model.calibration is not None) == said.startswith("calibrated"), said
    assert store.info(ref.tag).lineage.config["family"] == "gbdt"


def test_a_saved_gbdt_model_predicts_what_it_predicted_before_saving(
    tmp_path: Path, candidate, adult_spec: DatasetSpec
) -> None:
    ref, _, store, _ = candidate
    model = load_stored(store, ref.tag)
    model.save(tmp_path / "copy")
    again = TabularModel.load(tmp_path / "copy")
    rows = demo_training_set(adult_spec, 300, seed=3, window_end=WINDOW_END)
    rows.loc[rows.index[:5], "workclass"] = "never-seen"  # unseen categories and missing values score too
    rows.loc[rows.index[5:10], "age"] = pd.NA
    p = again.predict_proba(rows)
    np.testing.assert_allclose(p, model.predict_proba(rows), atol=0)
    assert np.all((p > 0) & (p < 1)) and again.threshold == model.threshold


@in_process
def test_a_trees_candidate_goes_through_the_same_gates_to_champion(tmp_path, monkeypatch, candidate, request) -> None:
    real = [request.getfixturevalue(n) for n in ("spec", "training_set", "window_end", "models")]  # test_gates_e2e's
    pipeline = Pipeline(tmp_path, monkeypatch, *real)
    ref, _, store, _ = candidate
    tag = pipeline.store.save(load_stored(store, ref.tag), "adult-classifier", ModelLineage(config={"family": "gbdt"}))
    result = pipeline.run(tag)
    assert result.success, checks(result)
    assert set(checks(result)) == set(GATE_NAMES) and all(checks(result).values())
    assert pipeline.champions() == [tag]


@pytest.mark.integration
def test_a_trees_candidate_serves_from_its_bento_like_a_network(candidate, adult_spec: DatasetSpec) -> None:
    ref, _, store, home = candidate
    bentoml_home = home / "bentoml"
    bento = build_bento(ref.tag, bentoml_home)
    records, rows = validation_sample(adult_spec, demo_training_set(adult_spec, 3000, seed=5, window_end=WINDOW_END))
    pid, url = serve(bento.tag, ref.tag, home, bentoml_home)
    try:
        answer = httpx.post(url + "/predict_batch", json={"records": records}, timeout=60)
        assert answer.status_code == 200, answer.text
        got = answer.json()
        offline = load_stored(store, ref.tag)
        np.testing.assert_allclose([p["probability"] for p in got], offline.predict_proba(rows), atol=1e-6, rtol=0)
        assert {p["model_tag"] for p in got} == {ref.tag}
        assert [p["label"] for p in got] == offline.predict(rows).tolist()
    finally:
        stop_tree(pid)
