"""DeepSpeedTrainer: trains a tabular network with DeepSpeed in a separate process group, via Dagster Pipes.

The resource owns the knobs a user sets in the launchpad or in code (ranks, ZeRO stage, precision, batch sizes,
epochs, learning rate and schedule, early stopping, seed, offload, checkpoints), turns them into a DeepSpeed
config (a raw ``deepspeed_config`` dict overrides any key), rejects impossible settings before anything
launches, writes a job description (``TrainingJob``) in its ``storage`` and hands the launch to its ``launcher``
(torchrun on this machine, or GPU pods on Kubernetes). The rows travel by reference: a window handed as a
``TableScan`` is read by the ranks where it lies (a shared volume, object storage), a frame is staged once as
Parquet; the preprocessing and the row groups' counts are prepared once here, by streaming queries, through the
``prepare`` the caller hands in (``ml_assets.model.shards.preparer``: model code, which this layer never imports), so
each rank reads only its shard. It reads the outputs back as raw files: what they mean (network, preprocessing, weights) is
``ml_assets.model``'s business. The entrypoint ``ml_assets.model.train`` does the training; this module never
imports DeepSpeed.
"""

from __future__ import annotations

import hashlib
import json
import posixpath
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import pandas as pd
from dagster import AssetExecutionContext, ConfigurableResource, OpExecutionContext
from pydantic import BaseModel, Field

from ml_assets.settings import paths
from resources.launchers import LaunchSpec, TrainingLauncher
from resources.parquet_tables import TableScan
from resources.training_records import RowsPreparer, TooFewRows, TrainingJob
from resources.training_storage import TrainingStorage

ENTRYPOINT = "ml_assets.model.train"
# The Dagster concurrency pool of the step that trains: a launch takes every GPU it was given, so one at a time
# (deploy/dagster.yaml and the Helm values limit it).
TRAINING_POOL = "training"
SCHEDULERS = {"warmup": "WarmupLR", "warmup_decay": "WarmupDecayLR", "warmup_cosine": "WarmupCosineLR"}
# What a search trial may set beside its network (class_weight is the entrypoint's, the rest the trainer's fields).
TRIAL_SETTINGS = ("learning_rate", "weight_decay", "lr_schedule", "class_weight")


class TrainerConfigError(ValueError):
    """A DeepSpeedTrainer setting that cannot work, found before any process was launched."""


@dataclass(frozen=True)
class TrainingPlan:
    """Settings resolved against the machine: what will actually run."""

    device: str
    precision: str
    ranks: int
    deepspeed_config: dict[str, Any]
    config_hash: str


@dataclass(frozen=True)
class TrainingRun:
    """What a finished launch left in storage: its outputs as raw files (``ml_assets.model`` decodes them)."""

    plan: TrainingPlan
    location: str  # the launch's folder in TrainingStorage (job, outputs)
    outputs: dict[str, bytes] = field(repr=False)
    checkpoint_dir: str


def deep_merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = value
    return out


# A CPU rank's encoded shards are host memory: 256 MB each keeps two ranks and the launching step under 4 GB
# (benchmarks/scale.py), while a demo or 3-day window's shard (100 bytes a row) is still read once and kept.
SHARD_CACHE_MB = 256


class DeepSpeedTrainer(ConfigurableResource):
    """Data-parallel DeepSpeed training of a tabular network on N CPU processes or GPUs."""

    launcher: TrainingLauncher
    storage: TrainingStorage
    ranks: int = Field(1, description="processes (one per GPU on cuda)")
    device: Literal["auto", "cpu", "cuda"] = Field("auto", description="auto: cuda when the target has GPUs")
    zero_stage: int = Field(0, description="ZeRO stage 0-3")
    precision: Literal["auto", "fp32", "bf16", "fp16"] = Field(
        "auto", description="auto: bf16 on GPUs that support it, fp32 on CPU"
    )
    micro_batch_size: int = Field(
        128, description="rows per rank per step (small batches generalise better on tabular data)"
    )
    gradient_accumulation_steps: int = 1
    max_epochs: int = 20
    epoch_rows: int | None = Field(
        2_000_000,
        ge=1,
        description="train rows one epoch visits across all ranks, at most; a larger train split gives each epoch a "
        "fresh seeded draw of this many rows, so an epoch's time stops growing with the window (None: every row)",
    )
    learning_rate: float = 2e-3
    weight_decay: float = 1e-4
    lr_schedule: Literal["constant", "warmup", "warmup_decay", "warmup_cosine"] = "warmup_decay"
    warmup_fraction: float = Field(0.05, description="share of all optimizer steps spent warming up")
    gradient_clipping: float = Field(0.0, description="max gradient norm; 0 = off (it costs a reduction)")
    early_stopping_patience: int = Field(3, description="epochs without validation-loss improvement")
    seed: int = 0
    offload_optimizer: bool = Field(False, description="ZeRO-Offload of optimizer state to CPU (stage >= 1)")
    shard_cache_mb: float = Field(
        SHARD_CACHE_MB,
        ge=0,
        description="a rank keeps its encoded shard in memory up to this size; larger ones stream (0: always)",
    )
    checkpoint_dir: str | None = Field(None, description="default: <ML_ASSETS_HOME>/checkpoints")
    deepspeed_config: dict[str, Any] | None = Field(
        None, description="raw DeepSpeed config; its keys override the ones built from the fields above"
    )

    # ---- validation and config ------------------------------------------------------------------------------
    def plan(self) -> TrainingPlan:
        """Resolve auto settings against the launcher's machine and validate; raise TrainerConfigError."""
        problems: list[str] = []
        device = self.device
        if device == "auto":
            device = "cuda" if self.launcher.capacity("cuda") > 0 else "cpu"
        capacity = self.launcher.capacity(device)
        if self.ranks < 1:
            problems.append(f"ranks must be >= 1, got {self.ranks}")
        elif capacity == 0:
            problems.append(f"device {device!r} is not available on the launcher's machine")
        elif self.ranks > capacity:
            unit = "CPUs" if device == "cpu" else "GPUs"
            problems.append(f"ranks={self.ranks} exceeds the {capacity} {unit} available to the launcher")
        else:
            problems += self.launcher.layout_problems(self.ranks, device)
        precision = self.precision
        if precision == "auto":
            precision = "bf16" if self.launcher.supports_bf16(device) else "fp32"
        if device == "cpu" and precision == "fp16":
            problems.append("precision fp16 is not supported on CPU (use fp32 or bf16)")
        for name in ("micro_batch_size", "gradient_accumulation_steps", "max_epochs", "early_stopping_patience"):
            if getattr(self, name) < 1:
                problems.append(f"{name} must be >= 1, got {getattr(self, name)}")
        if not self.learning_rate > 0:
            problems.append(f"learning_rate must be > 0, got {self.learning_rate}")
        if not 0 <= self.warmup_fraction < 1:
            problems.append(f"warmup_fraction must be in [0, 1), got {self.warmup_fraction}")
        if self.gradient_clipping < 0:
            problems.append(f"gradient_clipping must be >= 0, got {self.gradient_clipping}")
        if self.offload_optimizer and self.zero_stage < 1:
            problems.append("offload_optimizer needs zero_stage >= 1")
        config = self._deepspeed_config(max(1, self.ranks), precision, device)
        problems += _check_deepspeed_config(config, max(1, self.ranks))
        if problems:
            raise TrainerConfigError("DeepSpeedTrainer configuration rejected before launch: " + "; ".join(problems))
        digest = json.dumps(
            {
                "ds": config,
                "device": device,
                "ranks": self.ranks,
                "max_epochs": self.max_epochs,
                "epoch_rows": self.epoch_rows,
                "patience": self.early_stopping_patience,
                "seed": self.seed,
                "warmup_fraction": self.warmup_fraction,
            },
            sort_keys=True,
        )
        return TrainingPlan(
            device=device,
            precision=precision,
            ranks=self.ranks,
            deepspeed_config=config,
            config_hash=hashlib.sha256(digest.encode()).hexdigest()[:12],
        )

    def _deepspeed_config(self, ranks: int, precision: str, device: str) -> dict[str, Any]:
        """The DeepSpeed config from the fields; step counts of schedules are filled in by the entrypoint."""
        zero: dict[str, Any] = {"stage": self.zero_stage}
        if self.offload_optimizer:
            zero["offload_optimizer"] = {"device": "cpu", "pin_memory": device == "cuda"}
        optimizer_params: dict[str, Any] = {"lr": self.learning_rate, "weight_decay": self.weight_decay}
        if not self.offload_optimizer:
            # torch's AdamW: no JIT build of DeepSpeed's fused Adam; offload needs DeepSpeed's CPU Adam instead.
            optimizer_params["torch_adam"] = True
        config: dict[str, Any] = {
            "train_micro_batch_size_per_gpu": self.micro_batch_size,
            "gradient_accumulation_steps": self.gradient_accumulation_steps,
            "train_batch_size": self.micro_batch_size * self.gradient_accumulation_steps * ranks,
            "optimizer": {"type": "AdamW", "params": optimizer_params},
            "zero_optimization": zero,
            "bf16": {"enabled": precision == "bf16"},
            "fp16": {"enabled": precision == "fp16"},
            "gradient_clipping": self.gradient_clipping,
            # Per-step overheads that cost throughput and give nothing here: the throughput timer synchronizes
            # the device twice per step, and progress printing is ours (per epoch, through Pipes).
            "timers": {"throughput": {"enabled": False}},
            "wall_clock_breakdown": False,
            "steps_per_print": 2**31 - 1,
            "zero_allow_untested_optimizer": True,
        }
        if self.lr_schedule != "constant":
            params: dict[str, Any] = {}
            if self.lr_schedule in ("warmup", "warmup_decay"):
                params = {"warmup_min_lr": 0.0, "warmup_max_lr": self.learning_rate, "warmup_type": "linear"}
            config["scheduler"] = {"type": SCHEDULERS[self.lr_schedule], "params": params}
        if self.deepspeed_config:
            config = deep_merge(config, self.deepspeed_config)
            if "train_batch_size" not in self.deepspeed_config:
                micro = config.get("train_micro_batch_size_per_gpu")
                gas = config.get("gradient_accumulation_steps", 1)
                if isinstance(micro, int) and isinstance(gas, int):
                    config["train_batch_size"] = micro * gas * ranks
        return config

    # ---- running ----------------------------------------------------------------------------------------------
    def train(
        self,
        context: AssetExecutionContext | OpExecutionContext,
        spec: Mapping[str, Any],
        train_rows: TableScan | pd.DataFrame,
        validation_rows: TableScan | pd.DataFrame,
        network: Mapping[str, Any],
        data_version: str,
        *,
        prepare: RowsPreparer,
        search: Sequence[Mapping[str, Any]] = (),
        max_seconds: float | None = None,
        select_by: str = "log_loss",
        higher_is_better: bool = False,
        halving: Mapping[str, int] | None = None,
        ensemble_size: int = 1,
    ) -> TrainingRun:
        """Validate, prepare the rows and stage the job in storage, launch the entrypoint, and read back its outputs.

        ``prepare`` turns the two scans into the rows every rank starts from (counts, preprocessing; the caller's
        model code). ``train_rows`` and ``validation_rows`` are scans of Parquet files every rank can open (read in place, never
        loaded here) or frames (staged once as Parquet). ``spec`` is the dataset spec as JSON, passed through to
        the entrypoint untouched. ``network`` is the first trial; ``search`` adds trials (``{"network": ...,
        "learning_rate": ..., "weight_decay": ..., "lr_schedule": ..., "class_weight": "none" | "balanced"}``, all
        but the network optional), trained in the same launch; ``halving`` (``{"min_epochs": r, "eta": n}``) runs
        them as successive halving. The best on validation ``select_by``, or the ensemble of up to
        ``ensemble_size`` trials when it scores better there, is returned, every trial's figures in its summary. ``max_seconds``: no trial trains further once the
        launch has run this long.
        """
        plan = self.plan()
        trials = self._trials(network, search, plan)
        trials_hash = hashlib.sha256(json.dumps(trials, sort_keys=True).encode()).hexdigest()[:8]
        checkpoint_dir = (
            Path(self.checkpoint_dir or paths().checkpoints)
            / f"{spec.get('name', 'dataset')}-{network.get('architecture', 'network')}"
            / f"{data_version}-{trials_hash}-{plan.config_hash}"
        )

        run_name = _safe(context.run_id)
        location = self._fresh(run_name)
        staged = self._stage(location, {"train": train_rows, "validation": validation_rows})
        try:
            try:
                rows = prepare(staged["train"], staged["validation"], plan.ranks)
            except TooFewRows as e:
                raise TrainerConfigError(f"training set {data_version} has {e}") from None
            job = TrainingJob(
                rows=rows,
                shard_cache_bytes=int(self.shard_cache_mb * 2**20),
                output_dir=posixpath.join(location, "output"),
                checkpoint_dir=str(checkpoint_dir),
                spec=dict(spec),
                trials=trials,
                select_by=select_by,
                higher_is_better=higher_is_better,
                max_seconds=max_seconds,
                halving=dict(halving) if halving else None,
                ensemble_size=ensemble_size,
                device=plan.device,
                precision=plan.precision,
                max_epochs=self.max_epochs,
                epoch_rows=self.epoch_rows,
                patience=self.early_stopping_patience,
                seed=self.seed,
                warmup_fraction=self.warmup_fraction,
                launched_at=time.time(),
            )
            names = ", ".join(t["network"].get("architecture", "?") for t in trials)
            what = (
                f"training {len(trials)} trial(s) ({names}) on {rows.train.rows} train / {rows.validation.rows} "
                f"validation rows: {plan.ranks} {plan.device} rank(s), ZeRO "
                f"{plan.deepspeed_config['zero_optimization'].get('stage')}, {plan.precision}; checkpoints in "
                f"{checkpoint_dir}"
            )
            outputs = self._launch(context, plan, location, run_name, ENTRYPOINT, job, what)
        finally:
            self._unstage(staged, (train_rows, validation_rows))
        return TrainingRun(plan=plan, location=location, outputs=outputs, checkpoint_dir=str(checkpoint_dir))

    def _trials(
        self, network: Mapping[str, Any], search: Sequence[Mapping[str, Any]], plan: TrainingPlan
    ) -> list[dict[str, Any]]:
        """Every trial with its own DeepSpeed config (learning rate, weight decay and schedule overridden), checked
        up front; its class weighting travels in its settings."""
        out = []
        for i, trial in enumerate([{"network": dict(network)}, *search]):
            unknown = sorted(set(trial) - {"network", *TRIAL_SETTINGS})
            if unknown or "network" not in trial:
                raise TrainerConfigError(
                    f"trial {i}: needs 'network', may set {', '.join(TRIAL_SETTINGS)}; got {unknown}"
                )
            settings = {k: trial[k] for k in TRIAL_SETTINGS if trial.get(k) is not None}
            if settings.get("class_weight", "none") not in ("none", "balanced"):
                raise TrainerConfigError(
                    f"trial {i}: class_weight must be none or balanced, got {trial['class_weight']}"
                )
            if settings.get("lr_schedule", "constant") not in ("constant", *SCHEDULERS):
                raise TrainerConfigError(f"trial {i}: unknown lr_schedule {trial['lr_schedule']!r}")
            update = {k: v for k, v in settings.items() if k != "class_weight"}
            trainer = self.model_copy(update=update) if update else self
            if settings and not trainer.learning_rate > 0:
                raise TrainerConfigError(f"trial {i}: learning_rate must be > 0, got {trainer.learning_rate}")
            config = trainer._deepspeed_config(plan.ranks, plan.precision, plan.device)
            problems = _check_deepspeed_config(config, plan.ranks)
            if problems:
                raise TrainerConfigError(f"trial {i}: " + "; ".join(problems))
            out.append(
                {
                    "name": f"trial-{i:02d}",
                    "network": dict(trial["network"]),
                    "deepspeed_config": config,
                    "settings": settings,
                }
            )
        return out

    def _fresh(self, run_name: str) -> str:
        """The run's folder in storage, emptied: a retried step starts from a clean slate."""
        location = self.storage.location(run_name)
        self.storage.remove(location)
        return location

    def _stage(self, location: str, rows: Mapping[str, TableScan | pd.DataFrame]) -> dict[str, TableScan]:
        """Every split as a scan the ranks can read: a scan as it is (its files already lie where the ranks read),
        a frame written once as ``<name>.parquet`` in the run's folder."""
        return {
            name: part
            if isinstance(part, TableScan)
            else self.storage.put_rows(posixpath.join(location, f"{name}.parquet"), part)
            for name, part in rows.items()
        }

    def _unstage(self, staged: Mapping[str, TableScan], handed: Sequence[TableScan | pd.DataFrame]) -> None:
        """Remove the files staged from frames (the warehouse has the rows); scans handed in are not ours."""
        for (_, scan), part in zip(staged.items(), handed, strict=True):
            if isinstance(part, pd.DataFrame):
                for url in scan.files:
                    self.storage.remove(url)

    def _launch(
        self,
        context: AssetExecutionContext | OpExecutionContext,
        plan: TrainingPlan,
        location: str,
        run_name: str,
        module: str,
        job: BaseModel,
        what: str,
    ) -> dict[str, bytes]:
        """The one launch path of every entrypoint: the job record as ``job.json`` in the run's folder, the ranks
        launched on it, and every file they wrote to the job's ``output_dir`` read back (the job and the outputs
        stay in storage)."""
        output = posixpath.join(location, "output")
        job_url = self.storage.put_bytes(posixpath.join(location, "job.json"), job.model_dump_json().encode())
        context.log.info(f"{what}; job {job_url}")
        self.launcher.launch(context, LaunchSpec(module, (job_url,), plan.ranks, plan.device, run_name))
        outputs = self.storage.read_all(output)
        if not outputs:
            raise RuntimeError(f"{module} finished but wrote nothing to {output}; see the rank logs")
        return outputs

    # ---- any entrypoint ---------------------------------------------------------------------------------------
    def run(
        self,
        context: AssetExecutionContext | OpExecutionContext,
        module: str,
        job: BaseModel,
        frames: Mapping[str, pd.DataFrame],
    ) -> EntrypointRun:
        """Stage ``frames`` and an ``EntrypointJob`` (carrying ``job``, the entrypoint's own record, as its payload)
        in storage, launch ``python -m <module> JOB_URL`` with this trainer's launcher and plan, and read back every
        file the entrypoint wrote to the job's ``output_dir``. What the files mean is the caller's business."""
        plan = self.plan()
        run_name = _safe(f"{context.run_id}-{module.rsplit('.', 1)[-1]}")
        location = self._fresh(run_name)
        staged = {
            name: self.storage.put_frame(posixpath.join(location, f"{name}.parquet"), frame)
            for name, frame in frames.items()
        }
        record = EntrypointJob(
            frames=staged,
            output_dir=posixpath.join(location, "output"),
            device=plan.device,
            precision=plan.precision,
            deepspeed_config=plan.deepspeed_config,
            max_epochs=self.max_epochs,
            patience=self.early_stopping_patience,
            seed=self.seed,
            warmup_fraction=self.warmup_fraction,
            payload=job.model_dump(mode="json"),
        )
        what = f"launching {module} on {plan.ranks} {plan.device} rank(s), {plan.precision}"
        try:
            outputs = self._launch(context, plan, location, run_name, module, record, what)
        finally:
            for url in staged.values():
                self.storage.remove(url)
        return EntrypointRun(plan=plan, location=location, outputs=outputs)


def _check_deepspeed_config(config: dict[str, Any], ranks: int) -> list[str]:
    """The rules DeepSpeed would enforce after start-up (and some it would not), checked up front."""
    problems = []
    zero = config.get("zero_optimization", {})
    stage = zero.get("stage", 0) if isinstance(zero, dict) else None
    if stage not in (0, 1, 2, 3):
        problems.append(f"zero_optimization.stage must be 0, 1, 2 or 3, got {stage!r}")
    micro = config.get("train_micro_batch_size_per_gpu")
    gas = config.get("gradient_accumulation_steps", 1)
    for name, value in (("train_micro_batch_size_per_gpu", micro), ("gradient_accumulation_steps", gas)):
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            problems.append(f"{name} must be a positive integer, got {value!r}")
    total = config.get("train_batch_size")
    if isinstance(micro, int) and isinstance(gas, int) and total != micro * gas * ranks:
        problems.append(f"train_batch_size {total!r} != micro batch {micro} x accumulation {gas} x ranks {ranks}")
    if config.get("fp16", {}).get("enabled") and config.get("bf16", {}).get("enabled"):
        problems.append("fp16 and bf16 cannot both be enabled")
    scheduler = config.get("scheduler")
    if scheduler is not None and scheduler.get("type") not in (*SCHEDULERS.values(), "OneCycle", "LRRangeTest"):
        problems.append(f"unknown scheduler type {scheduler.get('type')!r}")
    return problems


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_" else "_" for c in name)


class EntrypointJob(BaseModel):
    """What ``DeepSpeedTrainer.run`` stages for any entrypoint: its frames (name -> URL), where to write, the
    resolved plan and the trainer's loop settings, and the entrypoint's own record as ``payload``."""

    frames: dict[str, str]
    output_dir: str
    device: str
    precision: str
    deepspeed_config: dict[str, Any]
    max_epochs: int
    patience: int
    seed: int
    warmup_fraction: float
    payload: dict[str, Any]

    @classmethod
    def read(cls, url: str) -> EntrypointJob:
        import fsspec

        with fsspec.open(url, "r") as f:
            return cls.model_validate_json(f.read())


@dataclass(frozen=True)
class EntrypointRun:
    """What a ``DeepSpeedTrainer.run`` launch left: the plan it ran under and the files its entrypoint wrote."""

    plan: TrainingPlan
    location: str
    outputs: dict[str, bytes] = field(repr=False)
