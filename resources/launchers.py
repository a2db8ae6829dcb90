"""Where a training process group runs: the seam between DeepSpeedTrainer and the infrastructure.

A launcher turns a ``LaunchSpec`` (the entrypoint module, ranks, Pipes extras, environment) into processes and
reports what the machine can hold. ``LocalTorchrunLauncher`` runs ``torch.distributed.run`` as a subprocess
through Dagster Pipes on this machine. A Kubernetes launcher implements the same two abstract methods
(``build_command`` for the pod's command and env, ``launch`` with ``PipesK8sClient``) and runs the same
entrypoint in a pod; nothing else changes.
"""

from __future__ import annotations

import os
import sys
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dagster import (
    AssetExecutionContext,
    ConfigurableResource,
    Failure,
    MetadataValue,
    OpExecutionContext,
    PipesClientCompletedInvocation,
    PipesSubprocessClient,
)
from dagster._core.errors import DagsterPipesExecutionError  # not re-exported by dagster 1.13

STDERR_TAIL_CHARS = 6_000


@dataclass(frozen=True)
class LaunchSpec:
    """One training launch: run ``python -m <module>`` on ``ranks`` processes of ``device``."""

    module: str
    ranks: int
    device: str  # "cpu" | "cuda"
    extras: dict[str, Any]
    log_dir: Path  # per-rank stdout/stderr files land under here
    env: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class LaunchCommand:
    argv: list[str]
    env: dict[str, str]


class TrainingLauncher(ConfigurableResource, ABC):
    """Interface: what the target can hold, the command for a launch, and running it under Pipes."""

    @abstractmethod
    def capacity(self, device: str) -> int:
        """How many ranks of ``device`` ("cpu" or "cuda") one launch may use; 0 when the device is absent."""

    @abstractmethod
    def supports_bf16(self, device: str) -> bool:
        """Whether ``device`` on the target trains in bf16 natively (for precision "auto")."""

    @abstractmethod
    def build_command(self, spec: LaunchSpec) -> LaunchCommand:
        """The argv and environment that start the process group of ``spec`` (pure; no side effects)."""

    @abstractmethod
    def launch(
        self, context: AssetExecutionContext | OpExecutionContext, spec: LaunchSpec
    ) -> PipesClientCompletedInvocation:
        """Run ``spec`` to completion under a Pipes session; raise ``dagster.Failure`` when it fails."""


def device_env(device: str, threads_per_rank: int) -> dict[str, str]:
    """Environment every rank needs, whatever runs it: accelerator choice, threads, op-builder fixes."""
    env = {"DS_ACCELERATOR": device, "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": str(threads_per_rank)}
    if os.environ.get("TORCH_CUDA_ARCH_LIST", "").strip() == "9.0a":
        # DeepSpeed's op builder cannot parse the "a" suffix of Hopper's arch-specific target.
        env["TORCH_CUDA_ARCH_LIST"] = "9.0"
    return env


def available_cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


class LocalTorchrunLauncher(TrainingLauncher):
    """torchrun on this machine through ``PipesSubprocessClient``; rendezvous on a port the OS picks."""

    python_executable: str = ""  # default: the interpreter running Dagster
    # Tabular batches are small matrices: a second intra-op thread per rank buys little and, when the cores
    # are shared, OpenMP threads spinning against each other cost up to 20x (measured: benchmarks/training.py).
    threads_per_rank: int = 1
    termination_timeout_seconds: float = 20.0

    def capacity(self, device: str) -> int:
        if device == "cpu":
            return available_cpus()
        if device == "cuda":
            import torch

            return torch.cuda.device_count() if torch.cuda.is_available() else 0
        return 0

    def supports_bf16(self, device: str) -> bool:
        if device != "cuda":
            return False
        import torch

        return bool(torch.cuda.is_available() and torch.cuda.is_bf16_supported())

    def build_command(self, spec: LaunchSpec) -> LaunchCommand:
        argv = [
            self.python_executable or sys.executable,
            "-m",
            "torch.distributed.run",
            "--nnodes",
            "1",
            "--nproc_per_node",
            str(spec.ranks),
            # c10d rendezvous on port 0: the OS assigns a free port per run, so parallel runs never collide.
            "--rdzv-backend",
            "c10d",
            "--rdzv-endpoint",
            "127.0.0.1:0",
            "--log-dir",
            str(spec.log_dir),
            "--tee",
            "3",
            "-m",
            spec.module,
        ]
        env = {**device_env(spec.device, self.threads_per_rank), **spec.env}
        return LaunchCommand(argv=argv, env=env)

    def launch(
        self, context: AssetExecutionContext | OpExecutionContext, spec: LaunchSpec
    ) -> PipesClientCompletedInvocation:
        cmd = self.build_command(spec)
        spec.log_dir.mkdir(parents=True, exist_ok=True)
        client = PipesSubprocessClient(env=cmd.env, termination_timeout_seconds=self.termination_timeout_seconds)
        context.log.info(f"launching {spec.ranks} {spec.device} rank(s): {' '.join(cmd.argv)}")
        try:
            return client.run(context=context, command=cmd.argv, extras=spec.extras)
        except DagsterPipesExecutionError as e:
            raise rank_failure(context, spec, str(e)) from e


def rank_logs(log_dir: Path) -> dict[str, str]:
    """stderr of every rank of the newest attempt under a torchrun ``--log-dir``, keyed by rank."""
    files = sorted(log_dir.glob("*/attempt_*/*/stderr.log"), key=lambda p: p.stat().st_mtime)
    latest: dict[str, Path] = {}
    for path in files:  # newer attempts overwrite older ones
        latest[path.parent.name] = path
    return {rank: latest[rank].read_text(errors="replace") for rank in sorted(latest, key=int)}


def rank_failure(context: AssetExecutionContext | OpExecutionContext, spec: LaunchSpec, why: str) -> Failure:
    """Log every rank's stderr to the Dagster event log and build the Failure naming the failing rank."""
    logs = rank_logs(spec.log_dir)
    culprit = ""
    for rank, text in logs.items():
        tail = text[-STDERR_TAIL_CHARS:]
        context.log.error(f"training rank {rank} stderr (last {len(tail)} chars):\n{tail}")
        if not culprit and "Traceback" in text:
            culprit = rank
    first_error = ""
    if culprit:
        text = logs[culprit]
        first_error = text[text.rfind("Traceback") :][-STDERR_TAIL_CHARS:]
    return Failure(
        description=(
            f"training process group ({spec.ranks} {spec.device} rank(s), module {spec.module}) failed: {why}."
            + (f" First traceback, rank {culprit}:\n{first_error}" if culprit else " No rank wrote a traceback.")
        ),
        metadata={"log_dir": MetadataValue.path(str(spec.log_dir)), "ranks": spec.ranks},
    )
