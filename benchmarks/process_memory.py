"""Peak memory of a command's whole process tree: the RSS of the process and every descendant, summed, sampled.

``ru_maxrss`` is one process's peak: a step that launches torchrun ranks, or a CLI that runs its work in a child,
hides its real footprint there. So the tree is walked from the kernel's parent links (psutil) every ``interval_s``
and the sum of its RSS at each sample is what peaks. Shared pages (the torch libraries every rank maps) count
once per process, as the issue's numbers do: an upper bound, and what a container's memory limit sees per pod.
"""

from __future__ import annotations

import contextlib
import subprocess
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import psutil

from resources.process_tree import stop_tree

MB = 1024 * 1024
DEFAULT_INTERVAL_S = 0.1


def tree_rss(root: psutil.Process) -> int:
    """Bytes resident in ``root`` and all its live descendants now (0 once it is gone)."""
    try:
        procs = [root, *root.children(recursive=True)]
    except psutil.Error:
        return 0
    total = 0
    for proc in procs:
        with contextlib.suppress(psutil.Error):
            total += proc.memory_info().rss
    return total


class PeakSampler:
    """Samples the summed RSS of a process tree on a background thread until stopped; ``peak_mb`` is its maximum."""

    def __init__(self, pid: int, interval_s: float = DEFAULT_INTERVAL_S) -> None:
        self._root = psutil.Process(pid)
        self._interval_s = interval_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"rss-sampler-{pid}", daemon=True)
        self.peak_bytes = 0
        self.samples = 0

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak_bytes = max(self.peak_bytes, tree_rss(self._root))
            self.samples += 1
            self._stop.wait(self._interval_s)

    def __enter__(self) -> PeakSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    @property
    def peak_mb(self) -> float:
        return self.peak_bytes / MB


@dataclass(frozen=True)
class Measured:
    """One command's outcome: exit status, wall time, peak summed RSS of its tree, and its output."""

    returncode: int
    wall_s: float
    peak_mb: float
    samples: int
    stdout: str
    stderr: str


def run_measured(
    cmd: Sequence[str],
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    interval_s: float = DEFAULT_INTERVAL_S,
    timeout_s: float | None = None,
) -> Measured:
    """Run ``cmd`` to completion while sampling its tree's memory; output is captured to temp files (a pipe the
    parent does not drain would stall a chatty child)."""
    import tempfile

    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        started = time.perf_counter()
        proc = subprocess.Popen(list(cmd), stdout=out, stderr=err, env=dict(env) if env is not None else None, cwd=cwd)
        with PeakSampler(proc.pid, interval_s) as sampler:
            try:
                returncode = proc.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                stop_tree(proc.pid, timeout_s=5.0)
                returncode = proc.wait()
            except BaseException:  # interrupted (Ctrl-C, a test's timeout): the command must not outlive us
                stop_tree(proc.pid, timeout_s=5.0)
                raise
        wall_s = time.perf_counter() - started
        out.seek(0)
        err.seek(0)
        return Measured(
            returncode=returncode,
            wall_s=wall_s,
            peak_mb=sampler.peak_mb,
            samples=sampler.samples,
            stdout=out.read().decode(errors="replace"),
            stderr=err.read().decode(errors="replace"),
        )
