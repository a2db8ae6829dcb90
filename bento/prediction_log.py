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
import math
import os
import threading
from datetime import UTC, date, datetime
from pathlib import Path
from typing import IO, Any, NamedTuple

from pydantic_core import to_json

FIELDS = ("request_id", "time", "model_tag", "inputs", "probability", "label")


class PredictionLog:
    """Thread-safe buffered writer of prediction entries (dicts with FIELDS)."""

    def __init__(self, root: str | Path, flush_interval_s: float = 0.5) -> None:
        self.root = Path(root)
        self.flush_interval_s = flush_interval_s
        # entries (dicts) or whole scored batches (_Batch), serialized by the flush thread, off the request path
        self._buffer: list[dict[str, Any] | _Batch] = []
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

    def append_batch(
        self,
        time: datetime,
        model_tag: str,
        request_ids: list[str],
        inputs: list[dict[str, Any]],
        probabilities: list[float],
        labels: list[int],
    ) -> None:
        """Queue one scored batch as columns (not copied: do not mutate them): no per-entry dict on the request
        path, and the flush thread formats the shared fields (time, model tag) once per batch."""
        batch = _Batch(time, model_tag, request_ids, inputs, probabilities, labels)
        with self._lock:
            self._buffer.append(batch)

    def flush(self) -> int:
        """Write buffered entries to their day files now; returns how many were written."""
        with self._lock:
            pending, self._buffer = self._buffer, []
        if not pending:
            return 0
        written = 0
        with self._io_lock:
            by_day: dict[str, list[str]] = {}
            for e in pending:
                if isinstance(e, _Batch):
                    day, lines = e.lines()
                else:
                    t = e["time"]
                    stamp = t.isoformat() if isinstance(t, datetime) else str(t)
                    # pydantic-core's encoder: the same compact JSON as json.dumps, ~4x cheaper
                    day, lines = stamp[:10], [to_json({**e, "time": stamp}, fallback=str).decode()]
                by_day.setdefault(day, []).extend(lines)
                written += len(lines)
            for day, lines in by_day.items():
                f = self._file(day)
                f.write("\n".join(lines) + "\n")
                f.flush()
            for day in [d for d in self._files if d not in by_day]:  # a day is over: release its file
                self._files.pop(day).close()
        return written

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


class _Batch(NamedTuple):
    """One scored batch, columnar: entry i is (request_ids[i], time, model_tag, inputs[i], probabilities[i],
    labels[i])."""

    time: datetime
    model_tag: str
    request_ids: list[str]
    inputs: list[dict[str, Any]]
    probabilities: list[float]
    labels: list[int]

    def lines(self) -> tuple[str, list[str]]:
        """(UTC day, JSON lines): the same compact JSON, keys in FIELDS order, as encoding each entry whole."""
        stamp = self.time.isoformat()
        head = ',"time":' + _json(stamp) + ',"model_tag":' + _json(self.model_tag) + ',"inputs":'
        return stamp[:10], [
            '{"request_id":' + (f'"{rid}"' if rid.isalnum() and rid.isascii() else _json(rid))
            + head + to_json(rec, fallback=str).decode()
            + ',"probability":' + (repr(p) if math.isfinite(p) else _json(p)) + ',"label":' + str(int(label)) + "}"
            for rid, rec, p, label in zip(self.request_ids, self.inputs, self.probabilities, self.labels, strict=True)
        ]  # fmt: skip


def _json(value: Any) -> str:
    return to_json(value, fallback=str).decode()


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
