"""The logistic family, listed first by default: the baseline's own logistic regression competes for the candidate,
so a network or trees that do not beat it on validation by more than noise are not the candidate, the simple
model is (baseline first: on ISLP's Default a network 0.0003 of ROC AUC under the baseline was blocked by
``beats_baseline`` and nothing served). The rule itself is test_family_choice's.

Listed without a network family no DeepSpeed rank starts, so these run in the fast tier.
"""

from __future__ import annotations

from pathlib import Path

import bentoml.models  # noqa: F401  first imported at collection: it runs ldconfig (trio), which a fast test may not
import numpy as np
import pytest

from ml_assets.dataset import CandidateSearch, DatasetSpec
from ml_assets.datasets.samples import demo_training_set
from ml_assets.model.refs import load_stored
from resources.model_store import ModelStore
from tests.conftest import pinned
from tests.training_graph import WINDOW_END, build_graph, run_assets, trainer


def test_the_default_families_put_the_logistic_regression_first() -> None:
    assert CandidateSearch().families[0] == "logistic" and CandidateSearch().networks == ["mlp", "transformer"]


def models_with(adult_spec: DatasetSpec, home: Path, families: list[str]):
    """baseline_model and candidate_model run for real in process under ``home``, with ``families`` listed; the
    run's result and the model store."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("ML_ASSETS_HOME", str(home))
        mp.setenv("BENTOML_DO_NOT_TRACK", "true")
        spec = pinned(adult_spec, search=adult_spec.search.model_copy(update={"families": families}))
        graph = build_graph(spec, demo_training_set(spec, 6000, seed=0, window_end=WINDOW_END), home)
        result = run_assets(graph, home, ["baseline_model", "candidate_model"], trainer())
    assert result.success
    return result, ModelStore(home=str(home / "bentoml"))


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory, adult_spec: DatasetSpec):
    """The logistic and gbdt families listed."""
    return models_with(adult_spec, tmp_path_factory.mktemp("logistic"), ["logistic", "gbdt"])


def test_the_families_are_judged_on_validation_and_the_logistic_one_is_the_baselines_fit(run) -> None:
    result, store = run
    meta = result.asset_materializations_for_node("candidate_model")[0].metadata
    table = meta["families"].value
    assert "| logistic |" in table and "| gbdt |" in table, table
    lineage = store.info(result.output_for_node("candidate_model").tag).lineage
    judged = lineage.families
    assert meta["family"].value in judged and meta["family_choice"].value.startswith(
        f"the {meta['family'].value} family"
    )
    assert lineage.config["family"] == meta["family"].value
    # compared on the validation rows no family was selected on: the second half of the validation span
    assert "compared on the second half of the validation span" in meta["family_choice"].value
    baseline = load_stored(store, result.output_for_node("baseline_model").tag)
    assert 0.5 < judged["logistic"] < 1 and judged["logistic"] != baseline_validation_roc_auc(result)
    assert baseline.kind == "logistic" and baseline.logistic is not None


def baseline_validation_roc_auc(result) -> float:
    return result.asset_materializations_for_node("baseline_model")[0].metadata["val_roc_auc"].value


def test_a_logistic_candidate_is_stored_and_predicts_like_the_baseline(tmp_path, adult_spec) -> None:
    """Listed alone, the logistic family is the candidate: the baseline's coefficients, its own threshold and
    calibration, stored under the classifier's name like any candidate."""
    result, store = models_with(adult_spec, tmp_path, ["logistic"])
    ref = result.output_for_node("candidate_model")
    assert ref.kind == "logistic" and ref.name == "adult-classifier"
    meta = result.asset_materializations_for_node("candidate_model")[0].metadata
    assert meta["family"].value == "logistic" and meta["sample_rows"].value > 0
    candidate = load_stored(store, ref.tag)
    baseline = load_stored(store, result.output_for_node("baseline_model").tag)
    assert candidate.logistic == baseline.logistic
    rows = demo_training_set(adult_spec, 300, seed=3, window_end=WINDOW_END)
    np.testing.assert_allclose(candidate.raw_scores(rows), baseline.predict_proba(rows), atol=1e-12)
    assert 0.0 < candidate.threshold < 1.0
