"""The Bento service: the champion TabularModel behind a typed HTTP API generated from the DatasetSpec.

Configuration comes from the environment, set by the deployer (or baked into the Bento's image):
``ML_ASSETS_MODEL_TAG`` (required: the BentoML model tag to serve), ``BENTOML_HOME`` (the store holding it),
``ML_ASSETS_HOME`` (where the prediction log goes), ``ML_ASSETS_DATASET_SPEC`` (the spec the model was trained
with; default the shipped one), ``ML_ASSETS_SERVE_WORKERS`` and ``ML_ASSETS_BATCH_MAX_ROWS`` (rows per merged
model call). ``/readyz`` answers 200 only after the model is loaded and a warm-up prediction
through the full scoring path succeeded.
"""

from __future__ import annotations

import logging
import os
import uuid
from typing import Annotated, Any

import bentoml
from pydantic import Field

from bento.prediction_log import PredictionLog
from bento.scoring import MicroBatcher, Scorer
from ml_assets.dataset import load_default_spec
from ml_assets.serving.schema import MAX_BATCH_ROWS, Prediction, record_model, warmup_record
from ml_assets.settings import paths

logger = logging.getLogger("ml_assets.serving")

MODEL_TAG_ENV = "ML_ASSETS_MODEL_TAG"
MODEL_TAG = os.environ.get(MODEL_TAG_ENV, "")
SPEC = load_default_spec()
Record = record_model(SPEC)

# Adaptive batching for both endpoints (bento.scoring.MicroBatcher), sized from benchmarks/serving.py: a model
# call costs a fixed ~10 ms of pandas work plus ~10 us a row, so merging concurrent requests is what scales.
# BentoML's own dispatcher (batchable=True, max_latency_ms=5000) was measured first: on 2 cores it added a
# cork wait (p50 44 ms vs 20 ms at c=1) and halved predict_batch throughput against the reference, and a
# lower max_latency_ms sheds load with 503s; merging whatever arrived while the last call ran has neither
# problem. 8192 rows (2 full requests) bounds one call at ~100 ms.
BATCH_MAX_ROWS = int(os.environ.get("ML_ASSETS_BATCH_MAX_ROWS", "8192"))
WORKERS = int(os.environ.get("ML_ASSETS_SERVE_WORKERS", "1"))


def load_model(tag: str) -> Any:
    """The TabularModel ``tag``: from the Bento's own models when the Bento packs it (images), else BENTOML_HOME."""
    from ml_assets.model.bundle import TabularModel
    from resources.model_store import ModelStore

    try:
        return TabularModel.load(bentoml.models.get(tag).path)
    except bentoml.exceptions.NotFound:
        return ModelStore(home=str(paths().bentoml_home)).load(tag)


@bentoml.service(
    name=f"{SPEC.name}-service",
    workers=WORKERS,
    traffic={"timeout": 60},
    labels={"dataset": SPEC.name, "owner": "ml-assets"},
)
class TabularClassifier:
    """Scores records of the dataset with the champion model; every prediction goes to the prediction log."""

    # declaring the model makes `bentoml build` pack it into the Bento, so the image is self-contained
    model_ref = bentoml.models.BentoModel(MODEL_TAG) if MODEL_TAG else None

    def __init__(self) -> None:
        self._ready = False
        if not MODEL_TAG:
            raise RuntimeError(f"{MODEL_TAG_ENV} is not set: the deployer must name the model tag to serve")
        self.model_tag = MODEL_TAG
        model = load_model(MODEL_TAG)
        self.log = PredictionLog(paths().prediction_log)
        self.scorer = Scorer(SPEC, model, MODEL_TAG, self.log)
        self.batcher: MicroBatcher[tuple[dict[str, Any], str], dict[str, Any]] = MicroBatcher(
            lambda items: self.scorer.score([row for row, _ in items], [rid for _, rid in items]),
            max_rows=BATCH_MAX_ROWS,
        )
        # warm-up through the same path as a request (schema -> frame -> model), not logged
        warm = Record.model_validate(warmup_record(SPEC)).__dict__
        self.scorer.score([warm] * 8, log=False)
        self._ready = True
        logger.info("serving %s (threshold %.4f) for dataset %s", MODEL_TAG, self.scorer.threshold, SPEC.name)

    def __is_ready__(self) -> bool:
        return self._ready

    @bentoml.on_shutdown
    def _close_log(self) -> None:
        self.log.close()

    @bentoml.api
    async def predict(self, record: Record, ctx: bentoml.Context) -> Prediction:  # type: ignore[valid-type]
        """Score one record. Send `X-Request-ID` to choose the id under which it is logged."""
        rid = ctx.request.headers.get("x-request-id") or uuid.uuid4().hex
        out = await self.batcher.submit([(dict(record.__dict__), rid)])  # type: ignore[attr-defined]
        return Prediction.model_validate(out[0])

    @bentoml.api
    async def predict_batch(
        self,
        records: Annotated[list[Record], Field(min_length=1, max_length=MAX_BATCH_ROWS)],  # type: ignore[valid-type]
    ) -> list[Prediction]:
        """Score a list of records (at most MAX_BATCH_ROWS per request); one prediction per record, in order."""
        out = await self.batcher.submit([(r.__dict__, uuid.uuid4().hex) for r in records])
        return [Prediction.model_validate(o) for o in out]
