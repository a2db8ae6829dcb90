"""DeepSpeed training through Dagster, for real: two CPU ranks (gloo) under torchrun via Pipes, ZeRO-2.

Materializes baseline_model and candidate_model in process from a small training_set partition (a tiny
upstream asset stands in for the data assets), then checks metrics in the metadata, the stored model on unseen
rows, resume after a killed run, reproducibility. What is refused before anything launches is tested without
processes in test_training_config.py.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import psutil
import pytest
from dagster import DagsterInstance

from ml_assets.dataset import DatasetSpec, SuccessiveHalving
from ml_assets.datasets.samples import demo_training_set
from ml_assets.model.metrics import validation_scores
from ml_assets.model.refs import load_stored
from resources.model_store import ModelStore
from tests.training_graph import FAST, WINDOW_END, build_graph, run_assets, trainer

pytestmark = pytest.mark.integration

ROWS = 3000
SEARCH_TRIALS = 3


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    home = tmp_path_factory.mktemp("ml_home")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("ML_ASSETS_HOME", str(home))
        mp.setenv("BENTOML_HOME", str(home / "bentoml"))
        mp.setenv("BENTOML_DO_NOT_TRACK", "true")
        yield home


@pytest.fixture(scope="module")
def frame(adult_spec: DatasetSpec) -> pd.DataFrame:
    return demo_training_set(adult_spec, ROWS, seed=0, window_end=WINDOW_END)


@pytest.fixture(scope="module")
def graph(adult_spec: DatasetSpec, frame: pd.DataFrame, home: Path) -> dict[str, Any]:
    # rungs at 2 and 4 epochs (FAST trains 4), so a search of 3 halves once; the networks alone compete (this module
    # is about their training: the logistic family, listed by default, is test_logistic_candidate's)
    networks = {"halving": SuccessiveHalving(min_epochs=2, eta=2), "families": ["mlp", "transformer"]}
    return build_graph(
        adult_spec.model_copy(update={"search": adult_spec.search.model_copy(update=networks)}), frame, home
    )


def metadata(result, name: str) -> dict[str, Any]:
    (mat,) = result.asset_materializations_for_node(name)
    return {k: v.value for k, v in mat.metadata.items()}


@pytest.fixture(scope="module")
def first_run(graph: dict[str, Any], home: Path):
    started = time.perf_counter()
    result = run_assets(graph, home, ["baseline_model", "candidate_model"], trainer(), trials=SEARCH_TRIALS)
    return result, time.perf_counter() - started


def test_two_rank_zero2_training_lands_in_dagster_and_the_store(
    first_run, graph: dict[str, Any], home: Path, frame: pd.DataFrame, adult_spec: DatasetSpec
) -> None:
    result, _seconds = first_run
    assert result.success
    # the launch went through TrainingStorage: the job and the outputs stay, the staged rows are gone
    staged = home / "staging" / result.run_id
    assert sorted(p.name for p in staged.iterdir()) == ["job.json", "output"]
    assert sorted(p.name for p in (staged / "output").iterdir()) == [
        "preprocessing.json",
        "result.json",
        "state_dict.pt",
    ]
    meta = metadata(result, "candidate_model")
    assert meta["ranks"] == 2 and meta["zero_stage"] == 2 and meta["device"] == "cpu" and meta["precision"] == "fp32"
    assert meta["samples_per_s"] > 0 and meta["launch_to_first_step_s"] > 0
    assert meta["epochs_run"] == FAST["max_epochs"] and meta["resumed_from_epoch"] == 0
    assert meta["val_roc_auc"] > 0.8, meta["validation_metrics"]
    assert "| training (ranks) |" in meta["validation_metrics"]
    assert meta["loss_curve"].startswith("![loss curve](data:image/png;base64,iVBOR")
    # per-epoch progress streamed from rank 0 through Pipes into the step's Dagster log
    assert logged(graph["instance"], result.run_id, "trial-00 epoch 1/4: train_loss")
    # the search: every trial trained in this one launch, each in the metadata; the best on validation kept
    assert meta["trials_run"] == SEARCH_TRIALS and logged(graph["instance"], result.run_id, "search: trial-")
    summary = ModelStore(home=str(home / "bentoml")).info(meta["model_tag"]).lineage.search
    trials = summary["trials"]
    assert [t["trial"] for t in trials] == [f"trial-{i:02d}" for i in range(SEARCH_TRIALS)]
    assert len({json.dumps(t, sort_keys=True) for t in trials}) == SEARCH_TRIALS
    # successive halving (rungs at 2 and 4 epochs): the worst after 2 epochs stops there, the others go on
    assert sorted(t["stopped_at_epoch"] for t in trials) == [2, 4, 4]
    cut = next(t for t in trials if t["stopped_at_epoch"] == 2)
    assert cut["status"] == "stopped by halving" and logged(graph["instance"], result.run_id, "successive halving")
    assert cut["val_roc_auc"] == min(t["val_roc_auc"] for t in trials)
    best = max(trials, key=lambda t: t["val_roc_auc"])
    assert summary["best_trial"] == meta["best_trial"] == best["trial"] and summary["select_by"] == "roc_auc"
    assert f"| yes | {best['trial']} |" in meta["search"]
    members = summary["ensemble"]
    kind = "ensemble" if members else "mlp"
    if members:  # kept only because it beats the best trial on validation
        assert best["trial"] in members and meta["val_roc_auc"] > best["val_roc_auc"]
        assert {t["trial"] for t in trials if t["in_model"] == "yes"} == set(members)
    else:
        assert meta["val_roc_auc"] == pytest.approx(best["val_roc_auc"])

    ref = result.output_for_node("candidate_model")
    assert ref.tag == meta["model_tag"] and ref.name == "adult-classifier" and ref.kind == kind
    store = ModelStore(home=str(home / "bentoml"))
    info = store.info(ref.tag)
    assert (info.kind, info.dataset) == (kind, "adult")
    lineage = info.lineage
    assert lineage.training_set_version == ref.training_set_version
    assert lineage.ranks == 2 and lineage.config["deepspeed"]["zero_optimization"]["stage"] == 2
    assert lineage.code_version and lineage.validation_metrics and lineage.samples_per_s and lineage.wall_seconds
    assert lineage.device

    model = load_stored(store, ref.tag)
    unseen = frame[frame["split"] == "test"]  # never staged for training
    proba = model.predict_proba(unseen)
    assert proba.shape == (len(unseen),) and np.isfinite(proba).all()
    assert validation_scores(unseen["label"].to_numpy(), proba)["roc_auc"] > 0.8
    # the stored model reproduces what the ranks measured on the validation rows they selected on: the first half
    # of the validation span (the families are compared on the second)
    times = pd.to_datetime(frame[adult_spec.time.name])
    start = times[frame["split"] == "validation"].min().normalize()
    middle = start + (times[frame["split"] == "test"].min().normalize() - start) / 2
    val = frame[(frame["split"] == "validation") & (times < middle)]
    served = validation_scores(val["label"].to_numpy(), model.predict_proba(val))
    assert served["roc_auc"] == pytest.approx(ref.metrics["roc_auc"], abs=1e-4)

    base = result.output_for_node("baseline_model")
    assert base.kind == "logistic" and base.metrics["roc_auc"] > 0.85
    assert base.training_set_version == ref.training_set_version
    assert store.tags("adult-baseline") == [base.tag]


def logged(instance: DagsterInstance, run_id: str, text: str) -> bool:
    """Whether a log line (e.g. one rank 0 sent through Pipes) reached the run's Dagster event log."""
    return any(text in entry.user_message for entry in instance.all_logs(run_id))


def test_same_seed_and_data_give_the_same_metrics(first_run, graph, home: Path, tmp_path: Path) -> None:
    first = first_run[0].output_for_node("candidate_model")
    fresh = trainer(checkpoint_dir=str(tmp_path / "fresh"))
    again = run_assets(graph, home, ["candidate_model"], fresh, trials=SEARCH_TRIALS)
    second = again.output_for_node("candidate_model")
    assert metadata(again, "candidate_model")["resumed_from_epoch"] == 0  # a fresh run, not a resume
    assert second.tag != first.tag
    for key in ("log_loss", "roc_auc", "accuracy"):
        assert second.metrics[key] == pytest.approx(first.metrics[key], abs=1e-4), key


def test_past_the_budget_no_trial_trains_further(graph, home: Path, tmp_path: Path) -> None:
    """The first trial always trains its first rung; past ``max_seconds`` (here: before the second starts) the
    search ends and the trial table says which trials the budget stopped or skipped."""
    result = run_assets(
        graph, home, ["candidate_model"], trainer(checkpoint_dir=str(tmp_path)), trials=3, max_seconds=0.5
    )
    meta = metadata(result, "candidate_model")
    trials = ModelStore(home=str(home / "bentoml")).info(meta["model_tag"]).lineage.search["trials"]
    assert [t["status"] for t in trials] == ["stopped (budget)", "skipped (budget)", "skipped (budget)"]
    assert trials[0]["stopped_at_epoch"] == 2 and meta["best_trial"] == "trial-00" and meta["trials_run"] == 1
    assert logged(graph["instance"], result.run_id, "search budget of 0.5 s used")


def kill_after_first_checkpoint(root: Path, stop: threading.Event, killed: list[int]) -> None:
    """Wait for DeepSpeed's ``latest`` marker, then SIGKILL the torchrun process group this test started."""
    while not stop.is_set():
        if any(root.rglob("latest")):
            me = psutil.Process()
            runs = [p for p in me.children(recursive=True) if "torch.distributed.run" in " ".join(p.cmdline())]
            for run in runs:
                victims = [*run.children(recursive=True), run]
                for p in victims:
                    p.kill()
                    killed.append(p.pid)
            return
        time.sleep(0.02)


def test_killed_run_resumes_from_its_last_checkpoint(graph, home: Path, tmp_path: Path) -> None:
    root = tmp_path / "ckpt"
    slow = trainer(checkpoint_dir=str(root), max_epochs=10, early_stopping_patience=10)
    stop, killed = threading.Event(), []
    watcher = threading.Thread(target=kill_after_first_checkpoint, args=(root, stop, killed), daemon=True)
    watcher.start()
    try:
        died = run_assets(graph, home, ["candidate_model"], slow, raise_on_error=False)
    finally:
        stop.set()
        watcher.join(timeout=5)
    assert killed, "the watcher never saw a checkpoint"
    assert not died.success
    failure = next(e for e in died.all_events if e.event_type_value == "STEP_FAILURE")
    assert "training process group (2 cpu rank(s)" in failure.event_specific_data.error.message

    rerun = run_assets(graph, home, ["candidate_model"], slow)
    meta = metadata(rerun, "candidate_model")
    assert 1 <= meta["resumed_from_epoch"] < 10, meta
    assert meta["epochs_run"] == 10
    assert logged(graph["instance"], rerun.run_id, "resumed from checkpoint of epoch")


def test_a_failing_rank_reports_every_ranks_stderr(graph, home: Path, tmp_path: Path) -> None:
    """DeepSpeed itself rejects this optimizer inside every rank: the step fails with the traceback, and the
    stderr of both ranks is in the Dagster event log."""
    broken = trainer(deepspeed_config={"optimizer": {"type": "NoSuchOptimizer"}}, checkpoint_dir=str(tmp_path))
    result = run_assets(graph, home, ["candidate_model"], broken, raise_on_error=False)
    assert not result.success
    failure = next(e for e in result.all_events if e.event_type_value == "STEP_FAILURE")
    message = failure.event_specific_data.error.message
    assert "First traceback, rank" in message and "nosuchoptimizer" in message.lower()
    for rank in (0, 1):
        assert logged(graph["instance"], result.run_id, f"training rank {rank} stderr")


def cpu_adam_built() -> bool:
    root = Path(os.environ.get("TORCH_EXTENSIONS_DIR", Path.home() / ".cache" / "torch_extensions"))
    return root.is_dir() and any(root.rglob("cpu_adam*.so"))


@pytest.mark.skipif(
    not cpu_adam_built(),
    reason="DeepSpeed's cpu_adam op is not built (minutes on 2 cores); run scripts/warm_deepspeed_ops.py, "
    "as .ci/run does, with the same TORCH_EXTENSIONS_DIR",
)
def test_optimizer_offload_trains(graph, home: Path, tmp_path: Path) -> None:
    offload = trainer(zero_stage=2, offload_optimizer=True, max_epochs=2, checkpoint_dir=str(tmp_path))
    meta = metadata(run_assets(graph, home, ["candidate_model"], offload), "candidate_model")
    assert meta["epochs_run"] == 2 and meta["val_roc_auc"] > 0.75
