"""Scoring shared by the Bento service and its tests: records -> model -> predictions -> prediction log.

Kept apart from ``service.py`` so the same code path is exercised in-process and behind ``bentoml serve``.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from typing import Any, Generic, TypeVar

import numpy as np

from bento.prediction_log import PredictionLog, utc_now
from ml_assets.dataset import DatasetSpec
from ml_assets.serving.schema import records_frame, unknown_categories


class ScoringError(RuntimeError):
    """The model returned something that is not a probability per row (a broken model, not bad input)."""


class Scorer:
    """Applies one loaded TabularModel to validated records and logs every prediction."""

    def __init__(self, spec: DatasetSpec, model: Any, model_tag: str, log: PredictionLog | None) -> None:
        expected = [c.name for c in spec.feature_columns]
        if set(getattr(model, "feature_names", expected)) != set(expected):
            raise ValueError(
                f"model {model_tag} was trained on features {model.feature_names}, but spec {spec.name!r} "
                f"serves {expected}: serve it with the spec it was trained on (ML_ASSETS_DATASET_SPEC)"
            )
        self.spec = spec
        self.model = model
        self.model_tag = model_tag
        self.threshold = float(model.threshold)
        self.log = log
        cats = spec.target.categories or []
        self._names = (next(c for c in cats if c != spec.positive_label), spec.positive_label)

    def score(
        self, records: list[dict[str, Any]], request_ids: list[str] | None = None, log: bool = True
    ) -> list[dict[str, Any]]:
        """Score validated records (dicts of feature values); returns one prediction dict per record."""
        if not records:
            return []
        proba = np.asarray(self.model.predict_proba(records_frame(self.spec, records)), dtype="float64")
        if proba.shape != (len(records),) or not np.isfinite(proba).all():
            raise ScoringError(
                f"model {self.model_tag} returned probabilities of shape {proba.shape} "
                f"(finite: {bool(np.isfinite(proba).all())}) for {len(records)} records"
            )
        ids = request_ids or [uuid.uuid4().hex for _ in records]
        now = utc_now()
        out = []
        for rid, rec, p in zip(ids, records, proba.tolist(), strict=True):
            label = int(p >= self.threshold)
            out.append(
                {
                    "request_id": rid,
                    "probability": p,
                    "label": label,
                    "label_name": self._names[label],
                    "threshold": self.threshold,
                    "model_tag": self.model_tag,
                    "unknown_categories": unknown_categories(self.spec, rec),
                }
            )
        if log and self.log is not None:
            self.log.append(
                [
                    {
                        "request_id": o["request_id"],
                        "time": now,
                        "model_tag": self.model_tag,
                        "inputs": rec,
                        "probability": o["probability"],
                        "label": o["label"],
                    }
                    for o, rec in zip(out, records, strict=True)
                ]
            )
        return out


T = TypeVar("T")
R = TypeVar("R")


class MicroBatcher(Generic[T, R]):
    """Coalesces concurrent single-item calls into one call of ``fn`` on a worker thread.

    No timer and no shedding: the first caller starts a batch at once; callers arriving while it runs are
    scored together in the next one, so batches grow with load and latency at low load stays one model call.
    """

    def __init__(self, fn: Callable[[list[T]], list[R]], max_batch: int) -> None:
        self.fn = fn
        self.max_batch = max_batch
        self._pending: list[tuple[T, asyncio.Future[R]]] = []
        self._running = False

    async def submit(self, item: T) -> R:
        fut: asyncio.Future[R] = asyncio.get_running_loop().create_future()
        self._pending.append((item, fut))
        if not self._running:
            self._running = True
            asyncio.get_running_loop().create_task(self._drain())
        return await fut

    async def _drain(self) -> None:
        try:
            while self._pending:
                batch, self._pending = self._pending[: self.max_batch], self._pending[self.max_batch :]
                try:
                    results = await asyncio.to_thread(self.fn, [item for item, _ in batch])
                except Exception as e:  # every caller of the batch gets the error, the loop goes on
                    for _, fut in batch:
                        if not fut.done():
                            fut.set_exception(e)
                    continue
                for (_, fut), res in zip(batch, results, strict=True):
                    if not fut.done():
                        fut.set_result(res)
        finally:
            self._running = False
