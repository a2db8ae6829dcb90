"""Process trees: every process a deployment started, whatever its session or process group, and how to stop them.

``bentoml serve`` runs a circus arbiter whose workers call ``setsid``: signalling the arbiter's process group
misses them, and a killed arbiter leaves them serving as orphans. So a tree is taken from the kernel's parent
links (psutil) while its root lives, recorded with each process's start time (a recycled pid is never taken for
it), and stopped process by process. A supervisor that marks itself child subreaper (Linux ``prctl``) inherits
the orphans of its descendants, so they stay in its tree even after their parent died.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import psutil

PR_SET_CHILD_SUBREAPER = 36  # linux/prctl.h


@dataclass(frozen=True)
class ProcessRecord:
    """One process, identified across pid reuse by its start time."""

    pid: int
    create_time: float

    def process(self) -> psutil.Process | None:
        """The live process (not a zombie) this record names, or None."""
        try:
            proc = psutil.Process(self.pid)
            if abs(proc.create_time() - self.create_time) > 0.01 or proc.status() == psutil.STATUS_ZOMBIE:
                return None
            return proc
        except psutil.Error:
            return None

    def alive(self) -> bool:
        return self.process() is not None

    def to_json(self) -> list[float]:
        return [self.pid, self.create_time]

    @classmethod
    def from_json(cls, value: list[float]) -> ProcessRecord:
        return cls(int(value[0]), float(value[1]))


def start(cmd: Sequence[str], log: Path, env: Mapping[str, str] | None = None, cwd: Path | None = None) -> int:
    """Start ``cmd`` in its own session (a Ctrl-C at our terminal is ours to forward), output to ``log``."""
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
    """Whether ``pid`` is a live process (not a zombie)."""
    if not pid:
        return False
    rec = record(pid)
    return rec is not None and rec.alive()


def wait_until(predicate: Callable[[], object], timeout_s: float, every_s: float = 0.25) -> bool:
    """Poll ``predicate`` until it is true or ``timeout_s`` passes; returns whether it became true."""
    deadline = time.monotonic() + timeout_s
    while True:
        if predicate():
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(every_s)


def record(pid: int) -> ProcessRecord | None:
    try:
        return ProcessRecord(pid, psutil.Process(pid).create_time())
    except psutil.Error:
        return None


def tree(pid: int) -> list[ProcessRecord]:
    """``pid`` and all its live descendants (root first)."""
    try:
        root = psutil.Process(pid)
        procs = [root, *root.children(recursive=True)]
    except psutil.Error:
        return []
    out = []
    for proc in procs:
        with contextlib.suppress(psutil.Error):
            if proc.status() != psutil.STATUS_ZOMBIE:
                out.append(ProcessRecord(proc.pid, proc.create_time()))
    return out


def stop(records: Iterable[ProcessRecord], timeout_s: float = 20.0) -> list[ProcessRecord]:
    """SIGTERM every live process of ``records`` and of their current descendants, SIGKILL what outlives
    ``timeout_s``, reap our own children; returns the processes still alive afterwards (should be none)."""
    procs: dict[int, psutil.Process] = {}
    for rec in records:
        proc = rec.process()
        if proc is None:
            continue
        procs[proc.pid] = proc
        with contextlib.suppress(psutil.Error):
            for child in proc.children(recursive=True):
                procs[child.pid] = child
    for sig, wait in ((signal.SIGTERM, timeout_s), (signal.SIGKILL, 10.0)):
        live = [p for p in procs.values() if _running(p)]
        if not live:
            break
        for proc in live:
            with contextlib.suppress(psutil.Error):
                proc.send_signal(sig)
        psutil.wait_procs(live, timeout=wait)  # also reaps those that are our children
    return [ProcessRecord(p.pid, p.create_time()) for p in procs.values() if _running(p)]


def stop_tree(pid: int, timeout_s: float = 20.0) -> list[ProcessRecord]:
    """Stop ``pid`` and every descendant it has now (tests and benchmarks stop their own servers with it)."""
    return stop(tree(pid), timeout_s)


def _running(proc: psutil.Process) -> bool:
    try:
        return proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def become_subreaper() -> bool:
    """Make this process the reaper of its descendants' orphans (Linux); False where the kernel has no such call."""
    libc_name = ctypes.util.find_library("c")
    if libc_name is None:
        return False
    libc = ctypes.CDLL(libc_name, use_errno=True)
    return libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0


def reap_children() -> list[int]:
    """Collect exit statuses of finished children (orphans adopted by a subreaper included); their pids."""
    done = []
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return done
        if pid == 0:
            return done
        done.append(pid)


def listening_pids(port: int) -> list[int | None]:
    """Processes listening on TCP ``port`` (None where the socket belongs to another user's process)."""
    return [
        c.pid
        for c in psutil.net_connections(kind="tcp")
        if c.status == psutil.CONN_LISTEN and c.laddr and c.laddr.port == port
    ]


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])
