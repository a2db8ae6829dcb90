"""Append-only log of every answered prediction: JSON lines, one folder per UTC day, one file per writer.

Layout: ``<root>/<YYYY-MM-DD>/<writer>.jsonl`` with ``root = <ML_ASSETS_HOME>/prediction_log``. One line per
prediction, a ``ml_assets.prediction_line.PredictionLine`` with its keys in ``FIELDS`` order: ``{"request_id": str,
"time": ISO-8601 UTC, "model_tag": str, "inputs": {the validated request fields}, "probability": float, "label":
0 or 1}``. Files are created owner-only (0600),
folders 0700: the lines hold the requests' sensitive attributes.

Replayed traffic (time-true monitoring): a request whose X-Request-ID is ``replay-<YYYY-MM-DD>`` (``REPLAY_PREFIX``;
``ml-assets traffic --day D`` sends it for a past day D) is filed under that day's folder, so a replay of past
days lands in those days' partitions; its ``time`` stays the real serving time and its ``request_id`` names the
replayed day. A named day after the serving day is ignored (a prediction is never filed in the future).

JSON requests (``write_batch``): the writer is the process id (plus a suffix if a file of that name is locked
by another live process: every file is held with an exclusive ``flock`` while open). A batch's lines are handed
to the kernel (``write`` returned) before the caller answers, so a killed server never loses an answered
prediction; ``fsync`` runs on a background thread every ``fsync_interval_s``.

Bulk files (``write_table``): formatting a million JSON lines costs seconds, more than scoring them, so before
the answer the scored table goes to a spool file, ``<writer>.spool.arrow`` (Arrow IPC: the validated columns,
probability, label; time, model tag and request-id base in its metadata), which is cheap to write. A background
thread turns each spool into ``<writer>.jsonl`` (built column-wise with Arrow, written as ``<writer>.partial``,
fsynced and renamed, then the spool is deleted), so the lines land seconds after the answer. A spool left by a
killed process (its lock is free) is converted by the next ``PredictionLog`` on the same root, or by
``recover_spools``: an answered bulk prediction is never lost, and is logged exactly once.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import queue
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.compute as pc

from ml_assets.prediction_line import FIELDS, PredictionLine

# The lines are formatted here for speed (one orjson call per batch, Arrow for bulk spools) with the keys of
# PredictionLine in its order; tests/test_prediction_log.py validates both paths' lines against the record.
if FIELDS != ("request_id", "time", "model_tag", "inputs", "probability", "label"):
    raise RuntimeError(f"the prediction log writer formats lines as request_id..label, PredictionLine has {FIELDS}")
FILE_MODE, DIR_MODE = 0o600, 0o700
SPOOL_SUFFIX, PARTIAL_SUFFIX = ".spool.arrow", ".partial"
SLICE_ROWS = 262_144  # spooled lines are built and written in slices of this many rows (bounded memory)
_DICTIONARY_MAX = 65_536  # columns with at most this many distinct values are JSON-encoded per value once
_META_TIME, _META_TAG, _META_BASE = b"time", b"model_tag", b"request_id_base"

_TEXT = pa.large_string()
REPLAY_PREFIX = "replay-"  # X-Request-ID of traffic replayed for a past day: "replay-YYYY-MM-DD"
_DAY_CHARS = 10


def replay_request_id(day: date) -> str:
    """The X-Request-ID that files a replayed day's predictions under ``day``."""
    return f"{REPLAY_PREFIX}{day.isoformat()}"


def filing_day(request_id: str, served_day: str) -> str:
    """The day folder of a prediction: the replayed day its request id names (``replay-YYYY-MM-DD...``) when that
    day is a real date no later than the day it was served, else the day it was served."""
    if not request_id.startswith(REPLAY_PREFIX):
        return served_day
    day = request_id[len(REPLAY_PREFIX) : len(REPLAY_PREFIX) + _DAY_CHARS]
    try:
        named = date.fromisoformat(day)
    except ValueError:
        return served_day
    return day if len(day) == _DAY_CHARS and named.isoformat() == day and day <= served_day else served_day


class PredictionLog:
    """Thread-safe writer of prediction lines; fsyncs and spool conversions run on background threads."""

    def __init__(self, root: str | Path, fsync_interval_s: float = 1.0) -> None:
        self.root = Path(root)
        self.fsync_interval_s = fsync_interval_s
        self._files: dict[str, _DayFile] = {}  # this process's JSON-lines file of each day it writes (replays too)
        self._today = ""  # the serving day of the latest write: older days' files are closed when it changes
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._spools: queue.Queue[_Spool | None] = queue.Queue()
        for spool in _orphan_spools(self.root):  # left by a killed process: converted first
            self._spools.put(spool)
        self._threads = [
            threading.Thread(target=self._sync_loop, name="prediction-log-fsync", daemon=True),
            threading.Thread(target=self._convert_loop, name="prediction-log-spool", daemon=True),
        ]
        for t in self._threads:
            t.start()

    def write_batch(
        self,
        time: datetime,
        model_tag: str,
        request_ids: Sequence[str],
        inputs: Sequence[dict[str, Any]],
        probabilities: Sequence[float],
        labels: Sequence[int],
    ) -> int:
        """Write one scored batch of JSON requests now; returns the number of lines."""
        if not request_ids:
            return 0
        stamp = time.isoformat()
        entries = [
            {"request_id": r, "time": stamp, "model_tag": model_tag, "inputs": i, "probability": p, "label": y}
            for r, i, p, y in zip(request_ids, inputs, probabilities, labels, strict=True)
        ]
        served_day = stamp[:10]
        by_day: dict[str, list[dict[str, Any]]] = {served_day: entries}
        if any(r.startswith(REPLAY_PREFIX) for r in request_ids):  # rare: only replays name another day
            by_day = {}
            for e in entries:
                by_day.setdefault(filing_day(e["request_id"], served_day), []).append(e)
        for day, lines in by_day.items():
            # One orjson call per day (~0.7 us per entry; one call per entry measured ~3 us at 8192 entries),
            # then split into lines at the entry boundaries: '},{"request_id":' cannot occur inside an entry (its
            # inputs hold scalars only, and a quote inside a string is always escaped).
            data = orjson.dumps(lines, default=str)[1:-1].replace(b'},{"request_id":', b'}\n{"request_id":')
            self._append(day, served_day, data + b"\n")
        return len(entries)

    def _append(self, day: str, served_day: str, data: bytes) -> None:
        """Append ``data`` to this process's file of ``day``; a new serving day closes the older days' files."""
        while True:
            with self._lock:
                if served_day > self._today:
                    self._today = served_day
                    for old in [d for d in self._files if d < served_day]:
                        self._files.pop(old).close()  # a day is over: its file is complete
                f = self._files.get(day)
                if f is None:
                    folder = _private_dir(self.root / day, self.root)
                    f = self._files[day] = _DayFile(day, _open_exclusive(folder, str(os.getpid())))
            if f.write(data):
                return
            # else another thread closed it for a new day in between: take the current file

    def write_table(
        self,
        time: datetime,
        model_tag: str,
        request_id_base: str,
        inputs: pa.Table,
        probabilities: np.ndarray,
        labels: np.ndarray,
    ) -> Path:
        """Spool one scored bulk table now; its JSON lines follow in the background. Row ``i``'s request id is
        ``<request_id_base>-<i>`` (the base must need no JSON escaping: the service's are [A-Za-z0-9._~-]).
        Returns the spool's path."""
        stamp = time.isoformat()
        folder = _private_dir(self.root / filing_day(request_id_base, stamp[:10]), self.root)
        name = f"{os.getpid()}-file-{os.urandom(6).hex()}"
        path = folder / (name + SPOOL_SUFFIX)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, FILE_MODE)
        fcntl.flock(fd, fcntl.LOCK_EX)  # held until converted: recovery leaves a live writer's spool alone
        table = inputs.append_column("probability", pa.array(probabilities, type=pa.float64()))
        table = table.append_column("label", pa.array(labels, type=pa.int8()))
        table = table.replace_schema_metadata(
            {_META_TIME: stamp.encode(), _META_TAG: model_tag.encode(), _META_BASE: request_id_base.encode()}
        )
        with os.fdopen(os.dup(fd), "wb") as out, pa.ipc.new_file(out, table.schema) as writer:
            writer.write_table(table)
        self._spools.put(_Spool(path, fd))
        return path

    def wait_spooled(self) -> None:
        """Block until every spool queued so far is converted to JSON lines (tests, shutdown)."""
        self._spools.join()

    def close(self) -> None:
        self._spools.put(None)
        self._stop.set()
        for t in self._threads:
            t.join(timeout=60)
        with self._lock:
            for f in self._files.values():
                f.close()
            self._files.clear()

    # ---- background ----------------------------------------------------------------------------------------
    def _sync_loop(self) -> None:
        while not self._stop.wait(self.fsync_interval_s):
            with self._lock:
                files = list(self._files.values())
            for f in files:
                with contextlib.suppress(OSError):  # a full or failing disk must not stop serving
                    f.sync()

    def _convert_loop(self) -> None:
        while True:
            spool = self._spools.get()
            try:
                if spool is None:
                    return
                with contextlib.suppress(OSError, pa.ArrowException):  # kept on disk: recovered later
                    spool.convert()
            finally:
                self._spools.task_done()


class _DayFile:
    """One open log file: writes are serialized; fsync works on a duplicate descriptor, outside the write lock."""

    def __init__(self, day: str, fd: int) -> None:
        self.day = day
        self.fd = fd
        self._lock = threading.Lock()
        self._dirty = False
        self._closed = False

    def write(self, data: bytes) -> bool:
        """Append ``data``; False (nothing written) if the file was closed meanwhile."""
        view = memoryview(data)
        with self._lock:
            if self._closed:
                return False
            while view:  # os.write may write less than asked (large writes, signals)
                view = view[os.write(self.fd, view) :]
            self._dirty = True
        return True

    def sync(self) -> None:
        with self._lock:
            if self._closed or not self._dirty:
                return
            self._dirty = False
            dup = os.dup(self.fd)
        try:
            os.fsync(dup)
        finally:
            os.close(dup)

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
            if self._dirty:
                with contextlib.suppress(OSError):
                    os.fsync(self.fd)
            os.close(self.fd)  # releases the flock


@dataclass
class _Spool:
    """A spool file and its open, locked descriptor."""

    path: Path
    fd: int

    def convert(self) -> Path:
        """Write the spool's JSON lines to ``<writer>.jsonl`` (via ``.partial``, fsynced), then delete it."""
        name = self.path.name.removesuffix(SPOOL_SUFFIX)
        partial = self.path.with_name(name + PARTIAL_SUFFIX)
        target = self.path.with_name(name + ".jsonl")
        try:
            with pa.memory_map(str(self.path)) as source:
                table = pa.ipc.open_file(source).read_all()
            out = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, FILE_MODE)
            try:
                for lines in spool_lines(table):
                    _write_all(out, _string_data(lines))
                os.fsync(out)
            finally:
                os.close(out)
            os.replace(partial, target)
            self.path.unlink()
        finally:
            os.close(self.fd)
        return target


def recover_spools(root: str | Path) -> list[Path]:
    """Convert every spool under ``root`` that no live process holds (left by a killed server); the JSON-lines
    files written. A loader can call it before reading a day, so nothing answered is ever missing."""
    return [spool.convert() for spool in _orphan_spools(Path(root))]


def _orphan_spools(root: Path) -> list[_Spool]:
    out = []
    for path in sorted(root.glob(f"*/*{SPOOL_SUFFIX}")):
        try:
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        except FileNotFoundError:
            continue  # converted meanwhile
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:  # its writer lives and will convert it
            os.close(fd)
            continue
        if os.fstat(fd).st_nlink == 0:  # converted and deleted between glob and lock
            os.close(fd)
            continue
        out.append(_Spool(path, fd))
    return out


def _write_all(fd: int, data: bytes | memoryview) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def _private_dir(folder: Path, root: Path) -> Path:
    """``folder`` (and ``root``) created owner-only; existing ones are tightened to 0700."""
    for d in (root, folder):
        d.mkdir(mode=DIR_MODE, parents=True, exist_ok=True)
        if d.stat().st_mode & 0o777 != DIR_MODE:
            os.chmod(d, DIR_MODE)
    return folder


def _open_exclusive(folder: Path, writer_id: str) -> int:
    """Open ``<writer_id>.jsonl`` (0600) for appending under an exclusive lock; pick another name if it is taken."""
    for attempt in range(100):
        name = writer_id if attempt == 0 else f"{writer_id}-{attempt}"
        fd = os.open(folder / f"{name}.jsonl", os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, FILE_MODE)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            continue
        os.fchmod(fd, FILE_MODE)  # a file left by an older writer with wider permissions
        return fd
    raise RuntimeError(f"prediction log: no free file for writer {writer_id} in {folder}")


# ---- JSON lines of a spooled table, column-wise with Arrow ------------------------------------------------------
def spool_lines(table: pa.Table, slice_rows: int = SLICE_ROWS) -> list[pa.Array]:
    """The JSON lines (with newlines) of a spooled table, one large_string array per slice of rows.

    Each line is concatenated by one Arrow kernel from a few pieces: literals, the row number, and per column
    its key and JSON value (columns with few distinct values are encoded once per value and gathered).
    """
    meta = table.schema.metadata
    head = '{"request_id":"' + meta[_META_BASE].decode() + "-"
    mid = '","time":' + _json(meta[_META_TIME].decode()) + ',"model_tag":' + _json(meta[_META_TAG].decode())
    inputs = [n for n in table.column_names if n not in ("probability", "label")]
    out = []
    for start in range(0, table.num_rows, slice_rows):
        part = table.slice(start, slice_rows)
        rows = pa.array(np.arange(start, start + part.num_rows, dtype=np.int64)).cast(_TEXT)
        pieces: list[Any] = [_literal(head), rows, _literal(mid + ',"inputs":{')]
        pieces += [_keyed_json(("," if k else "") + _json(n) + ":", part.column(n)) for k, n in enumerate(inputs)]
        pieces += [
            _literal('},"probability":'),
            part.column("probability").combine_chunks().cast(_TEXT),
            pc.take(pa.array([',"label":0}\n', ',"label":1}\n'], type=_TEXT), part.column("label").combine_chunks()),
        ]
        out.append(pc.binary_join_element_wise(*pieces, _literal("")))
    return out


def _keyed_json(key: str, column: pa.ChunkedArray) -> pa.Array:
    """``key`` followed by each value's JSON text ('null' for nulls), as large_string."""
    array = column.combine_chunks()
    if not pa.types.is_dictionary(array.type) and not pa.types.is_floating(array.type):
        encoded = pc.dictionary_encode(array)
        array = encoded if len(encoded.dictionary) <= _DICTIONARY_MAX else array
    if pa.types.is_dictionary(array.type):  # one encoding per distinct value, gathered per row
        texts = pa.array([key + _json(v) for v in array.dictionary.to_pylist()] + [key + "null"], type=_TEXT)
        codes = pc.fill_null(array.indices.cast(pa.int32()), len(array.dictionary))
        return pc.take(texts, codes)
    if pa.types.is_floating(array.type) or pa.types.is_integer(array.type):
        text = array.cast(_TEXT)
    else:
        text = pa.array([None if v is None else _json(v) for v in array.to_pylist()], type=_TEXT)
    return pc.binary_join_element_wise(_literal(key), pc.fill_null(text, _literal("null")), _literal(""))


def _string_data(lines: pa.Array) -> memoryview:
    """The concatenated bytes of a large_string array without a copy (its values buffer between the offsets)."""
    offsets = np.frombuffer(lines.buffers()[1], dtype=np.int64, count=len(lines) + 1, offset=lines.offset * 8)
    return memoryview(lines.buffers()[2])[offsets[0] : offsets[-1]]


def _literal(text: str) -> pa.Scalar:
    return pa.scalar(text, type=_TEXT)


def _json(value: Any) -> str:
    return orjson.dumps(value, default=str).decode()


# ---- reading -------------------------------------------------------------------------------------------------
def read_day(root: str | Path, day: date | str) -> list[PredictionLine]:
    """All entries of one day, across writers, as records; a torn last line (a writer killed mid-write) is
    skipped. (Bulk readers parse with ``resources.prediction_logs``, against the same record's schema.)"""
    folder = Path(root) / (day.isoformat() if isinstance(day, date) else day)
    out: list[PredictionLine] = []
    for path in sorted(folder.glob("*.jsonl")):
        for line in path.read_text(encoding="utf-8").splitlines():
            if line.strip():
                with contextlib.suppress(json.JSONDecodeError):
                    out.append(PredictionLine.model_validate(json.loads(line)))
    return out


def utc_now() -> datetime:
    return datetime.now(UTC)
