"""Model assets (group ``model``): the logistic-regression baseline and the DeepSpeed-trained candidate.

Both read the approved training window (``approved_training_set``: the newest one whose blocking checks passed,
verified again here), fit on its train split, score its validation split, store the model in the BentoML store (``<dataset>-baseline`` / ``<dataset>-classifier``) with
full lineage in its metadata, and hand a ``ModelRef`` downstream. (No ``from __future__ import annotations``:
Dagster reads the Config and resource annotations of asset functions at definition time.)
"""

from typing import Any, Literal

import numpy as np
import pandas as pd
from dagster import (
    AssetExecutionContext,
    AssetsDefinition,
    Config,
    MetadataValue,
    Output,
    asset,
)
from pydantic import Field

from ml_assets import markdown
from ml_assets.automation import retraining
from ml_assets.data.approval import READ_NOT_REACTED, TRAINING_SET_DEP, TrainingSetRef, load_approved
from ml_assets.data.splits import SPLIT
from ml_assets.dataset import DatasetSpec
from ml_assets.model import bundle, network, preprocessing, train, training_result
from ml_assets.model import metrics as metrics_module
from ml_assets.model.bundle import LogisticWeights, ModelRef, TabularModel
from ml_assets.model.metrics import classification_metrics
from ml_assets.model.network import NetworkConfig
from ml_assets.model.preprocessing import Preprocessing
from ml_assets.versioning import code_version, frame_version
from resources.deepspeed_trainer import TRAINING_POOL, DeepSpeedTrainer
from resources.model_store import ModelStore

MODEL_SPEC_FIELDS = ("columns", "bands", "positive_label")


def classifier_name(spec: DatasetSpec) -> str:
    return f"{spec.name}-classifier"


def baseline_name(spec: DatasetSpec) -> str:
    return f"{spec.name}-baseline"


class BaselineConfig(Config):
    regularization_c: float = Field(1.0, description="inverse L2 strength of the logistic regression")
    max_iter: int = 2000


class CandidateConfig(Config):
    """Architecture of the candidate network (launchpad config), so teams compare architectures per run."""

    architecture: Literal["mlp", "transformer"] = "mlp"
    hidden: list[int] = Field(default_factory=lambda: [128, 64])
    max_embedding_dim: int = 16
    d_token: int = 32
    n_layers: int = 2
    n_heads: int = 4
    dropout: float = 0.1

    def network(self) -> NetworkConfig:
        return NetworkConfig(**self.model_dump())


def ordered(spec: DatasetSpec, training_set: pd.DataFrame) -> pd.DataFrame:
    """The warehouse does not promise row order: sort by id so versions and shuffles are reproducible."""
    return training_set.sort_values(spec.id.name, kind="stable").reset_index(drop=True)


def split_rows(training_set: pd.DataFrame, split: str) -> pd.DataFrame:
    return training_set[training_set[SPLIT] == split]


def metrics_table(rows: dict[str, dict[str, float]]) -> str:
    """One row per model, one column per metric."""
    names = list(next(iter(rows.values())))
    return markdown.table([{"model": m, **v} for m, v in rows.items()], ["model", *names], right=names)


def loss_curve_markdown(history: list[dict[str, float]]) -> str:
    """A small train/validation loss plot, embedded as a base64 PNG so the UI shows it inline."""
    epochs = [h["epoch"] for h in history]
    fig, ax = markdown.new_figure(4.5, 2.8, 90)
    ax.plot(epochs, [h["train_loss"] for h in history], marker="o", label="train")
    ax.plot(epochs, [h["val_log_loss"] for h in history], marker="o", label="validation")
    ax.set_xlabel("epoch")
    ax.set_ylabel("log loss")
    ax.legend()
    return markdown.figure(fig, "loss curve")


def fit_baseline(spec: DatasetSpec, training_set: pd.DataFrame, cfg: BaselineConfig) -> TabularModel:
    """Logistic regression on the same preprocessing as the networks (one-hot categories, scaled numerics)."""
    from sklearn.linear_model import LogisticRegression

    train_rows = split_rows(training_set, "train")
    pre = Preprocessing.fit(spec, train_rows)
    y = train_rows[spec.label_column].to_numpy().astype(np.int64)
    lr = LogisticRegression(C=cfg.regularization_c, max_iter=cfg.max_iter)
    lr.fit(pre.one_hot(train_rows), y)
    weights = LogisticWeights(coef=[float(c) for c in lr.coef_[0]], intercept=float(lr.intercept_[0]))
    return TabularModel(kind="logistic", spec_name=spec.name, preprocessing=pre, logistic=weights)


def build_model_assets(spec: DatasetSpec) -> list[AssetsDefinition]:
    """baseline_model and candidate_model for one dataset spec."""
    model_code = code_version(
        spec, preprocessing, network, bundle, metrics_module, train, training_result, uses=MODEL_SPEC_FIELDS
    )
    when = retraining(spec, ignore=READ_NOT_REACTED)

    @asset(
        name="baseline_model",
        group_name="model",
        deps=[TRAINING_SET_DEP],
        automation_condition=when,
        code_version=code_version(spec, preprocessing, bundle, metrics_module, uses=MODEL_SPEC_FIELDS),
        description="Logistic regression on the same splits and preprocessing: the reference every model must beat.",
    )
    def baseline_model(
        context: AssetExecutionContext,
        config: BaselineConfig,
        approved_training_set: TrainingSetRef,
        model_store: ModelStore,
    ) -> Output[ModelRef]:
        training_set = ordered(spec, load_approved(context, approved_training_set, "baseline_model"))
        version = frame_version(training_set).value
        model = fit_baseline(spec, training_set, config)
        val = split_rows(training_set, "validation")
        scores = classification_metrics(val[spec.label_column].to_numpy(), model.predict_proba(val))
        meta = {
            "training_set_version": version,
            "training_set_partition": approved_training_set.partition_key,
            "code_version": context.assets_def.code_versions_by_key[context.asset_key],
            "config": config.model_dump(),
            "validation_metrics": scores,
            "train_rows": int((training_set[SPLIT] == "train").sum()),
        }
        tag = model_store.save(model, baseline_name(spec), meta)
        context.log.info(f"baseline {tag}: validation {scores}")
        ref = ModelRef(tag=tag, name=baseline_name(spec), kind=model.kind, metrics=scores, training_set_version=version)
        return Output(
            ref,
            metadata={
                "model_tag": tag,
                "validation_metrics": MetadataValue.md(metrics_table({"baseline": scores})),
                **{f"val_{k}": v for k, v in scores.items()},
                "training_set_version": version,
                "training_set_partition": approved_training_set.partition_key,
            },
        )

    @asset(
        name="candidate_model",
        group_name="model",
        deps=[TRAINING_SET_DEP],
        automation_condition=when,
        pool=TRAINING_POOL,
        code_version=model_code,
        description="A tabular network trained with DeepSpeed through the DeepSpeedTrainer resource.",
    )
    def candidate_model(
        context: AssetExecutionContext,
        config: CandidateConfig,
        approved_training_set: TrainingSetRef,
        trainer: DeepSpeedTrainer,
        model_store: ModelStore,
    ) -> Output[ModelRef]:
        training_set = ordered(spec, load_approved(context, approved_training_set, "candidate_model"))
        version = frame_version(training_set).value
        net_cfg = config.network()
        fit = {split: split_rows(training_set, split) for split in ("train", "validation")}
        run = trainer.train(context, spec, fit["train"], fit["validation"], net_cfg.model_dump(), version)
        result = training_result.decode(run)
        s = result.summary
        model = TabularModel(
            kind=net_cfg.architecture,
            spec_name=spec.name,
            preprocessing=result.preprocessing,
            network_config=result.network,
            state_dict=result.state_dict,
        )
        # The stored model, scored in this process, must agree with what training measured: this is the
        # packed preprocessing + plain state_dict path that serving will take.
        val = split_rows(training_set, "validation")
        served = classification_metrics(val[spec.label_column].to_numpy(), model.predict_proba(val))
        scores: dict[str, float] = {k: float(v) for k, v in s["metrics"].items()}
        lineage: dict[str, Any] = {
            "training_set_version": version,
            "training_set_partition": approved_training_set.partition_key,
            "code_version": model_code,
            "config": {
                "network": net_cfg.model_dump(),
                "deepspeed": s["deepspeed_config"],
                "trainer": _fields(trainer),
            },
            "validation_metrics": scores,
            "samples_per_s": s["samples_per_s"],
            "wall_seconds": s["wall_seconds"],
            "ranks": s["ranks"],
            "device": s["device"],
            "precision": s["precision"],
            "best_epoch": s["best_epoch"],
        }
        tag = model_store.save(model, classifier_name(spec), lineage)
        ref = ModelRef(
            tag=tag, name=classifier_name(spec), kind=model.kind, metrics=scores, training_set_version=version
        )
        return Output(
            ref,
            metadata={
                "model_tag": tag,
                "validation_metrics": MetadataValue.md(
                    metrics_table({"training (ranks)": scores, "stored model (this process)": served})
                ),
                **{f"val_{k}": v for k, v in scores.items()},
                "loss_curve": MetadataValue.md(loss_curve_markdown(s["history"])),
                "samples_per_s": float(s["samples_per_s"]),
                "launch_to_first_step_s": float(s["launch_to_first_step_s"] or 0.0),
                "wall_seconds": float(s["wall_seconds"]),
                "ranks": int(s["ranks"]),
                "device": str(s["device"]),
                "precision": s["precision"],
                "zero_stage": int(s["zero_stage"]),
                "epochs_run": int(s["epochs_run"]),
                "best_epoch": int(s["best_epoch"]),
                "resumed_from_epoch": int(s["resumed_from_epoch"] or 0),
                "parameters": int(s["parameters"]),
                "training_set_version": version,
                "training_set_partition": approved_training_set.partition_key,
                "checkpoint_dir": MetadataValue.path(s["checkpoint_dir"]),
            },
        )

    return [baseline_model, candidate_model]


def _fields(trainer: DeepSpeedTrainer) -> dict[str, Any]:
    return {k: v for k, v in trainer.model_dump().items() if k != "launcher"}
