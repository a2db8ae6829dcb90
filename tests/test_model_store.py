"""ModelStore over the real BentoML model store: save, load, stages as labels, listing, isolation by home."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from ml_assets.dataset import DatasetSpec
from ml_assets.datasets.samples import demo_training_set
from ml_assets.model.assets import BaselineConfig, fit_baseline
from ml_assets.model.bundle import TabularModel
from resources.model_store import ModelNotFoundError, ModelStore


@pytest.fixture(scope="module")
def training_set(adult_spec: DatasetSpec) -> pd.DataFrame:
    return demo_training_set(adult_spec, 1500)


@pytest.fixture(scope="module")
def model(adult_spec: DatasetSpec, training_set: pd.DataFrame) -> TabularModel:
    return fit_baseline(adult_spec, training_set, BaselineConfig())


def test_save_load_predicts_the_same(ml_home: Path, model: TabularModel, training_set: pd.DataFrame) -> None:
    store = ModelStore(home=str(ml_home / "bentoml"))
    tag = store.save(model, "adult-baseline", "candidate", {"training_set_version": "abc", "metrics": {"auc": 0.9}})
    assert tag.startswith("adult-baseline:")
    loaded = store.load(tag)
    test_rows = training_set[training_set["split"] == "test"]
    np.testing.assert_allclose(loaded.predict_proba(test_rows), model.predict_proba(test_rows))
    info = store.info(tag)
    assert info["labels"] == {"stage": "candidate", "kind": "logistic", "dataset": "adult"}
    assert info["metadata"]["training_set_version"] == "abc"
    assert info["metadata"]["metrics"] == {"auc": 0.9}
    # a real BentoML store entry: model.yaml where bentoml expects it
    assert (ml_home / "bentoml" / "models" / "adult-baseline" / tag.split(":")[1] / "model.yaml").is_file()


def test_stages_are_labels_that_persist(ml_home: Path, model: TabularModel) -> None:
    store = ModelStore(home=str(ml_home / "bentoml"))
    first = store.save(model, "adult-classifier", "candidate", {})
    time.sleep(0.01)
    second = store.save(model, "adult-classifier", "candidate", {})
    assert store.tags("adult-classifier") == [second, first]  # newest first
    store.set_stage(first, "champion")
    fresh = ModelStore(home=str(ml_home / "bentoml"))  # re-read from disk
    assert fresh.tags("adult-classifier", "champion") == [first]
    assert fresh.tags("adult-classifier", "candidate") == [second]
    assert fresh.info(first)["labels"]["stage"] == "champion"
    on_disk = yaml.safe_load((fresh.path(first) / "model.yaml").read_text())
    assert on_disk["labels"]["stage"] == "champion"
    assert fresh.load(first).kind == "logistic"  # relabelling left the model files intact
    store.set_stage(first, "retired")
    assert fresh.tags("adult-classifier", "champion") == []


def test_errors_and_isolation(ml_home: Path, model: TabularModel) -> None:
    a = ModelStore(home=str(ml_home / "a"))
    b = ModelStore(home=str(ml_home / "b"))
    tag = a.save(model, "adult-baseline", "candidate", {})
    assert b.tags("adult-baseline") == []
    with pytest.raises(ModelNotFoundError, match=f"{tag}.*not in the BentoML store at {ml_home / 'b'}"):
        b.load(tag)
    with pytest.raises(ValueError, match="unknown stage 'production'"):
        a.set_stage(tag, "production")
    with pytest.raises(ValueError, match="unknown stage"):
        a.save(model, "adult-baseline", "blessed", {})
