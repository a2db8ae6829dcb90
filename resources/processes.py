"""Long-running local processes started and stopped by their own PIDs, whole process trees included.

A server we start may start children of its own (Dagster's code servers and run workers, bentoml's workers), in
their own process groups; stopping only the parent would leave them orphaned and listening. ``stop_tree`` collects
the whole tree first (psutil), asks every member to terminate, and kills what outlives the timeout.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

import psutil


def start(cmd: Sequence[str], log: Path, env: Mapping[str, str] | None = None, cwd: Path | None = None) -> int:
    """Start ``cmd`` in its own session (so a Ctrl-C at our terminal is ours to forward), output to ``log``."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("ab") as out:
        proc = subprocess.Popen(
            list(cmd),
            stdout=out,
            stderr=subprocess.STDOUT,
            env=dict(env) if env is not None else None,
            cwd=str(cwd) if cwd else None,
            start_new_session=True,
        )
    return proc.pid


def alive(pid: int | None) -> bool:
    if not pid:
        return False
    try:
        proc = psutil.Process(pid)
        return proc.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def tree(pid: int) -> list[psutil.Process]:
    """The process and all its descendants (empty when it is gone)."""
    try:
        root = psutil.Process(pid)
        return [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return []


def stop_tree(pid: int | None, timeout_s: float = 20.0, sig: int = signal.SIGTERM) -> list[int]:
    """Terminate ``pid`` and every descendant; SIGKILL what outlives ``timeout_s``. Returns the PIDs stopped."""
    if not pid:
        return []
    members = tree(pid)
    for proc in members:
        with contextlib.suppress(psutil.NoSuchProcess, psutil.AccessDenied):
            proc.send_signal(sig)
    _, left = psutil.wait_procs(members, timeout=timeout_s)
    for proc in left:
        with contextlib.suppress(psutil.NoSuchProcess, psutil.AccessDenied):
            proc.kill()
    psutil.wait_procs(left, timeout=5)
    _reap(pid)
    return [p.pid for p in members]


def _reap(pid: int) -> None:
    """Collect the exit status of a child of ours, so it does not linger as a zombie."""
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitpid(pid, os.WNOHANG)


def wait_until(predicate, timeout_s: float, every_s: float = 0.25) -> bool:
    """Poll ``predicate`` until it is true or ``timeout_s`` passes; returns its last value."""
    deadline = time.monotonic() + timeout_s
    while True:
        if predicate():
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(every_s)
