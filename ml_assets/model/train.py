"""Training entrypoint, run on every rank by torchrun: ``python -m torch.distributed.run ... -m ml_assets.model.train``.

Every rank reads the staged train/validation rows named in the Pipes extras, fits the same preprocessing on the
train split (deterministic, so all ranks agree without communication), keeps its shard of the train rows as
tensors on its device and iterates it by index slices (no DataLoader: tabular training is bound by data
movement). DeepSpeed runs data parallelism and ZeRO. After every epoch all ranks evaluate their share of the
validation rows, save a DeepSpeed checkpoint, and stop early when validation loss stops improving. A rerun
with the same checkpoint directory (same data version and config) resumes from the last checkpoint.

Only rank 0 opens the Dagster Pipes context (every rank reporting would fail the step): it streams per-epoch
metrics as log lines, writes the best epoch's plain fp32 state_dict, the preprocessing and ``result.json`` to
the output directory, and reports the summary as a custom Pipes message.
"""

from __future__ import annotations

import json
import logging
import math
import os
import shutil
import time
import warnings
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from dagster_pipes import (
    PipesContext,
    PipesDefaultContextLoader,
    PipesEnvVarParamsLoader,
    open_dagster_pipes,
)

from ml_assets.data.splits import SPLIT
from ml_assets.dataset import DatasetSpec
from ml_assets.model.metrics import classification_metrics
from ml_assets.model.network import NetworkConfig, build_network
from ml_assets.model.preprocessing import Preprocessing

MIN_IMPROVEMENT = 1e-4
EVAL_CHUNK = 65_536
TAG_PREFIX = "epoch"


@dataclass
class Job:
    """The Pipes extras, typed."""

    training_set: Path
    output_dir: Path
    checkpoint_dir: Path
    spec: DatasetSpec
    network: NetworkConfig
    deepspeed_config: dict[str, Any]
    device: str
    precision: str
    max_epochs: int
    patience: int
    seed: int
    warmup_fraction: float
    launched_at: float

    @classmethod
    def from_extras(cls, extras: dict[str, Any]) -> Job:
        return cls(
            training_set=Path(extras["training_set"]),
            output_dir=Path(extras["output_dir"]),
            checkpoint_dir=Path(extras["checkpoint_dir"]),
            spec=DatasetSpec.model_validate(extras["spec"]),
            network=NetworkConfig(**extras["network"]),
            deepspeed_config=dict(extras["deepspeed_config"]),
            device=extras["device"],
            precision=extras["precision"],
            max_epochs=int(extras["max_epochs"]),
            patience=int(extras["patience"]),
            seed=int(extras["seed"]),
            warmup_fraction=float(extras["warmup_fraction"]),
            launched_at=float(extras["launched_at"]),
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


class Reporter:
    """Rank 0 talks to Dagster through Pipes; other ranks stay silent (and print to their own stderr)."""

    def __init__(self, pipes: PipesContext | None):
        self.pipes = pipes

    def info(self, message: str) -> None:
        if self.pipes is not None:
            self.pipes.log.info(message)

    def result(self, summary: dict[str, Any]) -> None:
        if self.pipes is not None:
            self.pipes.report_custom_message(summary)


# ---- data ------------------------------------------------------------------------------------------------
def load_splits(job: Job) -> tuple[pd.DataFrame, pd.DataFrame]:
    frame = pd.read_parquet(job.training_set)
    train = frame[frame[SPLIT] == "train"].reset_index(drop=True)
    val = frame[frame[SPLIT] == "validation"].reset_index(drop=True)
    return train, val


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


def disable_unused_cpu_ops() -> None:
    """DeepSpeed's CPU backend JIT-builds a shared-memory all-reduce op (~40 s) that only inference tensor
    parallelism uses; mark it incompatible so gloo serves training collectives and nothing is compiled."""
    import deepspeed.ops

    deepspeed.ops.__compatible_ops__["deepspeed_shm_comm"] = False


def gathered(engine: Any, zero_stage: int):
    """Context in which every rank sees full parameters (ZeRO-3 partitions them); all ranks must enter."""
    if zero_stage == 3:
        import deepspeed

        return deepspeed.zero.GatheredParameters(list(engine.module.parameters()), modifier_rank=None)
    return nullcontext()


def plain_state_dict(engine: Any, zero_stage: int) -> dict[str, torch.Tensor]:
    """A consolidated fp32 state_dict on CPU (collective under ZeRO-3: call on every rank)."""
    with gathered(engine, zero_stage):
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


# ---- the run ---------------------------------------------------------------------------------------------
def run(job: Job, rank: int, world: int, local_rank: int, report: Reporter) -> dict[str, Any]:
    startup: dict[str, float | None] = {"python_and_torch_ready": time.time() - job.launched_at}
    import deepspeed

    startup["deepspeed_imported"] = time.time() - job.launched_at
    import torch.distributed as dist

    logging.getLogger("DeepSpeed").setLevel(logging.ERROR)
    # ZeRO calls a torch collective that torch 2.13 deprecates; one warning per call and rank floods the log.
    warnings.filterwarnings("ignore", category=FutureWarning, module="torch.distributed")
    if job.device == "cuda":
        torch.cuda.set_device(local_rank)
        device = torch.device("cuda", local_rank)
        backend = "nccl"
    else:
        disable_unused_cpu_ops()
        device = torch.device("cpu")
        backend = "gloo"
    deepspeed.init_distributed(dist_backend=backend)
    startup["process_group_ready"] = time.time() - job.launched_at
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(job.precision, torch.float32)
    zero_stage = int(job.deepspeed_config.get("zero_optimization", {}).get("stage", 0))

    train_rows, val_rows = load_splits(job)
    pre = Preprocessing.fit(job.spec, train_rows)
    label = job.spec.label_column
    train_idx = shard_rows(len(train_rows), rank, world, job.seed, equal=True)
    val_idx = shard_rows(len(val_rows), rank, world, job.seed, equal=False)
    train = to_shard(pre, train_rows.iloc[train_idx], label, device, dtype)
    val = to_shard(pre, val_rows.iloc[val_idx], label, device, dtype)
    val_chunks = max(1, math.ceil(math.ceil(len(val_rows) / world) / EVAL_CHUNK))
    micro, steps = step_plan(len(train), job.deepspeed_config)
    gas = int(job.deepspeed_config.get("gradient_accumulation_steps", 1))
    config = fill_schedule(job.deepspeed_config, job.max_epochs * steps // gas, job.warmup_fraction)
    startup["data_on_device"] = time.time() - job.launched_at

    torch.manual_seed(job.seed)
    np.random.seed(job.seed)
    net = build_network(job.network, pre)
    engine, _, _, _ = deepspeed.initialize(model=net, model_parameters=net.parameters(), config=config)
    if world == 1 and zero_stage == 0:
        # One rank has nothing to average: DeepSpeed would still flatten, all-reduce and copy back every
        # gradient each step (measured: 0.53x -> 0.70x of a plain loop in-process on CPU).
        engine.enable_backward_allreduce = False
    startup["engine_ready"] = time.time() - job.launched_at

    state = State()
    resumed_from = None
    if (job.checkpoint_dir / "latest").is_file():
        _, client = engine.load_checkpoint(str(job.checkpoint_dir))
        state = State(**client["progress"])
        resumed_from = state.epoch
        report.info(f"resumed from checkpoint of epoch {state.epoch + 1} in {job.checkpoint_dir}")

    first_step_s: float | None = None
    n_params = sum(p.numel() for p in net.parameters())
    report.info(
        f"{job.network.architecture}: {n_params} parameters; {world} {job.device} rank(s), ZeRO {zero_stage}, "
        f"{job.precision}; {len(train_rows)} train rows ({len(train)} per rank, {steps} steps of {micro}), "
        f"{len(val_rows)} validation rows"
    )
    while not state.stopped and state.epoch + 1 < job.max_epochs:
        epoch = state.epoch + 1
        order = torch.randperm(len(train), generator=torch.Generator().manual_seed(job.seed * 100_003 + epoch))
        order = order.to(device)
        loss_sum = torch.zeros((), device=device)
        _sync(device)
        t0 = time.perf_counter()
        for step in range(steps):
            idx = order[step * micro : (step + 1) * micro]
            logits = engine(train.numeric[idx], train.categorical[idx])
            loss = F.binary_cross_entropy_with_logits(logits.float(), train.label[idx])
            engine.backward(loss)
            engine.step()
            loss_sum += loss.detach()
            if first_step_s is None:
                _sync(device)
                first_step_s = time.time() - job.launched_at
        _sync(device)
        epoch_s = time.perf_counter() - t0
        state.train_seconds += epoch_s
        state.train_samples += steps * micro * world

        mean_loss = loss_sum / steps
        dist.all_reduce(mean_loss)
        train_loss = float(mean_loss) / world
        probs = [None] * world
        dist.all_gather_object(probs, (val_idx, predict_shard(engine, val, val_chunks)))
        order_val = np.concatenate([i for i, _ in probs])
        p_val = np.concatenate([p for _, p in probs])[np.argsort(order_val)]
        metrics = classification_metrics(val_rows[label].to_numpy()[np.sort(order_val)], p_val)

        improved = metrics["log_loss"] < state.best_loss - MIN_IMPROVEMENT
        current = plain_state_dict(engine, zero_stage) if improved else None
        if improved:
            state.best_loss, state.best_epoch, state.bad_epochs = metrics["log_loss"], epoch, 0
            state.best_state = current if rank == 0 else None
        else:
            state.bad_epochs += 1
        state.epoch = epoch
        state.stopped = state.bad_epochs >= job.patience
        samples_per_s = steps * micro * world / epoch_s
        state.history.append(
            {
                "epoch": epoch + 1,
                "train_loss": train_loss,
                "samples_per_s": samples_per_s,
                **{f"val_{k}": v for k, v in metrics.items()},
            }
        )
        save_checkpoint(engine, job.checkpoint_dir, epoch, state, rank)
        report.info(
            f"epoch {epoch + 1}/{job.max_epochs}: train_loss {train_loss:.4f}, val_log_loss "
            f"{metrics['log_loss']:.4f}, val_roc_auc {metrics['roc_auc']:.4f}, {samples_per_s:,.0f} samples/s"
            + (" (best)" if improved else f" (no improvement for {state.bad_epochs})")
        )
    if state.stopped:
        report.info(f"early stop: validation loss did not improve for {job.patience} epochs")

    summary: dict[str, Any] = {}
    if rank == 0:
        startup["first_step_done"] = first_step_s  # None when resuming a run that had already finished
        summary = export(job, pre, state, world, zero_stage, startup, resumed_from, n_params)
        report.result(summary)
    dist.barrier()
    return summary


def save_checkpoint(engine: Any, directory: Path, epoch: int, state: State, rank: int) -> None:
    """Checkpoint on all ranks (ZeRO shards live on each), then keep only the newest on disk."""
    import torch.distributed as dist

    progress = {k: v for k, v in state.__dict__.items()}
    engine.save_checkpoint(str(directory), tag=f"{TAG_PREFIX}{epoch:04d}", client_state={"progress": progress})
    dist.barrier()
    if rank == 0:
        for old in directory.glob(f"{TAG_PREFIX}*"):
            if old.is_dir() and old.name != f"{TAG_PREFIX}{epoch:04d}":
                shutil.rmtree(old, ignore_errors=True)


def export(
    job: Job,
    pre: Preprocessing,
    state: State,
    world: int,
    zero_stage: int,
    startup: dict[str, float | None],
    resumed_from: int | None,
    n_params: int,
) -> dict[str, Any]:
    """Rank 0: write the best epoch's weights, the preprocessing and the summary to the output directory."""
    if state.best_state is None:
        raise RuntimeError(f"no epoch finished with a finite validation loss; nothing to export ({job.checkpoint_dir})")
    job.output_dir.mkdir(parents=True, exist_ok=True)
    torch.save(state.best_state, job.output_dir / "state_dict.pt")
    pre.save(job.output_dir / "preprocessing.json")
    best = state.history[[h["epoch"] for h in state.history].index(state.best_epoch + 1)]
    summary = {
        "metrics": {k.removeprefix("val_"): v for k, v in best.items() if k.startswith("val_")},
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
        "resumed_from_epoch": None if resumed_from is None else resumed_from + 1,
        "ranks": world,
        "device": job.device if job.device == "cpu" else torch.cuda.get_device_name(),
        "precision": job.precision,
        "zero_stage": zero_stage,
        "parameters": n_params,
        "network": job.network.model_dump(),
        "deepspeed_config": job.deepspeed_config,
        "checkpoint_dir": str(job.checkpoint_dir),
    }
    (job.output_dir / "result.json").write_text(json.dumps(summary, indent=1, default=float))
    return summary


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def read_extras() -> dict[str, Any]:
    """Ranks other than 0 read the same Pipes context (read-only) without opening a Pipes session."""
    params = PipesEnvVarParamsLoader().load_context_params()
    with PipesDefaultContextLoader().load_context(params) as data:
        return dict(data["extras"])


def main() -> None:
    rank = int(os.environ.get("RANK", "0"))
    world = int(os.environ.get("WORLD_SIZE", "1"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if rank == 0:
        with open_dagster_pipes() as pipes:
            run(Job.from_extras(dict(pipes.extras)), rank, world, local_rank, Reporter(pipes))
    else:
        run(Job.from_extras(read_extras()), rank, world, local_rank, Reporter(None))


if __name__ == "__main__":
    main()
