"""Every seam between processes and layers is one typed record that both ends import: it round-trips, and a
mismatch fails where the record is read, naming where and which field."""

from __future__ import annotations

import io
import json
from pathlib import Path

import bentoml.models  # noqa: F401  imported at collection, as the serving tests do: the import probes the C library once
import pytest
import torch

from ml_assets.dataset import DatasetSpec
from ml_assets.model import train, training_result
from ml_assets.model.network import NetworkConfig
from resources.deepspeed_trainer import TrainingPlan, TrainingRun
from resources.parquet_tables import TableScan
from resources.rank_shards import RowGroup, ScanLayout
from resources.training_records import PreparedRows, RecordError, TrainingJob, TrainingSummary


# ---- training job and summary (DeepSpeedTrainer <-> the torchrun entrypoint) -----------------------------------
def training_job(spec: DatasetSpec, tmp_path: Path) -> TrainingJob:
    scan = TableScan(files=(str(tmp_path / "train.parquet"),), dtypes={"age": "Int64", "label": "Int64"}, rows=3)
    layout = ScanLayout(scan=scan, groups=(RowGroup(file=0, index=0, rows=3),))
    return TrainingJob(
        rows=PreparedRows(train=layout, validation=layout, preprocessing={"version": 2}, positive_rate=0.25),
        shard_cache_bytes=2**20,
        output_dir=str(tmp_path / "output"),
        checkpoint_dir=str(tmp_path / "checkpoints"),
        spec=spec.model_dump(mode="json"),
        trials=[{"name": "trial-00", "network": {"architecture": "mlp"}, "deepspeed_config": {}, "settings": {}}],
        select_by="log_loss",
        higher_is_better=False,
        max_seconds=None,
        halving={"min_epochs": 1, "eta": 2},
        ensemble_size=1,
        device="cpu",
        precision="fp32",
        max_epochs=3,
        epoch_rows=None,
        patience=2,
        seed=0,
        warmup_fraction=0.1,
        launched_at=1.0,
    )


def test_the_training_job_round_trips_into_the_entrypoint(adult_spec: DatasetSpec, tmp_path: Path) -> None:
    job = training_job(adult_spec, tmp_path)
    assert TrainingJob.read(job.model_dump_json(), "memory") == job
    (tmp_path / "job.json").write_text(job.model_dump_json())
    typed = train.Job.read_url(str(tmp_path / "job.json"))
    assert typed.spec.model_dump() == adult_spec.model_dump() and typed.trials[0].network == NetworkConfig(
        architecture="mlp"
    )
    assert typed.halving == train.Halving(1, 2) and typed.checkpoint_dir == tmp_path / "checkpoints"
    assert isinstance(typed.rows.train.scan, TableScan) and typed.rows.train == job.rows.train  # typed, not paths


def test_a_job_with_a_renamed_field_fails_where_it_is_read(adult_spec: DatasetSpec, tmp_path: Path) -> None:
    raw = json.loads(training_job(adult_spec, tmp_path).model_dump_json())
    raw["patience_epochs"] = raw.pop("patience")
    (tmp_path / "job.json").write_text(json.dumps(raw))
    with pytest.raises(RecordError, match=r"Job at .*job.json .*patience: Field required.*patience_epochs"):
        train.Job.read_url(str(tmp_path / "job.json"))


def summary() -> TrainingSummary:
    return TrainingSummary(
        metrics={"log_loss": 0.4, "roc_auc": 0.8},
        best_epoch=2,
        epochs_run=3,
        early_stopped=False,
        history=[{"epoch": 1, "samples_per_s": 10.0}],
        samples_per_s=10.0,
        overall_samples_per_s=9.0,
        train_seconds=1.5,
        wall_seconds=3.0,
        launch_to_first_step_s=0.5,
        startup_s={"python_and_torch_ready": 0.2, "first_step_done": None},
        resumed_from_epoch=None,
        ranks=2,
        device="cpu",
        precision="fp32",
        zero_stage=2,
        parameters=1234,
        network={"architecture": "mlp"},
        deepspeed_config={"zero_optimization": {"stage": 2}},
        checkpoint_dir="/tmp/ck",
        best_trial="trial-00",
        ensemble=[],
        select_by="log_loss",
        trials=[{"trial": "trial-00", "epochs_run": 3}],
    )


def _run(outputs: dict[str, bytes]) -> TrainingRun:
    plan = TrainingPlan(device="cpu", precision="fp32", ranks=1, deepspeed_config={}, config_hash="x")
    return TrainingRun(plan=plan, location="/staging/run-1", outputs=outputs, checkpoint_dir="/tmp/ck")


def _outputs(summary_json: bytes) -> dict[str, bytes]:
    weights = io.BytesIO()
    torch.save({}, weights)
    pre = json.dumps({"version": 1, "spec_name": "adult", "numeric": [], "categorical": []}).encode()
    return {train.STATE_DICT: weights.getvalue(), train.PREPROCESSING: pre, train.SUMMARY: summary_json}


def test_the_summary_round_trips_and_a_missing_field_fails_at_the_boundary() -> None:
    s = summary()
    assert TrainingSummary.read(s.model_dump_json(), "memory") == s
    raw = json.loads(s.model_dump_json())
    del raw["zero_stage"]
    with pytest.raises(RecordError, match=r"TrainingSummary at /staging/run-1/output/result.json .*zero_stage"):
        training_result.decode(_run(_outputs(json.dumps(raw).encode())))


# ---- the deployment record (both deployers -> the deployment asset, the CLI) -----------------------------------
def test_the_deployment_record_round_trips_and_refuses_an_unknown_field() -> None:
    from resources.deployment_record import DeploymentRecord, Rollout, ServedBento, Validation

    served = ServedBento(
        bento_tag="b:1", model_tag="m:1", slot="blue", validated=Validation(sample=64, max_abs_diff=0.0)
    )
    record = DeploymentRecord(url="http://x", current=served, history=[Rollout(bento_tag="b:1", at="now")])
    assert DeploymentRecord.model_validate_json(record.model_dump_json()) == record
    with pytest.raises(ValueError, match=r"current\.port_number"):
        DeploymentRecord.model_validate({"url": "http://x", "current": {**served.model_dump(), "port_number": 1}})


def test_both_deployers_share_one_abstract_base() -> None:
    import inspect

    from resources.bento_deployer import BentoDeployer, LocalBentoDeployer
    from resources.deployment_record import DeploymentRecord
    from resources.k8s_deployer import KubernetesBentoDeployer

    assert inspect.isabstract(BentoDeployer)
    for deployer in (LocalBentoDeployer, KubernetesBentoDeployer):
        assert issubclass(deployer, BentoDeployer) and not inspect.isabstract(deployer)
        assert inspect.signature(deployer.deploy).return_annotation in (DeploymentRecord, "DeploymentRecord")


# ---- the stored model's lineage (model assets -> evaluation, champion, rollback, monitoring) -------------------
def test_the_lineage_round_trips_through_the_store_and_a_foreign_one_is_refused(adult_spec, tmp_path: Path) -> None:
    import bentoml

    from resources.model_store import LineageError, ModelLineage, ModelStore
    from tests.serving_support import adult_training_set, fit_logistic

    store = ModelStore(home=str(tmp_path / "bentoml"))
    model = fit_logistic(adult_spec, adult_training_set(adult_spec, rows=300))
    lineage = ModelLineage(
        training_set_version="abc",
        training_set_partition="2026-01-10",
        validation_metrics={"roc_auc": 0.9},
        decision={"threshold": 0.4, "policy": "max_f1"},
        unlabeled_rows_left_out={"train": 0, "validation": 1, "test": 0},
    )
    tag = store.save(model, "adult-baseline", lineage)
    assert store.info(tag).lineage == lineage and store.info(tag).kind == "logistic"
    with bentoml.models.create("adult-old", metadata={"metrics": {"auc": 0.9}}, _model_store=store._store()) as old:
        model.save(old.path)  # stored with the key name an older version used
    with pytest.raises(LineageError, match=rf"model {old.tag} in .*does not match ModelLineage \(metrics\)"):
        store.info(str(old.tag))
