"""Append-only log of every served prediction: JSON lines, one folder per UTC day, one file per process.

Layout: ``<root>/<YYYY-MM-DD>/<writer id>.jsonl`` with ``root = <ML_ASSETS_HOME>/prediction_log``. The writer
id is the process id (plus a suffix if a file of that name is locked by another live process), and every file
is held with an exclusive ``flock`` while open, so two processes never write one file. Entries are buffered
in memory and written by a background thread at least every ``flush_interval_s`` (default 0.5 s): a killed
server loses at most the last second of predictions, and a request never waits on the disk.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import threading
from datetime import UTC, date, datetime
from pathlib import Path
from typing import IO, Any

from pydantic_core import to_json

FIELDS = ("request_id", "time", "model_tag", "inputs", "probability", "label")


class PredictionLog:
    """Thread-safe buffered writer of prediction entries (dicts with FIELDS)."""

    def __init__(self, root: str | Path, flush_interval_s: float = 0.5) -> None:
        self.root = Path(root)
        self.flush_interval_s = flush_interval_s
        self._buffer: list[dict[str, Any]] = []  # serialized by the flush thread, off the request path
        self._lock = threading.Lock()
        self._io_lock = threading.Lock()
        self._files: dict[str, IO[str]] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="prediction-log-flush", daemon=True)
        self._thread.start()

    def append(self, entries: list[dict[str, Any]]) -> None:
        """Queue entries (not copied: do not mutate them); each needs FIELDS, ``time`` a UTC datetime or ISO string."""
        with self._lock:
            self._buffer.extend(entries)

    def flush(self) -> int:
        """Write buffered entries to their day files now; returns how many were written."""
        with self._lock:
            pending, self._buffer = self._buffer, []
        if not pending:
            return 0
        with self._io_lock:
            by_day: dict[str, list[str]] = {}
            for e in pending:
                t = e["time"]
                stamp = t.isoformat() if isinstance(t, datetime) else str(t)
                # pydantic-core's encoder: the same compact JSON as json.dumps, ~4x cheaper (runs beside requests)
                line = to_json({**e, "time": stamp}, fallback=str).decode()
                by_day.setdefault(stamp[:10], []).append(line)
            for day, lines in by_day.items():
                f = self._file(day)
                f.write("\n".join(lines) + "\n")
                f.flush()
            for day in [d for d in self._files if d not in by_day]:  # a day is over: release its file
                self._files.pop(day).close()
        return len(pending)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self.flush()
        with self._io_lock:
            for f in self._files.values():
                f.close()
            self._files.clear()

    def _run(self) -> None:
        while not self._stop.wait(self.flush_interval_s):
            with contextlib.suppress(Exception):  # a full disk must not kill serving; retried next tick
                self.flush()

    def _file(self, day: str) -> IO[str]:
        if day not in self._files:
            folder = self.root / day
            folder.mkdir(parents=True, exist_ok=True)
            self._files[day] = _open_exclusive(folder, str(os.getpid()))
        return self._files[day]


def _open_exclusive(folder: Path, writer_id: str) -> IO[str]:
    """Open ``<writer_id>.jsonl`` for appending under an exclusive lock; pick another name if it is taken."""
    for attempt in range(100):
        name = writer_id if attempt == 0 else f"{writer_id}-{attempt}"
        f = (folder / f"{name}.jsonl").open("a", encoding="utf-8")
        try:
            fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            return f
        except BlockingIOError:
            f.close()
    raise RuntimeError(f"prediction log: no free file for writer {writer_id} in {folder}")


def read_day(root: str | Path, day: date | str) -> list[dict[str, Any]]:
    """All entries of one day, across writers; a torn last line (a killed writer) is skipped."""
    folder = Path(root) / (day.isoformat() if isinstance(day, date) else day)
    out: list[dict[str, Any]] = []
    for path in sorted(folder.glob("*.jsonl")):
        for line in path.read_text(encoding="utf-8").splitlines():
            if line.strip():
                with contextlib.suppress(json.JSONDecodeError):
                    out.append(json.loads(line))
    return out


def utc_now() -> datetime:
    return datetime.now(UTC)
