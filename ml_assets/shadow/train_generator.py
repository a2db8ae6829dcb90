"""Generator training entrypoint, run on every rank by torchrun through ``DeepSpeedTrainer.run``.

``python -m torch.distributed.run ... -m ml_assets.shadow.train_generator JOB_URL``: every rank reads the
``EntrypointJob`` and the encoded rows it names from the trainer's storage, keeps its shard as tensors, and trains
the conditional VAE under ``deepspeed.initialize`` (data parallel, the trainer's ZeRO stage and optimizer). Rank 0
reports each epoch through Dagster Pipes and writes the weights and a summary to the job's output folder. The
encoding is fitted by the asset before the launch (deterministic, no communication), so ranks only see floats.
"""

from __future__ import annotations

import io
import json
import logging
import os
import sys
import time
import warnings
from typing import Any

import fsspec
import numpy as np
import pandas as pd
import torch
from dagster_pipes import PipesContext, open_dagster_pipes
from pydantic import BaseModel

from ml_assets.model.train import fill_schedule
from ml_assets.shadow.network import ConditionalVAE, GeneratorConfig
from resources.deepspeed_trainer import EntrypointJob

STATE_DICT = "generator.pt"
SUMMARY = "summary.json"
TIME_COLUMN = "t"  # the condition's column in the staged rows; the others are the encoding's matrix


class GeneratorJob(BaseModel):
    """The entrypoint's own part of the job: the encoding's block layout and the network's shape."""

    layout: list[tuple[str, int]]
    network: GeneratorConfig


def rows_frame(matrix: np.ndarray, t: np.ndarray) -> pd.DataFrame:
    """The encoded rows as the frame the trainer stages (float32 columns x0.., and the condition)."""
    frame = pd.DataFrame(matrix.astype("float32"), columns=[f"x{i}" for i in range(matrix.shape[1])])
    frame[TIME_COLUMN] = t.astype("float32")
    return frame


def _read_rows(url: str) -> tuple[torch.Tensor, torch.Tensor]:
    with fsspec.open(url, "rb") as f:
        frame = pd.read_parquet(f)
    t = torch.as_tensor(frame.pop(TIME_COLUMN).to_numpy(dtype="float32"))
    return torch.as_tensor(frame.to_numpy(dtype="float32")), t


def _join(device: str) -> None:
    import deepspeed

    logging.getLogger("DeepSpeed").setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", category=FutureWarning, module="torch.distributed")
    if device == "cpu":
        from ml_assets.model.deepspeed_ops import skip_shared_memory_allreduce

        skip_shared_memory_allreduce()
    deepspeed.init_distributed(dist_backend="gloo" if device == "cpu" else "nccl")


def train(job: EntrypointJob, rank: int, world: int, pipes: PipesContext | None) -> dict[str, Any]:
    import deepspeed
    import torch.distributed as dist

    spec = GeneratorJob.model_validate(job.payload)
    _join(job.device)
    device = (
        torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0"))) if job.device == "cuda" else torch.device("cpu")
    )
    x_all, t_all = _read_rows(job.frames["rows"])
    order = torch.randperm(len(x_all), generator=torch.Generator().manual_seed(job.seed))
    per_rank = len(x_all) // world  # every rank takes as many steps: collectives never wait on a missing rank
    mine = order[rank * per_rank : (rank + 1) * per_rank]
    x, t = x_all[mine].to(device), t_all[mine].to(device)
    batch = int(job.deepspeed_config["train_micro_batch_size_per_gpu"])
    steps = max(1, per_rank // batch)
    accumulation = int(job.deepspeed_config.get("gradient_accumulation_steps", 1))
    config = fill_schedule(job.deepspeed_config, max(1, steps * job.max_epochs // accumulation), job.warmup_fraction)
    torch.manual_seed(job.seed)
    net = ConditionalVAE(spec.layout, spec.network)
    engine, _, _, _ = deepspeed.initialize(model=net, model_parameters=net.parameters(), config=config)
    if world == 1:
        engine.enable_backward_allreduce = False
    dtype = torch.bfloat16 if job.precision == "bf16" else torch.float16 if job.precision == "fp16" else None
    losses: list[float] = []
    started = time.perf_counter()
    for epoch in range(job.max_epochs):
        perm = torch.randperm(per_rank, generator=torch.Generator().manual_seed(job.seed + epoch), device="cpu")
        total = torch.zeros((), device=device)
        for s in range(steps):
            idx = perm[s * batch : (s + 1) * batch].to(device)
            xb, tb = x[idx], t[idx]
            if dtype is not None:
                xb, tb = xb.to(dtype), tb.to(dtype)
            loss = engine(xb, tb)
            engine.backward(loss)
            engine.step()
            total += loss.detach().float()
        dist.all_reduce(total)
        losses.append(float(total) / (steps * world))
        if pipes is not None:
            pipes.log.info(f"generator epoch {epoch + 1}/{job.max_epochs}: loss {losses[-1]:.4f}")
    summary = {
        "epochs": job.max_epochs,
        "loss": losses,
        "ranks": world,
        "rows": per_rank * world,
        "train_seconds": time.perf_counter() - started,
        "parameters": sum(p.numel() for p in net.parameters()),
    }
    if rank == 0:
        state = {k: v.detach().float().cpu() for k, v in engine.module.state_dict().items()}
        weights = io.BytesIO()
        torch.save(state, weights)
        fs, folder = fsspec.core.url_to_fs(job.output_dir)
        fs.makedirs(folder, exist_ok=True)
        fs.pipe_file(f"{folder}/{STATE_DICT}", weights.getvalue())
        fs.pipe_file(f"{folder}/{SUMMARY}", json.dumps(summary).encode())
    dist.barrier()
    return summary


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        raise SystemExit("usage: python -m ml_assets.shadow.train_generator JOB_URL (the job DeepSpeedTrainer staged)")
    job = EntrypointJob.read(args[0])
    rank, world = int(os.environ.get("RANK", "0")), int(os.environ.get("WORLD_SIZE", "1"))
    if rank == 0:
        with open_dagster_pipes() as pipes:
            train(job, rank, world, pipes)
    else:
        train(job, rank, world, None)


if __name__ == "__main__":
    main()
