"""Scoring shared by the Bento service, its tests and the ``batch_predictions`` asset: records or a validated
table -> model -> predictions -> prediction log.

Kept apart from ``service.py`` so the same code path runs in-process and behind ``bentoml serve``. A scored
batch's log lines are written (handed to the kernel) before ``score`` returns, so before any answer is sent.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ml_assets.dataset import DatasetSpec
from ml_assets.serving.columnar import model_frame
from ml_assets.serving.prediction_log import PredictionLog, utc_now
from ml_assets.serving.schema import records_columns, records_frame


class ScoringError(RuntimeError):
    """The model returned something that is not a probability per row (a broken model, not bad input)."""


@dataclass(frozen=True)
class ScoredTable:
    """Scores of a validated table, one per row in order."""

    request_ids: pa.Array
    probabilities: np.ndarray
    labels: np.ndarray


class Scorer:
    """Applies one loaded TabularModel to validated records and logs every prediction."""

    def __init__(self, spec: DatasetSpec, model: Any, model_tag: str, log: PredictionLog | None) -> None:
        expected = [c.name for c in spec.feature_columns]
        if set(getattr(model, "feature_names", expected)) != set(expected):
            raise ValueError(
                f"model {model_tag} was trained on features {model.feature_names}, but spec {spec.name!r} "
                f"serves {expected}: score it with the spec stored in the model (model.spec)"
            )
        self.spec = spec
        self.features = spec.feature_columns
        self.model = model
        self.model_tag = model_tag
        self.threshold = float(model.threshold)
        self.log = log
        cats = spec.target.categories or []
        self._names = (next(c for c in cats if c != spec.positive_label), spec.positive_label)
        # categorical fields whose unseen values are scored as unknown, with the spec's known categories
        self._known = [
            (c.name, frozenset(c.categories or ()))
            for c in self.features
            if c.is_categorical_feature and c.unknown_category == "map_to_unknown"
        ]

    def score(
        self, records: list[dict[str, Any]], requests: Sequence[tuple[str, int]] | None = None, log: bool = True
    ) -> list[dict[str, Any]]:
        """Score validated records (dicts of request fields); returns one prediction dict per record.

        ``requests``: the records' requests in order, as ``(X-Request-ID prefix or '', record count)``; default
        one request without a prefix.
        """
        if not records:
            return []
        columns = records_columns(self.spec, records, self.features)
        proba = self._predict(records_frame(self.spec, records, columns, self.features), len(records))
        ids = request_ids(requests or [("", len(records))])
        now = utc_now()
        unknown: list[tuple[str, ...]] = [()] * len(records)  # one shared empty tuple: most rows have none
        for name, known in self._known:
            values = columns[name]
            # one set difference per column; the per-row scan only when some value is unknown (rare)
            if set(values).difference(known).difference((None,)):
                for i, v in enumerate(values):
                    if v is not None and v not in known:
                        unknown[i] = (*unknown[i], name)
        probs = proba.tolist()
        labels = (proba >= self.threshold).astype(int).tolist()
        names, threshold, tag = self._names, self.threshold, self.model_tag
        out = [
            {
                "request_id": rid,
                "probability": p,
                "label": label,
                "label_name": names[label],
                "threshold": threshold,
                "model_tag": tag,
                "unknown_categories": unk,
            }
            for rid, p, label, unk in zip(ids, probs, labels, unknown, strict=True)
        ]
        if log and self.log is not None:
            self.log.write_batch(now, tag, ids, records, probs, labels)
        return out

    def score_table(self, table: pa.Table, id_prefix: str = "", log: bool = True) -> ScoredTable:
        """Score a table validated by ``ml_assets.serving.columnar.validate_table`` (bulk files, batch assets)."""
        proba = self._predict(model_frame(self.spec, table), table.num_rows)
        labels = (proba >= self.threshold).astype(np.int8)
        (base,) = request_ids([(id_prefix, 1)])
        if log and self.log is not None:
            self.log.write_table(utc_now(), self.model_tag, base, table, proba, labels)
        return ScoredTable(row_request_ids(base, table.num_rows), proba, labels)

    def _predict(self, frame: Any, n: int) -> np.ndarray:
        proba = np.asarray(self.model.predict_proba(frame), dtype="float64")
        if proba.shape != (n,) or not np.isfinite(proba).all():
            raise ScoringError(
                f"model {self.model_tag} returned probabilities of shape {proba.shape} "
                f"(finite: {bool(np.isfinite(proba).all())}) for {n} records"
            )
        return proba


def request_ids(runs: Sequence[tuple[str, int]]) -> list[str]:
    """One unique id per prediction of requests given as ``(X-Request-ID prefix or '', row count)``: 32 random hex
    digits (one ``os.urandom`` call for the batch, ~15x cheaper than uuid4 objects), after '<prefix>-' where a
    request sent one."""
    n = sum(count for _, count in runs)
    digits = os.urandom(16 * n).hex()
    ids = [digits[i : i + 32] for i in range(0, 32 * n, 32)]
    if any(prefix for prefix, _ in runs):
        prefixes = [prefix for prefix, count in runs for _ in range(count)]
        ids = [f"{p}-{h}" if p else h for p, h in zip(prefixes, ids, strict=True)]
    return ids


def row_request_ids(base: str, n: int) -> pa.Array:
    """Ids of a bulk table's rows: the call's request id (``request_ids``) and the row number, '<base>-<row>'."""
    rows = pa.array(np.arange(n, dtype=np.int64)).cast(pa.large_string())
    return pc.binary_join_element_wise(pa.scalar(base + "-", pa.large_string()), rows, pa.scalar("", pa.large_string()))


T = TypeVar("T")
K = TypeVar("K")
R = TypeVar("R")


class MicroBatcher(Generic[T, K, R]):
    """Adaptive batching without a timer: concurrent requests are merged into one call of ``fn``.

    The first request starts a batch at once; requests arriving while it runs are merged (up to ``max_rows``
    rows) into the next one, so batches grow with load, latency at low load is one model call, and nothing is
    ever shed. Each request is a list of rows and a key (here its X-Request-ID prefix); ``fn`` gets the merged
    rows and the requests' ``(key, row count)`` in order, and each request gets its own rows' results back. A
    batch of at most ``inline_rows`` rows runs on the event loop itself (a thread hop costs more than scoring a
    few rows); larger ones on a worker thread, so the loop keeps reading and validating the next requests.
    """

    def __init__(
        self, fn: Callable[[list[T], list[tuple[K, int]]], list[R]], max_rows: int, inline_rows: int = 0
    ) -> None:
        self.fn = fn
        self.max_rows = max_rows
        self.inline_rows = inline_rows
        self._pending: list[tuple[list[T], K, asyncio.Future[list[R]]]] = []
        self._running = False
        self._task: asyncio.Task[None] | None = None

    async def submit(self, rows: list[T], key: K) -> list[R]:
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[list[R]] = loop.create_future()
        self._pending.append((rows, key, fut))
        if not self._running:
            self._running = True
            self._task = loop.create_task(self._drain())  # keep a reference: the loop holds tasks weakly
        return await fut

    def _take(self) -> list[tuple[list[T], K, asyncio.Future[list[R]]]]:
        taken, n = [], 0
        while self._pending and (not taken or n + len(self._pending[0][0]) <= self.max_rows):
            job = self._pending.pop(0)
            taken.append(job)
            n += len(job[0])
        return taken

    async def _drain(self) -> None:
        try:
            while self._pending:
                jobs = self._take()
                flat = [row for rows, _, _ in jobs for row in rows]
                runs = [(key, len(rows)) for rows, key, _ in jobs]
                try:
                    if len(flat) <= self.inline_rows:
                        results = self.fn(flat, runs)
                    else:
                        results = await asyncio.to_thread(self.fn, flat, runs)
                except Exception as e:  # every request of the batch gets the error; the loop goes on
                    for _, _, fut in jobs:
                        if not fut.done():
                            fut.set_exception(e)
                    continue
                start = 0
                for rows, _, fut in jobs:
                    if not fut.done():
                        fut.set_result(results[start : start + len(rows)])
                    start += len(rows)
        finally:
            self._running = False
