"""Where a training process group runs: the seam between DeepSpeedTrainer and the infrastructure.

A launcher turns a ``LaunchSpec`` (the entrypoint module and its arguments, ranks, device) into processes under
one Dagster Pipes session, and says what its target can hold. ``LocalTorchrunLauncher`` runs
``torch.distributed.run`` as a subprocess on this machine; ``resources.k8s_training.KubernetesTrainingLauncher``
runs the same entrypoint in GPU pods (one node, or several as an Indexed Job). Launchers move no data: the
entrypoint reads its job and writes its results through ``TrainingStorage``, which both sides reach.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path

from dagster import (
    AssetExecutionContext,
    ConfigurableResource,
    Failure,
    MetadataValue,
    OpExecutionContext,
    PipesClientCompletedInvocation,
    PipesTempFileContextInjector,
    PipesTempFileMessageReader,
    open_pipes_session,
)
from pydantic import Field

from ml_assets.settings import paths

STDERR_TAIL_CHARS = 6_000


@dataclass(frozen=True)
class LaunchSpec:
    """One training launch: ``python -m <module> <args>`` on ``ranks`` processes of ``device``."""

    module: str
    args: tuple[str, ...]
    ranks: int
    device: str  # "cpu" | "cuda"
    run_name: str  # unique per launch and safe in file and DNS names: names log folders and pods


class TrainingLauncher(ConfigurableResource, ABC):
    """Interface: what the target can hold, and running a launch to completion under Pipes."""

    @abstractmethod
    def capacity(self, device: str) -> int:
        """How many ranks of ``device`` ("cpu" or "cuda") one launch may use; 0 when the device is absent."""

    @abstractmethod
    def supports_bf16(self, device: str) -> bool:
        """Whether ``device`` on the target trains in bf16 natively (for precision "auto")."""

    def layout_problems(self, ranks: int, device: str) -> list[str]:
        """Why ``ranks`` of ``device`` cannot be laid out on the target beyond capacity (none by default)."""
        return []

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
    """torchrun on this machine in one Pipes session; rendezvous on a port the OS picks."""

    python_executable: str = ""  # default: the interpreter running Dagster
    # Tabular batches are small matrices: a second intra-op thread per rank buys little and, when the cores
    # are shared, OpenMP threads spinning against each other cost up to 20x (measured: benchmarks/training.py).
    threads_per_rank: int = 1
    termination_timeout_seconds: float = 20.0
    log_root: str = Field(
        "", description="per-rank logs go to <log_root>/<run>; default <ML_ASSETS_HOME>/logs/training"
    )

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

    def log_dir(self, spec: LaunchSpec) -> Path:
        return Path(self.log_root or paths().home / "logs" / "training") / spec.run_name

    def command(self, spec: LaunchSpec) -> list[str]:
        """The torchrun command line of ``spec`` (pure)."""
        return [
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
            str(self.log_dir(spec)),
            "--tee",
            "3",
            "-m",
            spec.module,
            *spec.args,
        ]

    def launch(
        self, context: AssetExecutionContext | OpExecutionContext, spec: LaunchSpec
    ) -> PipesClientCompletedInvocation:
        argv = self.command(spec)
        self.log_dir(spec).mkdir(parents=True, exist_ok=True)
        env = {**os.environ, **device_env(spec.device, self.threads_per_rank)}
        context.log.info(f"launching {spec.ranks} {spec.device} rank(s): {' '.join(argv)}")
        with open_pipes_session(
            context=context,
            context_injector=PipesTempFileContextInjector(),
            message_reader=PipesTempFileMessageReader(),
        ) as session:
            process = subprocess.Popen(argv, env={**env, **session.get_bootstrap_env_vars()})
            try:
                code = process.wait()
            except BaseException:  # run canceled or interrupted: let torchrun stop its ranks, then make sure
                self._terminate(process)
                raise
        if code != 0:
            raise rank_failure(context, spec, self.log_dir(spec), f"torchrun exited with code {code}")
        return PipesClientCompletedInvocation(session)

    def _terminate(self, process: subprocess.Popen) -> None:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=self.termination_timeout_seconds)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def rank_logs(log_dir: Path) -> dict[str, str]:
    """stderr of every rank of the newest attempt under a torchrun ``--log-dir``, keyed by rank."""
    files = sorted(log_dir.glob("*/attempt_*/*/stderr.log"), key=lambda p: p.stat().st_mtime)
    latest: dict[str, Path] = {}
    for path in files:  # newer attempts overwrite older ones
        latest[path.parent.name] = path
    return {rank: latest[rank].read_text(errors="replace") for rank in sorted(latest, key=int)}


def rank_failure(
    context: AssetExecutionContext | OpExecutionContext, spec: LaunchSpec, log_dir: Path, why: str
) -> Failure:
    """Log every rank's stderr to the Dagster event log and build the Failure naming the failing rank."""
    logs = rank_logs(log_dir)
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
        metadata={"log_dir": MetadataValue.path(str(log_dir)), "ranks": spec.ranks},
    )
