"""The model assets over one approved training_set partition, in process: shared by the DeepSpeed integration tests
(test_training.py, which launch ranks) and the fast tests of what is refused before anything launches
(test_training_config.py)."""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Any

import pandas as pd
from dagster import (
    AssetsDefinition,
    DagsterInstance,
    DailyPartitionsDefinition,
    FilesystemIOManager,
    asset,
    materialize,
)

from ml_assets.data.approval import build_approved_training_set
from ml_assets.data.window import TrainingWindow
from ml_assets.dataset import DatasetSpec
from ml_assets.model.assets import build_model_assets
from ml_assets.settings import paths
from resources.deepspeed_trainer import DeepSpeedTrainer
from resources.launchers import LocalTorchrunLauncher
from resources.model_store import ModelStore
from resources.training_storage import TrainingStorage
from tests.windows import window_of

WINDOW_END = date(2026, 1, 10)
# Small and quick: ~18 steps per rank per epoch on 3000 rows, a handful of epochs.
FAST = {"micro_batch_size": 64, "max_epochs": 4, "learning_rate": 5e-3, "early_stopping_patience": 4}


def build_graph(spec: DatasetSpec, frame: pd.DataFrame, home: Path) -> dict[str, Any]:
    """``frame`` materialized as the training_set partition of WINDOW_END and approved; the model assets read the
    approved window."""
    daily = DailyPartitionsDefinition(start_date="2026-01-01", end_date="2026-01-11")

    @asset(name="training_set", partitions_def=daily)
    def training_set() -> TrainingWindow:
        # rows shuffled: the model assets must not depend on the order the files hold them in
        return window_of(spec, frame.sample(frac=1.0, random_state=1), home / "tables")

    instance = DagsterInstance.ephemeral()
    io = FilesystemIOManager(base_dir=str(home / "storage"))
    materialize([training_set], partition_key=WINDOW_END.isoformat(), instance=instance, resources={"io_manager": io})
    approved = build_approved_training_set(daily, [])  # this window has no checks: nothing to fail
    materialize([training_set, approved], selection=[approved], instance=instance, resources={"io_manager": io})
    models = {a.key.to_user_string(): a for a in build_model_assets(spec)}
    return {"source": [training_set, approved], "models": models, "instance": instance, "io": io}


def run_assets(
    graph: dict[str, Any],
    home: Path,
    names: list[str],
    trainer: DeepSpeedTrainer,
    trials: int = 1,
    max_seconds: float | None = None,
    **kw: Any,
):
    """Materialize the named model assets; the candidate trains ``trials`` networks (one unless a test searches)
    within ``max_seconds`` (default: the spec's budget)."""
    selected: list[AssetsDefinition] = [graph["models"][n] for n in names]
    if "candidate_model" in names:
        config: dict[str, Any] = {"trials": trials} | ({"max_seconds": max_seconds} if max_seconds else {})
        kw["run_config"] = {"ops": {"candidate_model": {"config": config}}}
    return materialize(
        [*graph["source"], *graph["models"].values()],
        selection=selected,
        instance=graph["instance"],
        resources={
            "io_manager": graph["io"],
            "model_store": ModelStore(home=str(home / "bentoml")),
            "trainer": trainer,
        },
        **kw,
    )


def trainer(**fields: Any) -> DeepSpeedTrainer:
    """Two ranks, ZeRO-2 and FAST, with ``fields`` on top; staging under the current ML_ASSETS_HOME."""
    storage = TrainingStorage(root=str(paths().staging))
    return DeepSpeedTrainer(
        launcher=LocalTorchrunLauncher(), storage=storage, **{"ranks": 2, "zero_stage": 2, **FAST, **fields}
    )
