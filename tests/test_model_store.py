"""ModelStore over the real BentoML model store: save, load, listing, isolation by home. It is the adapter to BentoML's
private store API (``_internal`` ModelStore, ``_model_store=``): a BentoML change fails here."""

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
from ml_assets.model.refs import load_stored
from resources.model_store import ModelLineage, ModelNotFoundError, ModelStore


@pytest.fixture(scope="module")
def training_set(adult_spec: DatasetSpec) -> pd.DataFrame:
    return demo_training_set(adult_spec, 1500)


@pytest.fixture(scope="module")
def model(adult_spec: DatasetSpec, training_set: pd.DataFrame) -> TabularModel:
    return fit_baseline(adult_spec, training_set, BaselineConfig())


def test_save_load_predicts_the_same(ml_home: Path, model: TabularModel, training_set: pd.DataFrame) -> None:
    store = ModelStore(home=str(ml_home / "bentoml"))
    tag = store.save(model, "adult-baseline", ModelLineage(training_set_version="abc", validation_metrics={"auc": 0.9}))
    assert tag.startswith("adult-baseline:")
    loaded = load_stored(store, tag)
    test_rows = training_set[training_set["split"] == "test"]
    np.testing.assert_allclose(loaded.predict_proba(test_rows), model.predict_proba(test_rows))
    info = store.info(tag)
    assert (info.kind, info.dataset) == ("logistic", "adult")
    assert info.lineage == ModelLineage(training_set_version="abc", validation_metrics={"auc": 0.9})
    # a real BentoML store entry: model.yaml where bentoml expects it
    assert (ml_home / "bentoml" / "models" / "adult-baseline" / tag.split(":")[1] / "model.yaml").is_file()


def test_versions_are_listed_newest_first_and_never_rewritten(ml_home: Path, model: TabularModel) -> None:
    store = ModelStore(home=str(ml_home / "bentoml"))
    first = store.save(model, "adult-classifier", ModelLineage())
    time.sleep(0.01)
    second = store.save(model, "adult-classifier", ModelLineage())
    fresh = ModelStore(home=str(ml_home / "bentoml"))  # re-read from disk
    assert fresh.tags("adult-classifier") == [second, first]
    on_disk = yaml.safe_load((fresh.path(first) / "model.yaml").read_text())
    assert on_disk["labels"] == {"kind": "logistic", "dataset": "adult"}
    assert load_stored(fresh, first).kind == "logistic"


def test_errors_and_isolation(ml_home: Path, model: TabularModel) -> None:
    a = ModelStore(home=str(ml_home / "a"))
    b = ModelStore(home=str(ml_home / "b"))
    tag = a.save(model, "adult-baseline", ModelLineage())
    assert b.tags("adult-baseline") == []
    with pytest.raises(ModelNotFoundError, match=f"{tag}.*not in the BentoML store at {ml_home / 'b'}"):
        load_stored(b, tag)
