"""Training entrypoint, run on every rank by torchrun: ``python -m torch.distributed.run ... -m ml_assets.model.train JOB``.

``JOB`` is the URL of the job description ``DeepSpeedTrainer`` staged in its storage (a path on a shared volume
or an object-store URL): every rank, on whatever node, reads the job, which carries the train and validation
rows by reference (Parquet scans with their row groups' counts) and the preprocessing the launching step fitted
on every train row; it cuts its own shard of each from the counts and reads only that, in Arrow batches encoded
with that preprocessing (``ml_assets.model.shards``). A shard that fits the job's byte budget is kept as tensors
on the rank's device and iterated by index slices (no DataLoader: tabular training is bound by data movement);
a larger one streams from storage at every pass, so a rank's memory is bounded by its batches. DeepSpeed runs
data parallelism and ZeRO. After every epoch all ranks evaluate their share of the validation rows, save a
DeepSpeed checkpoint, and stop early when validation loss stops improving. A rerun with the same checkpoint
directory (same data version and config) resumes from the last checkpoint.

A job holds one or more trials (a candidate search): networks with their own DeepSpeed configs (learning rate,
weight decay, schedule) and class weighting, trained by the same process group on the same shards, so start-up
(interpreters, the process group, reading and encoding a kept shard) is paid once. With ``halving`` the trials run
as successive halving (Jamieson and Talwalkar 2016; ASHA's rungs, run synchronously): every trial trains to the
first rung's epochs, only the best 1/eta on validation go on to the next rung, and so on to ``max_epochs``, so
the budget goes to the settings that pay. Each trial stops early when its validation score (the job's selection
metric) stops improving. At the end the best trial, or the greedy ensemble of trials (Caruana et al. 2004) when
it scores better on validation, is exported as one network; every trial's figures, with where it stopped and why,
go into the summary. Past ``max_seconds`` no trial trains further (rank 0 decides, every rank follows).

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
import torch
import torch.nn.functional as F
from dagster_pipes import PipesContext, open_dagster_pipes

from ml_assets.dataset import DatasetSpec
from ml_assets.model.metrics import validation_scores
from ml_assets.model.network import NetworkConfig, build_network
from ml_assets.model.preprocessing import Preprocessing
from ml_assets.model.shards import RankRows, chunk_count
from resources.training_records import TrainingJob, TrainingSummary

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


@dataclass(frozen=True)
class Halving:
    """Successive halving: rungs at ``min_epochs * eta**i`` epochs; a rung keeps the best ``ceil(n / eta)``."""

    min_epochs: int
    eta: int


class Job(TrainingJob):
    """The ``TrainingJob`` the trainer staged, read with its domain parts typed: the spec, the trials' networks,
    the halving schedule (a mismatch fails in ``read``, naming the file and the field)."""

    checkpoint_dir: Path
    spec: DatasetSpec
    trials: list[Trial]
    halving: Halving | None

    @classmethod
    def read_url(cls, url: str) -> Job:
        with fsspec.open(url, "rb") as f:
            return cls.read(f.read(), url)


@dataclass
class Data:
    """Everything this rank trains and validates on."""

    pre: Preprocessing
    train: RankRows  # this rank's equal share of the train rows
    val: RankRows  # this rank's share of the validation rows (the shares in rank order are the rows in order)
    val_labels: np.ndarray  # labels of all validation rows
    val_chunks: int  # forward calls per validation pass (the same on every rank)
    n_train: int
    n_val: int
    positive_rate: float  # of all train rows: the class weight of a balanced trial


@dataclass
class State:
    """Training progress carried in checkpoints (DeepSpeed ``client_state``)."""

    epoch: int = -1  # last finished epoch
    best_score: float = -math.inf  # the selection metric at the best epoch, signed so that higher is better
    best_epoch: int = -1
    bad_epochs: int = 0
    stopped: bool = False
    history: list[dict[str, float]] = field(default_factory=list)
    best_state: dict[str, torch.Tensor] | None = None
    best_probs: torch.Tensor | None = None  # every validation row's probability at the best epoch (rank 0)
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
def load_data(job: Job, me: Rank) -> Data:
    """This rank's shards of the prepared rows (train: equal shares of the row groups in a seeded order, so every
    rank runs the same number of steps; validation: contiguous shares in order), kept on the device while the
    job's budget lasts (train first), and every validation label (gathered from the ranks' shares)."""
    import torch.distributed as dist

    rows = job.rows
    pre = Preprocessing.from_dict(rows.preprocessing)
    label = job.spec.label_column
    train = RankRows(rows.train, rows.train.shard(me.rank, me.world, equal=True, seed=job.seed), pre, label, me.device)
    val = RankRows(rows.validation, rows.validation.shard(me.rank, me.world, equal=False), pre, label, me.device)
    budget = job.shard_cache_bytes - train.keep(job.shard_cache_bytes)
    val.keep(budget)
    labels: list[np.ndarray | None] = [None] * me.world
    dist.all_gather_object(labels, val.labels())
    return Data(
        pre=pre,
        train=train,
        val=val,
        val_labels=np.concatenate([np.asarray(part) for part in labels]).astype(np.int64),
        val_chunks=chunk_count(rows.validation.rows, me.world, EVAL_CHUNK),
        n_train=rows.train.rows,
        n_val=rows.validation.rows,
        positive_rate=rows.positive_rate,
    )


# ---- engine ----------------------------------------------------------------------------------------------
def step_plan(n_local: int, config: dict[str, Any]) -> tuple[int, int]:
    """(rows per micro step, micro steps per epoch), the same on every rank; steps are whole accumulations."""
    gas = int(config.get("gradient_accumulation_steps", 1))
    micro = max(1, min(int(config["train_micro_batch_size_per_gpu"]), n_local // gas))
    return micro, max(1, n_local // (micro * gas)) * gas


def epoch_rows_per_rank(job: Job, shard_rows: int, world: int) -> int:
    """Rows one epoch visits on each rank: the whole shard, or the job's ``epoch_rows`` shared by the ranks when the
    shard is larger (each epoch then draws its rows afresh: ``micro_batches`` takes the first steps of an
    epoch-seeded order), so an epoch of a huge window costs what an epoch of ``epoch_rows`` rows costs."""
    if job.epoch_rows is None:
        return shard_rows
    return min(shard_rows, max(1, math.ceil(job.epoch_rows / world)))


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
def predict_shard(engine: Any, shard: RankRows, chunks: int) -> np.ndarray:
    """Probabilities for this rank's validation rows, in ``chunks`` forward calls (same count on all ranks)."""
    engine.eval()
    out = []
    with torch.no_grad():
        for part in shard.chunks(chunks, EVAL_CHUNK):
            logits = engine(part.numeric, part.categorical)
            out.append(torch.sigmoid(logits.float()).cpu().numpy())
    engine.train()
    return np.concatenate(out) if out else np.zeros(0, dtype=np.float32)


def validate(engine: Any, data: Data, world: int) -> tuple[dict[str, float], np.ndarray]:
    """Validation metrics over all ranks' shares, and every validation row's probability in row order (every
    rank gathers every prediction; the shares in rank order are the rows in order)."""
    import torch.distributed as dist

    probs: list[np.ndarray | None] = [None] * world
    dist.all_gather_object(probs, predict_shard(engine, data.val, data.val_chunks))
    p_val = np.concatenate([np.asarray(p) for p in probs])
    return validation_scores(data.val_labels, p_val), p_val


# ---- the run ---------------------------------------------------------------------------------------------
def train_epoch(
    engine: Any,
    data: Data,
    job: Job,
    epoch: int,
    me: Rank,
    micro: int,
    steps: int,
    weighting: ClassWeight,
    time_first_step: bool,
) -> tuple[float, float, float | None]:
    """One epoch of this rank's shard (all of it, or its ``epoch_rows`` share) in a seeded order: (mean train loss
    over all ranks, seconds, and when ``time_first_step`` the time at which its first step finished)."""
    import torch.distributed as dist

    batches = data.train.micro_batches(micro, steps, seed=job.seed * 100_003 + epoch)
    pos_weight = None if weighting.weight == 1.0 else torch.tensor(weighting.weight, device=me.device)
    loss_sum = torch.zeros((), device=me.device)
    first_step_at = None
    _sync(me.device)
    t0 = time.perf_counter()
    for step, batch in enumerate(batches):
        logits = engine(batch.numeric, batch.categorical).float() - weighting.offset
        loss = F.binary_cross_entropy_with_logits(logits, batch.label, pos_weight=pos_weight)
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


@dataclass(frozen=True)
class ClassWeight:
    """Class imbalance handled by weighting: positives weigh ``weight`` = negatives / positives in the loss
    ("balanced"), which shifts every logit by log(weight); the network adds ``offset`` = -log(weight) so its
    probabilities stay calibrated (training subtracts it again before the weighted loss)."""

    weight: float = 1.0
    offset: float = 0.0

    @classmethod
    def of(cls, trial: Trial, positive_rate: float) -> ClassWeight:
        if trial.settings.get("class_weight", "none") != "balanced" or not 0 < positive_rate < 1:
            return cls()
        weight = (1 - positive_rate) / positive_rate
        return cls(weight=weight, offset=-math.log(weight))


def score_of(metrics: dict[str, float], metric: str, higher_is_better: bool) -> float:
    """The selection metric signed so that higher is better; NaN (e.g. ROC AUC of one class) as -inf."""
    value = float(metrics.get(metric, math.nan))
    if math.isnan(value):
        return -math.inf
    return value if higher_is_better else -value


def record_epoch(
    state: State,
    epoch: int,
    train_loss: float,
    metrics: dict[str, float],
    samples: int,
    seconds: float,
    score: float,
) -> bool:
    """Update progress and early stopping with one finished epoch (``score``: the selection metric, higher is
    better); whether it is the best so far."""
    improved = math.isfinite(score) and score > state.best_score + MIN_IMPROVEMENT
    if not math.isfinite(state.best_score) and state.best_epoch < 0:
        improved = True  # the first epoch is the best so far, whatever its score
    if improved:
        state.best_score, state.best_epoch, state.bad_epochs = score, epoch, 0
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
class TrialRun:
    """One trial while the search runs: its engine (None once it stopped), progress and settings."""

    trial: Trial
    network: NetworkConfig  # the trial's network as exported (with the class weighting's logit offset)
    weighting: ClassWeight
    engine: Any
    config: dict[str, Any]
    micro: int
    steps: int
    directory: Path
    state: State
    n_params: int
    resumed_from: int | None
    seconds: float = 0.0
    stopped_by: str = ""  # why it trains no further: "", "early stopping", "halving", "budget"

    @property
    def stage(self) -> int:
        return zero_stage(self.config)

    def score(self, metric: str) -> float:
        value = self.best_metrics().get(metric, math.nan)
        return float(value) if value is not None else math.nan

    def best_metrics(self) -> dict[str, float]:
        if self.state.best_epoch < 0:
            return {}
        best = self.state.history[[h["epoch"] for h in self.state.history].index(self.state.best_epoch + 1)]
        return {k.removeprefix("val_"): v for k, v in best.items() if k.startswith("val_")}

    def release(self, reason: str) -> None:
        """Stop training this trial: free its engine and optimizer state, keep its progress and best weights."""
        self.stopped_by = self.stopped_by or reason
        self.engine = None


def rungs(job: Job) -> list[int]:
    """Epoch counts at which the surviving trials are compared: ``min_epochs * eta**i`` below ``max_epochs``,
    then ``max_epochs`` (one rung, no halving, for a single trial or without ``halving``)."""
    if job.halving is None or len(job.trials) == 1:
        return [job.max_epochs]
    out, epochs = [], max(1, job.halving.min_epochs)
    while epochs < job.max_epochs:
        out.append(epochs)
        epochs *= max(2, job.halving.eta)
    return [*out, job.max_epochs]


def budget_spent(job: Job) -> bool:
    """Rank 0's clock decides, so every rank stops together."""
    import torch.distributed as dist

    elapsed = [time.time() - job.launched_at]
    dist.broadcast_object_list(elapsed, src=0)
    return job.max_seconds is not None and elapsed[0] > job.max_seconds


def run(job: Job, rank: int, world: int, local_rank: int, report: Reporter) -> TrainingSummary | None:
    """Run the search (successive halving over the trials, each from its last checkpoint, if any); rank 0 returns
    and exports the summary of the kept model (the other ranks return None)."""
    startup: dict[str, float | None] = {"python_and_torch_ready": time.time() - job.launched_at}
    device = join_process_group(job, local_rank)
    startup["process_group_ready"] = time.time() - job.launched_at
    me = Rank(rank, world, device)
    data = load_data(job, me)
    startup["data_on_device"] = time.time() - job.launched_at

    runs: dict[int, TrialRun] = {}
    alive = list(range(len(job.trials)))
    spent = False
    plan = rungs(job)
    for level, epochs in enumerate(plan):
        for i in alive:
            if (runs or level > 0) and budget_spent(job):
                spent = True
                break
            if i not in runs:
                runs[i] = start_trial(job, job.trials[i], data, me, report, startup)
            train_until(runs[i], epochs, job, data, me, report, startup)
        if spent:
            report.info(f"search budget of {job.max_seconds:g} s used: no trial trains further")
            for r in runs.values():
                r.release("budget")
            break
        if level + 1 < len(plan):
            alive = halve(job, runs, alive, epochs, report)
    for r in runs.values():
        r.release("")
    order = sorted(runs, key=lambda i: (-score_of(runs[i].best_metrics(), job.select_by, job.higher_is_better), i))
    ranked = [runs[i] for i in order]  # best first; ties keep the earlier trial
    best = ranked[0]
    members = choose_ensemble(job, ranked, data) if rank == 0 else [best]
    figures = [trial_figures(t, runs.get(i), members) for i, t in enumerate(job.trials)]
    if len(job.trials) > 1:
        report.info(
            f"search: {best.trial.name} is best on validation {job.select_by} ({best.score(job.select_by):.4f}) "
            f"of {len(runs)} trials"
            + (f"; kept the ensemble of {[m.trial.name for m in members]}" if len(members) > 1 else "")
        )
    summary = None
    if rank == 0:
        startup.setdefault("first_step_done", None)  # None when resuming a run that had already finished
        summary = export(job, data, best, members, world, startup, figures)
    torch.distributed.barrier()
    # every rank leaves the group before its interpreter exits: gloo's threads still running at exit aborted a rank
    # now and then ("terminate called without an active exception", SIGABRT) after rank 0 had written the result,
    # and torchrun's exit status 1 failed the whole step
    torch.distributed.destroy_process_group()
    return summary


def halve(job: Job, runs: dict[int, TrialRun], alive: list[int], epochs: int, report: Reporter) -> list[int]:
    """The trials that go on to the next rung: the best ``ceil(n / eta)`` on validation (ties keep the earlier);
    the others stop here and free their engines."""
    assert job.halving is not None
    ranked = sorted(alive, key=lambda i: (-score_of(runs[i].best_metrics(), job.select_by, job.higher_is_better), i))
    keep = ranked[: math.ceil(len(ranked) / max(2, job.halving.eta))]
    cut = [i for i in ranked if i not in keep]
    for i in cut:
        runs[i].release("halving")
    if cut:
        report.info(
            f"successive halving after {epochs} epoch(s): {[runs[i].trial.name for i in keep]} go on, "
            f"{[runs[i].trial.name for i in cut]} stop"
        )
    return sorted(keep)


def choose_ensemble(job: Job, ranked: list[TrialRun], data: Data) -> list[TrialRun]:
    """Greedy forward selection (Caruana et al. 2004) over the trials, best first: add the trial whose
    probabilities, averaged with the chosen ones', improve the validation score most; stop when none does or at
    ``ensemble_size``. One member means the best trial alone."""
    pool = [r for r in ranked if r.state.best_probs is not None and r.state.best_state is not None]
    if job.ensemble_size < 2 or len(pool) < 2:
        return ranked[:1]
    chosen = [pool[0]]
    total = pool[0].state.best_probs.double().clone()
    current = score_of(pool[0].best_metrics(), job.select_by, job.higher_is_better)
    while len(chosen) < job.ensemble_size:
        options = []
        for r in pool:
            if r in chosen:
                continue
            probs = ((total + r.state.best_probs.double()) / (len(chosen) + 1)).numpy()
            options.append(
                (score_of(validation_scores(data.val_labels, probs), job.select_by, job.higher_is_better), r)
            )
        if not options:
            break
        score, pick = max(options, key=lambda o: o[0])
        if not score > current + MIN_IMPROVEMENT:
            break
        chosen.append(pick)
        total += pick.state.best_probs.double()
        current = score
    return chosen


def trial_figures(trial: Trial, outcome: TrialRun | None, members: list[TrialRun]) -> dict[str, Any]:
    """One row of the search table: the trial's settings, where it stopped and why, and its best epoch's
    validation metrics."""
    net = trial.network
    row: dict[str, Any] = {
        "trial": trial.name,
        "architecture": net.architecture,
        "hidden": "x".join(map(str, net.hidden)) if net.architecture == "mlp" else f"{net.n_layers}L/{net.d_token}d",
        "numeric_embedding": net.numeric_embedding,
        "dropout": net.dropout,
        **trial.settings,
    }
    if outcome is None:
        return row | {"status": "skipped (budget)"}
    status = {
        "": "trained",
        "early stopping": "stopped early (validation)",
        "halving": "stopped by halving",
        "budget": "stopped (budget)",
    }[outcome.stopped_by]
    return row | {
        "status": status,
        "stopped_at_epoch": outcome.state.epoch + 1,
        "in_model": "yes" if outcome in members else "",
        "parameters": outcome.n_params,
        "best_epoch": outcome.state.best_epoch + 1,
        "epochs_run": outcome.state.epoch + 1,
        "seconds": round(outcome.seconds, 1),
        **{f"val_{k}": v for k, v in outcome.best_metrics().items() if k in ("log_loss", "roc_auc", "pr_auc")},
    }


def start_trial(job: Job, trial: Trial, data: Data, me: Rank, report: Reporter, startup: dict) -> TrialRun:
    """Build the trial's engine and resume its progress from its last checkpoint, if any."""
    started = time.perf_counter()
    micro, steps = step_plan(epoch_rows_per_rank(job, len(data.train), me.world), trial.deepspeed_config)
    gas = int(trial.deepspeed_config.get("gradient_accumulation_steps", 1))
    config = fill_schedule(trial.deepspeed_config, job.max_epochs * steps // gas, job.warmup_fraction)
    weighting = ClassWeight.of(trial, data.positive_rate)
    network = trial.network.model_copy(update={"logit_offset": trial.network.logit_offset + weighting.offset})
    engine, n_params = build_engine(job, network, data.pre, config, me.world)
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
        f"({len(data.train)} per rank, {data.train.mode}, {steps} steps of {micro} an epoch), {data.n_val} "
        f"validation rows ({data.val.mode})"
    )
    run = TrialRun(trial, network, weighting, engine, config, micro, steps, directory, state, n_params, resumed_from)
    run.seconds = time.perf_counter() - started
    if state.stopped:
        run.release("early stopping")
    return run


def train_until(run: TrialRun, epochs: int, job: Job, data: Data, me: Rank, report: Reporter, startup: dict) -> None:
    """Train ``run`` until it has run ``epochs`` epochs in all, or stopped early on validation."""
    state, trial = run.state, run.trial
    started = time.perf_counter()
    while run.engine is not None and state.epoch + 1 < min(epochs, job.max_epochs):
        epoch = state.epoch + 1
        first = "first_step_done" not in startup
        train_loss, seconds, first_step_at = train_epoch(
            run.engine, data, job, epoch, me, run.micro, run.steps, run.weighting, first
        )
        if first_step_at is not None:
            startup["first_step_done"] = first_step_at - job.launched_at
        metrics, probs = validate(run.engine, data, me.world)
        score = score_of(metrics, job.select_by, job.higher_is_better)
        improved = record_epoch(state, epoch, train_loss, metrics, run.steps * run.micro * me.world, seconds, score)
        if improved:
            best = plain_state_dict(run.engine, run.stage)  # collective under ZeRO-3: every rank
            state.best_state = best if me.rank == 0 else None
            state.best_probs = torch.from_numpy(probs.astype(np.float32)) if me.rank == 0 else None
        state.stopped = state.bad_epochs >= job.patience
        save_checkpoint(run.engine, run.directory, epoch, state, me.rank)
        report.info(
            f"{trial.name} epoch {epoch + 1}/{job.max_epochs}: train_loss {train_loss:.4f}, val_log_loss "
            f"{metrics['log_loss']:.4f}, val_roc_auc {metrics['roc_auc']:.4f}, "
            f"{state.history[-1]['samples_per_s']:,.0f} samples/s"
            + (" (best)" if improved else f" (no improvement for {state.bad_epochs})")
        )
        if state.stopped:
            report.info(
                f"{trial.name}: early stop, validation {job.select_by} did not improve for {job.patience} epochs"
            )
            run.release("early stopping")
    run.seconds += time.perf_counter() - started
    if not state.history:
        raise RuntimeError(f"{trial.name}: no epoch ran (max_epochs {job.max_epochs}); nothing to compare")


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


def kept_network(best: TrialRun, members: list[TrialRun]) -> tuple[NetworkConfig, dict[str, torch.Tensor]]:
    """The exported network and its weights: the best trial's, or the ensemble of ``members`` as one module."""
    if len(members) < 2:
        assert best.state.best_state is not None
        return best.network, best.state.best_state
    network = NetworkConfig(architecture="ensemble", members=[m.network for m in members])
    weights = {
        f"members.{i}.{name}": value
        for i, m in enumerate(members)
        for name, value in (m.state.best_state or {}).items()
    }
    return network, weights


def summarize(
    job: Job,
    data: Data,
    best: TrialRun,
    members: list[TrialRun],
    world: int,
    startup: dict[str, float | None],
    trials: list[dict[str, Any]],
) -> TrainingSummary:
    """The run's summary: the kept model's validation metrics, the best trial's best epoch (history, throughput,
    settings), timings, and every trial's figures."""
    state = best.state
    metrics = best.best_metrics()
    if len(members) > 1:
        probs = torch.stack([m.state.best_probs.double() for m in members]).mean(0).numpy()
        metrics = validation_scores(data.val_labels, probs)
    network, _ = kept_network(best, members)
    return TrainingSummary(
        metrics=metrics,
        best_epoch=state.best_epoch + 1,
        epochs_run=state.epoch + 1,
        early_stopped=state.stopped,
        history=state.history,
        # Steady state: the first epoch of a launch also pays one-off costs (first collectives, allocator).
        samples_per_s=float(
            np.median([h["samples_per_s"] for h in state.history[1:]] or [state.history[0]["samples_per_s"]])
        ),
        overall_samples_per_s=state.train_samples / state.train_seconds if state.train_seconds else 0.0,
        train_seconds=state.train_seconds,
        wall_seconds=time.time() - job.launched_at,
        launch_to_first_step_s=startup["first_step_done"],
        startup_s=startup,  # seconds after launch at which rank 0 reached each phase
        resumed_from_epoch=None if best.resumed_from is None else best.resumed_from + 1,
        ranks=world,
        device=job.device if job.device == "cpu" else torch.cuda.get_device_name(),
        precision=job.precision,
        zero_stage=best.stage,
        parameters=sum(m.n_params for m in members) if len(members) > 1 else best.n_params,
        network=network.model_dump(),
        deepspeed_config=best.trial.deepspeed_config,
        checkpoint_dir=str(job.checkpoint_dir / best.trial.name),
        best_trial=best.trial.name,
        ensemble=[m.trial.name for m in members] if len(members) > 1 else [],
        select_by=job.select_by,
        trials=trials,
    )


def export(
    job: Job,
    data: Data,
    best: TrialRun,
    members: list[TrialRun],
    world: int,
    startup: dict[str, float | None],
    trials: list[dict[str, Any]],
) -> TrainingSummary:
    """Rank 0: write the kept model's weights, the preprocessing and the summary to the job's output folder."""
    if best.state.best_state is None:
        raise RuntimeError(f"no epoch finished with a finite validation loss; nothing to export ({job.checkpoint_dir})")
    summary = summarize(job, data, best, members, world, startup, trials)
    _, state_dict = kept_network(best, members)
    weights = io.BytesIO()
    torch.save(state_dict, weights)
    fs, folder = fsspec.core.url_to_fs(job.output_dir)
    fs.makedirs(folder, exist_ok=True)
    fs.pipe_file(f"{folder}/{STATE_DICT}", weights.getvalue())
    fs.pipe_file(f"{folder}/{PREPROCESSING}", json.dumps(data.pre.to_dict(), indent=1).encode())
    fs.pipe_file(f"{folder}/{SUMMARY}", summary.model_dump_json(indent=1).encode())
    return summary


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        raise SystemExit("usage: python -m ml_assets.model.train JOB_URL (the job DeepSpeedTrainer staged)")
    job = Job.read_url(args[0])
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
