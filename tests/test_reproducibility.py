"""Training is reproducible (The ML Test Score, infrastructure-1): the comparison on constructed figures (fast), and
for real: the champion's network trained twice through the DeepSpeedTrainer on two CPU ranks, same seed, data
and code, passes; a second run with another seed, held to a tolerance a seed cannot meet, fails (integration)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from dagster import AssetCheckEvaluation, Output, asset, materialize

from ml_assets.dataset import DatasetSpec
from ml_assets.datasets.samples import demo_training_set
from ml_assets.model.bundle import ModelRef
from ml_assets.readiness.reproducibility import (
    CHECK,
    ReproducibilityConfig,
    beyond,
    build_reproducibility,
    champion_trial,
    compare,
)
from resources.model_store import ModelLineage, ModelStore
from tests.training_graph import WINDOW_END, build_graph, run_assets, trainer


def test_figures_that_differ_beyond_the_tolerance_are_named_and_equal_ones_pass() -> None:
    same = {"roc_auc": 0.91, "log_loss": 0.30}
    assert beyond(compare(same, dict(same)), 0.002) == []
    other_seed = {"roc_auc": 0.905, "log_loss": 0.3015}
    [off] = beyond(compare(same, other_seed), 0.002)
    assert off.metric == "roc_auc" and round(off.gap, 6) == 0.005
    # a figure only one run reports is a difference, never a silent pass
    assert [d.metric for d in beyond(compare(same, {"roc_auc": 0.91}), 0.002)] == ["log_loss"]
    assert ReproducibilityConfig().tolerance == 0.002 and ReproducibilityConfig().seed_offset == 0


def test_the_retrained_trial_is_the_champions_kept_network_with_its_settings() -> None:
    lineage = {
        "config": {"network": {"architecture": "mlp", "hidden": [32]}},
        "search": {
            "best_trial": "trial-02",
            "trials": [{"trial": "trial-00"}, {"trial": "trial-02", "learning_rate": 0.01, "val_roc_auc": 0.9}],
        },
    }
    assert champion_trial(ModelLineage(**lineage)) == {
        "network": {"architecture": "mlp", "hidden": [32]},
        "learning_rate": 0.01,
    }
    trees = champion_trial(ModelLineage())  # trees won: the configured network is what the path trains
    assert trees["network"]["architecture"] == "mlp"


@pytest.mark.integration
def test_same_seed_retraining_reproduces_and_another_seed_fails(adult_spec: DatasetSpec, ml_home: Path) -> None:
    home = ml_home
    frame: pd.DataFrame = demo_training_set(adult_spec, 2000, seed=0, window_end=WINDOW_END)
    graph = build_graph(adult_spec, frame, home)
    fast = trainer(max_epochs=3)
    trained = run_assets(graph, home, ["candidate_model"], fast)
    assert trained.success
    tag = trained.asset_materializations_for_node("candidate_model")[0].metadata["model_tag"].value

    @asset(name="champion_model")
    def champion_model() -> Output[ModelRef]:
        return Output(ModelRef(tag=tag, name=tag.split(":")[0], kind="network", metrics={}, training_set_version=""))

    def judge(**config: Any) -> AssetCheckEvaluation:
        result = materialize(
            [*graph["source"], champion_model, build_reproducibility(adult_spec)],
            selection=["champion_model", "reproducibility"],
            instance=graph["instance"],
            resources={
                "io_manager": graph["io"],
                "model_store": ModelStore(home=str(home / "bentoml")),
                "trainer": fast,
            },
            run_config={"ops": {"reproducibility": {"config": config}}},
        )
        assert result.success
        [verdict] = result.get_asset_check_evaluations()
        assert verdict.check_name == CHECK
        return verdict

    same = judge()
    assert same.passed, same.description
    other = judge(seed_offset=1, tolerance=1e-6)
    assert not other.passed and "(seeds 0 and 1)" in other.description, other.description
