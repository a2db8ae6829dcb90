"""Training entrypoint, run on every rank by torchrun: ``python -m torch.distributed.run ... -m ml_assets.model.train JOB``.

``JOB`` is the URL of the job description ``DeepSpeedTrainer`` staged in its storage (a path on a shared volume
or an object-store URL): every rank, on whatever node, reads the job and the train/validation rows it names from
there, fits the same preprocessing on the train rows (deterministic, so all ranks agree without
communication), keeps its shard of the train rows as tensors on its device and iterates it by index slices (no
DataLoader: tabular training is bound by data movement). DeepSpeed runs data parallelism and ZeRO. After every
epoch all ranks evaluate their share of the validation rows, save a DeepSpeed checkpoint, and stop early when
validation loss stops improving. A rerun with the same checkpoint directory (same data version and config)
resumes from the last checkpoint.

A job holds one or more trials (a candidate search): networks with their own DeepSpeed configs (learning rate,
weight decay), trained in turn by the same process group on the same shards, so start-up (interpreters, the
process group, reading and preparing the rows) is paid once. The trial best on validation by the job's
selection metric is exported; every trial's figures go into the summary. Past ``max_seconds`` no further trial
starts (rank 0 decides, every rank follows).

Only rank 0 opens the Dagster Pipes context (every rank reporting would fail the step) and streams per-epoch
metrics as log lines; it writes the best trial's best epoch as a plain fp32 state_dict, the preprocessing and the
summary to the job's output folder, where the launching step reads them back.
"""

from __future__ import annotations

import io
import json
import logging
import math
import os
import shutil
import sys
import time
import warnings
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import fsspec
import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from dagster_pipes import PipesContext, open_dagster_pipes

from ml_assets.dataset import DatasetSpec
from ml_assets.model.metrics import validation_scores
from ml_assets.model.network import NetworkConfig, build_network
from ml_assets.model.preprocessing import Preprocessing

MIN_IMPROVEMENT = 1e-4
EVAL_CHUNK = 65_536
TAG_PREFIX = "epoch"
# The outputs rank 0 writes (ml_assets.model.training_result decodes them).
STATE_DICT = "state_dict.pt"
PREPROCESSING = "preprocessing.json"
SUMMARY = "result.json"


@dataclass(frozen=True)
class Trial:
    """One network of the job and its DeepSpeed config."""

    name: str
    network: NetworkConfig
    deepspeed_config: dict[str, Any]
    settings: dict[str, Any]  # what differs from the trainer's defaults (learning rate, weight decay), for reports


@dataclass
class Job:
    """The job description the trainer staged, typed."""

    train_rows: str
    validation_rows: str
    output_dir: str
    checkpoint_dir: Path
    spec: DatasetSpec
    trials: list[Trial]
    select_by: str  # validation metric that picks the best trial
    higher_is_better: bool
    max_seconds: float | None
    device: str
    precision: str
    max_epochs: int
    patience: int
    seed: int
    warmup_fraction: float
    launched_at: float

    @classmethod
    def read(cls, url: str) -> Job:
        with fsspec.open(url, "r") as f:
            job = json.load(f)
        return cls(
            train_rows=job["train_rows"],
            validation_rows=job["validation_rows"],
            output_dir=job["output_dir"],
            checkpoint_dir=Path(job["checkpoint_dir"]),
            spec=DatasetSpec.model_validate(job["spec"]),
            trials=[
                Trial(t["name"], NetworkConfig(**t["network"]), dict(t["deepspeed_config"]), dict(t["settings"]))
                for t in job["trials"]
            ],
            select_by=job["select_by"],
            higher_is_better=bool(job["higher_is_better"]),
            max_seconds=None if job["max_seconds"] is None else float(job["max_seconds"]),
            device=job["device"],
            precision=job["precision"],
            max_epochs=int(job["max_epochs"]),
            patience=int(job["patience"]),
            seed=int(job["seed"]),
            warmup_fraction=float(job["warmup_fraction"]),
            launched_at=float(job["launched_at"]),
        )


@dataclass
class Shard:
    """One split's rows held by this rank as tensors on its device."""

    numeric: torch.Tensor
    categorical: torch.Tensor
    label: torch.Tensor

    def __len__(self) -> int:
        return int(self.label.shape[0])


@dataclass
class Data:
    """Everything this rank trains and validates on."""

    pre: Preprocessing
    train: Shard
    val: Shard
    val_idx: np.ndarray  # this rank's validation rows, as indices into all validation rows
    val_labels: np.ndarray  # labels of all validation rows
    val_chunks: int  # forward calls per validation pass (the same on every rank)
    n_train: int
    n_val: int


@dataclass
class State:
    """Training progress carried in checkpoints (DeepSpeed ``client_state``)."""

    epoch: int = -1  # last finished epoch
    best_loss: float = math.inf
    best_epoch: int = -1
    bad_epochs: int = 0
    stopped: bool = False
    history: list[dict[str, float]] = field(default_factory=list)
    best_state: dict[str, torch.Tensor] | None = None
    train_seconds: float = 0.0
    train_samples: int = 0


@dataclass(frozen=True)
class Rank:
    """Where this process sits in the group, and its device."""

    rank: int
    world: int
    device: torch.device


class Reporter:
    """Rank 0 talks to Dagster through Pipes; other ranks stay silent (and print to their own stderr)."""

    def __init__(self, pipes: PipesContext | None):
        self.pipes = pipes

    def info(self, message: str) -> None:
        if self.pipes is not None:
            self.pipes.log.info(message)


# ---- data ------------------------------------------------------------------------------------------------
def to_shard(pre: Preprocessing, rows: pd.DataFrame, label_col: str, device: torch.device, dtype: torch.dtype) -> Shard:
    num, cat = pre.transform(rows)
    return Shard(
        numeric=torch.from_numpy(num).to(device=device, dtype=dtype),
        categorical=torch.from_numpy(cat).to(device),
        label=torch.from_numpy(rows[label_col].to_numpy(dtype=np.float32)).to(device),
    )


def shard_rows(n: int, rank: int, world: int, seed: int, equal: bool) -> np.ndarray:
    """This rank's row indices: a seeded permutation cut in ``world`` parts (equal sizes for training, so
    every rank runs the same number of steps and no collective waits forever)."""
    perm = np.random.default_rng(seed).permutation(n)
    if equal:
        size = n // world
        return np.sort(perm[rank * size : (rank + 1) * size])
    return np.sort(np.array_split(perm, world)[rank])


def load_data(job: Job, me: Rank, dtype: torch.dtype) -> Data:
    """Read the staged rows, fit the preprocessing on the train rows, and keep this rank's shards on device."""
    train_rows = job.spec.labeled(pd.read_parquet(job.train_rows))  # the asset hands labeled rows; stay safe
    val_rows = job.spec.labeled(pd.read_parquet(job.validation_rows))
    pre = Preprocessing.fit(job.spec, train_rows)
    label = job.spec.label_column
    train_idx = shard_rows(len(train_rows), me.rank, me.world, job.seed, equal=True)
    val_idx = shard_rows(len(val_rows), me.rank, me.world, job.seed, equal=False)
    return Data(
        pre=pre,
        train=to_shard(pre, train_rows.iloc[train_idx], label, me.device, dtype),
        val=to_shard(pre, val_rows.iloc[val_idx], label, me.device, dtype),
        val_idx=val_idx,
        val_labels=val_rows[label].to_numpy(),
        val_chunks=max(1, math.ceil(math.ceil(len(val_rows) / me.world) / EVAL_CHUNK)),
        n_train=len(train_rows),
        n_val=len(val_rows),
    )


# ---- engine ----------------------------------------------------------------------------------------------
def step_plan(n_local: int, config: dict[str, Any]) -> tuple[int, int]:
    """(rows per micro step, micro steps per epoch), the same on every rank; steps are whole accumulations."""
    gas = int(config.get("gradient_accumulation_steps", 1))
    micro = max(1, min(int(config["train_micro_batch_size_per_gpu"]), n_local // gas))
    return micro, max(1, n_local // (micro * gas)) * gas


def fill_schedule(config: dict[str, Any], optimizer_steps: int, warmup_fraction: float) -> dict[str, Any]:
    """Schedulers need step counts only the entrypoint knows (they depend on the shard size)."""
    scheduler = config.get("scheduler")
    if not scheduler:
        return config
    params = dict(scheduler.get("params", {}))
    warmup = max(1, int(optimizer_steps * warmup_fraction))
    kind = scheduler.get("type")
    if kind in ("WarmupLR", "WarmupDecayLR"):
        params.setdefault("warmup_num_steps", warmup)
    if kind == "WarmupDecayLR":
        params.setdefault("total_num_steps", max(optimizer_steps, warmup + 1))
    if kind == "WarmupCosineLR":
        params.setdefault("total_num_steps", max(optimizer_steps, warmup + 1))
        params.setdefault("warmup_num_steps", warmup)
    return {**config, "scheduler": {**scheduler, "params": params}}


def join_process_group(job: Job, local_rank: int) -> torch.device:
    """Pick this rank's device and join the process group (NCCL on GPUs, gloo on CPU)."""
    import deepspeed

    logging.getLogger("DeepSpeed").setLevel(logging.ERROR)
    # ZeRO calls a torch collective that torch 2.13 deprecates; one warning per call and rank floods the log.
    warnings.filterwarnings("ignore", category=FutureWarning, module="torch.distributed")
    if job.device == "cuda":
        torch.cuda.set_device(local_rank)
        device, backend = torch.device("cuda", local_rank), "nccl"
    else:
        from ml_assets.model.deepspeed_ops import skip_shared_memory_allreduce

        skip_shared_memory_allreduce()
        device, backend = torch.device("cpu"), "gloo"
    deepspeed.init_distributed(dist_backend=backend)
    return device


def build_engine(
    job: Job, network: NetworkConfig, pre: Preprocessing, config: dict[str, Any], world: int
) -> tuple[Any, int]:
    """The DeepSpeed engine around a freshly seeded network, and the network's parameter count."""
    import deepspeed

    torch.manual_seed(job.seed)
    np.random.seed(job.seed)
    net = build_network(network, pre)
    engine, _, _, _ = deepspeed.initialize(model=net, model_parameters=net.parameters(), config=config)
    if world == 1 and zero_stage(config) == 0:
        # One rank has nothing to average: DeepSpeed would still flatten, all-reduce and copy back every
        # gradient each step (measured: 0.53x -> 0.70x of a plain loop in-process on CPU).
        engine.enable_backward_allreduce = False
    return engine, sum(p.numel() for p in net.parameters())


def zero_stage(config: dict[str, Any]) -> int:
    return int(config.get("zero_optimization", {}).get("stage", 0))


def gathered(engine: Any, stage: int):
    """Context in which every rank sees full parameters (ZeRO-3 partitions them); all ranks must enter."""
    if stage == 3:
        import deepspeed

        return deepspeed.zero.GatheredParameters(list(engine.module.parameters()), modifier_rank=None)
    return nullcontext()


def plain_state_dict(engine: Any, stage: int) -> dict[str, torch.Tensor]:
    """A consolidated fp32 state_dict on CPU (collective under ZeRO-3: call on every rank)."""
    with gathered(engine, stage):
        return {k: v.detach().to("cpu", torch.float32).clone() for k, v in engine.module.state_dict().items()}


# ---- evaluation ------------------------------------------------------------------------------------------
def predict_shard(engine: Any, shard: Shard, chunks: int) -> np.ndarray:
    """Probabilities for this rank's validation rows, in ``chunks`` forward calls (same count on all ranks)."""
    engine.eval()
    out = []
    with torch.no_grad():
        for idx in torch.tensor_split(torch.arange(len(shard), device=shard.label.device), chunks):
            logits = engine(shard.numeric[idx], shard.categorical[idx])
            out.append(torch.sigmoid(logits.float()).cpu().numpy())
    engine.train()
    return np.concatenate(out) if out else np.zeros(0, dtype=np.float32)


def validate(engine: Any, data: Data, world: int) -> dict[str, float]:
    """Validation metrics over all ranks' shares (every rank gathers every prediction)."""
    import torch.distributed as dist

    probs = [None] * world
    dist.all_gather_object(probs, (data.val_idx, predict_shard(engine, data.val, data.val_chunks)))
    order = np.concatenate([i for i, _ in probs])
    p_val = np.concatenate([p for _, p in probs])[np.argsort(order)]
    return validation_scores(data.val_labels[np.sort(order)], p_val)


# ---- the run ---------------------------------------------------------------------------------------------
def train_epoch(
    engine: Any, data: Data, job: Job, epoch: int, me: Rank, micro: int, steps: int, time_first_step: bool
) -> tuple[float, float, float | None]:
    """One pass over this rank's shard in a seeded order: (mean train loss over all ranks, seconds, and when
    ``time_first_step`` the time at which its first step finished)."""
    import torch.distributed as dist

    order = torch.randperm(len(data.train), generator=torch.Generator().manual_seed(job.seed * 100_003 + epoch))
    order = order.to(me.device)
    loss_sum = torch.zeros((), device=me.device)
    first_step_at = None
    _sync(me.device)
    t0 = time.perf_counter()
    for step in range(steps):
        idx = order[step * micro : (step + 1) * micro]
        logits = engine(data.train.numeric[idx], data.train.categorical[idx])
        loss = F.binary_cross_entropy_with_logits(logits.float(), data.train.label[idx])
        engine.backward(loss)
        engine.step()
        loss_sum += loss.detach()
        if time_first_step and step == 0:
            _sync(me.device)
            first_step_at = time.time()
    _sync(me.device)
    seconds = time.perf_counter() - t0
    mean_loss = loss_sum / steps
    dist.all_reduce(mean_loss)
    return float(mean_loss) / me.world, seconds, first_step_at


def record_epoch(
    state: State, epoch: int, train_loss: float, metrics: dict[str, float], samples: int, seconds: float
) -> bool:
    """Update progress and early stopping with one finished epoch; whether it is the best so far."""
    improved = metrics["log_loss"] < state.best_loss - MIN_IMPROVEMENT
    if improved:
        state.best_loss, state.best_epoch, state.bad_epochs = metrics["log_loss"], epoch, 0
    else:
        state.bad_epochs += 1
    state.epoch = epoch
    state.train_seconds += seconds
    state.train_samples += samples
    state.history.append(
        {
            "epoch": epoch + 1,
            "train_loss": train_loss,
            "samples_per_s": samples / seconds,
            **{f"val_{k}": v for k, v in metrics.items()},
        }
    )
    return improved


@dataclass
class TrialOutcome:
    """One finished trial: its progress (best epoch, history, rank 0's best weights) and settings."""

    trial: Trial
    state: State
    stage: int
    n_params: int
    resumed_from: int | None
    seconds: float

    def score(self, metric: str) -> float:
        value = self.best_metrics().get(metric, math.nan)
        return float(value) if value is not None else math.nan

    def best_metrics(self) -> dict[str, float]:
        best = self.state.history[[h["epoch"] for h in self.state.history].index(self.state.best_epoch + 1)]
        return {k.removeprefix("val_"): v for k, v in best.items() if k.startswith("val_")}


def run(job: Job, rank: int, world: int, local_rank: int, report: Reporter) -> dict[str, Any]:
    """Train every trial in turn (each from its last checkpoint, if any); rank 0 returns and exports the summary
    of the best one."""
    import torch.distributed as dist

    startup: dict[str, float | None] = {"python_and_torch_ready": time.time() - job.launched_at}
    device = join_process_group(job, local_rank)
    startup["process_group_ready"] = time.time() - job.launched_at
    me = Rank(rank, world, device)
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(job.precision, torch.float32)
    data = load_data(job, me, dtype)
    startup["data_on_device"] = time.time() - job.launched_at

    best: TrialOutcome | None = None
    figures: list[dict[str, Any]] = []
    for i, trial in enumerate(job.trials):
        elapsed = [time.time() - job.launched_at]
        dist.broadcast_object_list(elapsed, src=0)  # rank 0's clock decides, so every rank stops together
        if i > 0 and job.max_seconds is not None and elapsed[0] > job.max_seconds:
            skipped = [t.name for t in job.trials[i:]]
            report.info(f"search budget of {job.max_seconds:g} s used after {elapsed[0]:.0f} s: skipping {skipped}")
            figures += [trial_figures(t, None, job) for t in job.trials[i:]]
            break
        outcome = run_trial(job, trial, data, me, report, startup)
        figures.append(trial_figures(trial, outcome, job))
        if best is None or better(outcome, best, job):
            best = outcome
        elif rank == 0:
            outcome.state.best_state = None  # keep one set of weights: the best trial's
    assert best is not None
    if len(job.trials) > 1:
        report.info(
            f"search: {best.trial.name} is best on validation {job.select_by} "
            f"({best.score(job.select_by):.4f}) of {len([f for f in figures if f['status'] == 'trained'])} trials"
        )
    summary: dict[str, Any] = {}
    if rank == 0:
        startup.setdefault("first_step_done", None)  # None when resuming a run that had already finished
        summary = export(job, data.pre, best, world, startup, figures)
    dist.barrier()
    return summary


def better(candidate: TrialOutcome, incumbent: TrialOutcome, job: Job) -> bool:
    """``candidate`` beats ``incumbent`` on the selection metric (NaN never wins; ties keep the earlier)."""
    new, old = candidate.score(job.select_by), incumbent.score(job.select_by)
    if math.isnan(new):
        return False
    if math.isnan(old):
        return True
    return new > old if job.higher_is_better else new < old


def trial_figures(trial: Trial, outcome: TrialOutcome | None, job: Job) -> dict[str, Any]:
    """One row of the search table: the trial's settings and its best epoch's validation metrics."""
    net = trial.network
    row: dict[str, Any] = {
        "trial": trial.name,
        "architecture": net.architecture,
        "hidden": "x".join(map(str, net.hidden)) if net.architecture == "mlp" else f"{net.n_layers}L/{net.d_token}d",
        "dropout": net.dropout,
        **trial.settings,
    }
    if outcome is None:
        return row | {"status": "skipped (budget)"}
    return row | {
        "status": "trained",
        "parameters": outcome.n_params,
        "best_epoch": outcome.state.best_epoch + 1,
        "epochs_run": outcome.state.epoch + 1,
        "seconds": round(outcome.seconds, 1),
        **{f"val_{k}": v for k, v in outcome.best_metrics().items() if k in ("log_loss", "roc_auc", "pr_auc")},
    }


def run_trial(job: Job, trial: Trial, data: Data, me: Rank, report: Reporter, startup: dict) -> TrialOutcome:
    """Train one trial to the end (or early stop) from its last checkpoint, if any."""
    started = time.perf_counter()
    micro, steps = step_plan(len(data.train), trial.deepspeed_config)
    gas = int(trial.deepspeed_config.get("gradient_accumulation_steps", 1))
    config = fill_schedule(trial.deepspeed_config, job.max_epochs * steps // gas, job.warmup_fraction)
    engine, n_params = build_engine(job, trial.network, data.pre, config, me.world)
    startup.setdefault("engine_ready", time.time() - job.launched_at)
    directory = job.checkpoint_dir / trial.name

    state, resumed_from = State(), None
    if (directory / "latest").is_file():
        _, client = engine.load_checkpoint(str(directory))
        state = State(**client["progress"])
        resumed_from = state.epoch
        report.info(f"{trial.name}: resumed from checkpoint of epoch {state.epoch + 1} in {directory}")
    report.info(
        f"{trial.name} {trial.network.architecture} {trial.settings or ''}: {n_params} parameters; {me.world} "
        f"{job.device} rank(s), ZeRO {zero_stage(config)}, {job.precision}; {data.n_train} train rows "
        f"({len(data.train)} per rank, {steps} steps of {micro}), {data.n_val} validation rows"
    )
    while not state.stopped and state.epoch + 1 < job.max_epochs:
        epoch = state.epoch + 1
        first = "first_step_done" not in startup
        train_loss, seconds, first_step_at = train_epoch(engine, data, job, epoch, me, micro, steps, first)
        if first_step_at is not None:
            startup["first_step_done"] = first_step_at - job.launched_at
        metrics = validate(engine, data, me.world)
        improved = record_epoch(state, epoch, train_loss, metrics, steps * micro * me.world, seconds)
        if improved:
            best = plain_state_dict(engine, zero_stage(config))  # collective under ZeRO-3: every rank
            state.best_state = best if me.rank == 0 else None
        state.stopped = state.bad_epochs >= job.patience
        save_checkpoint(engine, directory, epoch, state, me.rank)
        report.info(
            f"{trial.name} epoch {epoch + 1}/{job.max_epochs}: train_loss {train_loss:.4f}, val_log_loss "
            f"{metrics['log_loss']:.4f}, val_roc_auc {metrics['roc_auc']:.4f}, "
            f"{state.history[-1]['samples_per_s']:,.0f} samples/s"
            + (" (best)" if improved else f" (no improvement for {state.bad_epochs})")
        )
    if state.stopped:
        report.info(f"{trial.name}: early stop, validation loss did not improve for {job.patience} epochs")
    if not state.history:
        raise RuntimeError(f"{trial.name}: no epoch ran (max_epochs {job.max_epochs}); nothing to compare")
    stage = zero_stage(config)
    del engine  # the next trial builds its own; free this one's optimizer state first
    return TrialOutcome(trial, state, stage, n_params, resumed_from, time.perf_counter() - started)


def save_checkpoint(engine: Any, directory: Path, epoch: int, state: State, rank: int) -> None:
    """Checkpoint on all ranks (ZeRO shards live on each), then keep only the newest on disk."""
    import torch.distributed as dist

    progress = dict(state.__dict__)
    engine.save_checkpoint(str(directory), tag=f"{TAG_PREFIX}{epoch:04d}", client_state={"progress": progress})
    dist.barrier()
    if rank == 0:
        for old in directory.glob(f"{TAG_PREFIX}*"):
            if old.is_dir() and old.name != f"{TAG_PREFIX}{epoch:04d}":
                shutil.rmtree(old, ignore_errors=True)


def summarize(
    job: Job, best: TrialOutcome, world: int, startup: dict[str, float | None], trials: list[dict[str, Any]]
) -> dict[str, Any]:
    """The run's summary: the best trial's best epoch (metrics, history, throughput, settings), timings, and every
    trial's figures."""
    state = best.state
    return {
        "metrics": best.best_metrics(),
        "best_epoch": state.best_epoch + 1,
        "epochs_run": state.epoch + 1,
        "early_stopped": state.stopped,
        "history": state.history,
        # Steady state: the first epoch of a launch also pays one-off costs (first collectives, allocator).
        "samples_per_s": float(
            np.median([h["samples_per_s"] for h in state.history[1:]] or [state.history[0]["samples_per_s"]])
        ),
        "overall_samples_per_s": state.train_samples / state.train_seconds if state.train_seconds else 0.0,
        "train_seconds": state.train_seconds,
        "wall_seconds": time.time() - job.launched_at,
        "launch_to_first_step_s": startup["first_step_done"],
        "startup_s": startup,  # seconds after launch at which rank 0 reached each phase
        "resumed_from_epoch": None if best.resumed_from is None else best.resumed_from + 1,
        "ranks": world,
        "device": job.device if job.device == "cpu" else torch.cuda.get_device_name(),
        "precision": job.precision,
        "zero_stage": best.stage,
        "parameters": best.n_params,
        "network": best.trial.network.model_dump(),
        "deepspeed_config": best.trial.deepspeed_config,
        "checkpoint_dir": str(job.checkpoint_dir / best.trial.name),
        "best_trial": best.trial.name,
        "select_by": job.select_by,
        "trials": trials,
    }


def export(
    job: Job,
    pre: Preprocessing,
    best: TrialOutcome,
    world: int,
    startup: dict[str, float | None],
    trials: list[dict[str, Any]],
) -> dict[str, Any]:
    """Rank 0: write the best trial's weights, the preprocessing and the summary to the job's output folder."""
    if best.state.best_state is None:
        raise RuntimeError(f"no epoch finished with a finite validation loss; nothing to export ({job.checkpoint_dir})")
    summary = summarize(job, best, world, startup, trials)
    weights = io.BytesIO()
    torch.save(best.state.best_state, weights)
    fs, folder = fsspec.core.url_to_fs(job.output_dir)
    fs.makedirs(folder, exist_ok=True)
    fs.pipe_file(f"{folder}/{STATE_DICT}", weights.getvalue())
    fs.pipe_file(f"{folder}/{PREPROCESSING}", json.dumps(pre.to_dict(), indent=1).encode())
    fs.pipe_file(f"{folder}/{SUMMARY}", json.dumps(summary, indent=1, default=float).encode())
    return summary


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        raise SystemExit("usage: python -m ml_assets.model.train JOB_URL (the job DeepSpeedTrainer staged)")
    job = Job.read(args[0])
    rank = int(os.environ.get("RANK", "0"))
    world = int(os.environ.get("WORLD_SIZE", "1"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if rank == 0:
        with open_dagster_pipes() as pipes:
            run(job, rank, world, local_rank, Reporter(pipes))
    else:
        run(job, rank, world, local_rank, Reporter(None))


if __name__ == "__main__":
    main()
