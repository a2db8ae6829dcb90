"""The Bento service: the champion TabularModel behind a typed HTTP API generated from the DatasetSpec.

The model says what it serves: the schema (columns, types, categories, the id and sensitive fields) is built
from the dataset spec stored inside the model, so a Bento needs no spec file and no spec variable. Configuration
comes from the environment, set by the deployer (or baked into the Bento's image): ``ML_ASSETS_MODEL_TAG`` (the
BentoML model tag to serve; every Bento the project builds bakes it into its image, and a Bento that packs exactly
one model, as the project's do, serves that one without it: ``packed_model_tag``), ``BENTOML_HOME`` (the store
holding it when the Bento does not pack it), ``ML_ASSETS_HOME`` (where the prediction log goes: a path of the
machine serving, such as the shared volume a pod mounts, not a property of the model), ``ML_ASSETS_SERVE_WORKERS``,
``ML_ASSETS_BATCH_MAX_ROWS``, ``ML_ASSETS_BATCH_INLINE_ROWS`` and ``ML_ASSETS_SERVE_TRACING`` (below).
``/readyz`` answers 200 only after the model is loaded and a warm-up prediction through the full scoring path
succeeded.

The routes are ``bento.http_api``, mounted with ``bentoml.asgi_app`` (public API). This module imports only what
serving needs: BentoML, the spec, the schema, the model bundle and the scoring code; never Dagster, Great
Expectations or the data pipeline (a test checks it in a fresh interpreter).
"""

from __future__ import annotations

import gc
import logging
import os
from typing import Any

import bentoml

from bento.http_api import build_api, new_runtime
from bento.packed_model import packed_model_tag
from ml_assets.dataset import DatasetSpec, load_spec
from ml_assets.model.bundle import TabularModel, load_spec_of
from ml_assets.serving.prediction_log import PredictionLog
from ml_assets.serving.schema import request_schemas, warmup_record
from ml_assets.serving.scoring import Scorer
from ml_assets.settings import DEFAULT_SPEC_PATH, int_env, paths

logger = logging.getLogger("ml_assets.serving")

MODEL_TAG_ENV = "ML_ASSETS_MODEL_TAG"


def served_spec(tag: str) -> DatasetSpec:
    """The spec stored in model ``tag``: the schema this service serves. Without a model only the module's routes
    are described (with the shipped spec) and the service refuses to start."""
    if not tag:
        return load_spec(DEFAULT_SPEC_PATH)
    return load_spec_of(model_path(tag), tag)


def model_path(tag: str) -> str:
    """Where model ``tag`` is, through BentoML's public store API: the Bento's own models when it packs them
    (images), else the store at BENTOML_HOME."""
    try:
        return bentoml.models.get(tag).path
    except bentoml.exceptions.NotFound as e:
        raise RuntimeError(
            f"model {tag} is neither packed in this Bento nor in the BentoML store at "
            f"{os.environ.get('BENTOML_HOME', '~/bentoml')} (set BENTOML_HOME)"
        ) from e


MODEL_TAG = os.environ.get(MODEL_TAG_ENV, "") or packed_model_tag(__file__)
SPEC = served_spec(MODEL_TAG)
API = build_api(SPEC)

# Rows per merged model call (MicroBatcher): concurrent /predict and /predict_batch requests are merged up to
# this many rows. 8192 = 32 full predict_batch requests of 256 rows, one logistic call ~15-30 ms on 2 cores.
BATCH_MAX_ROWS = int_env("ML_ASSETS_BATCH_MAX_ROWS", 8192)
# Batches up to this many rows are scored on the event loop, larger ones on a thread (see MicroBatcher). With the
# logistic model, everything on the loop measured within noise of 512 at c=32 (predict_batch 102-110k vs 101-104k
# rows/s); the thread keeps the loop answering while a network scores a large batch (torch releases the GIL).
BATCH_INLINE_ROWS = int_env("ML_ASSETS_BATCH_INLINE_ROWS", 512)
# 1 worker on 2 cores shared with the load client: 2 workers measured 89k and 172k rows/s (predict_batch c=32, two
# runs) against 78-90k with 1, and the same /predict at c=1: not a reliable gain where the client shares the cores.
WORKERS = int_env("ML_ASSETS_SERVE_WORKERS", 1)
# Per-request instrumentation. BentoML's OpenTelemetry middleware and access log wrap every request, also the
# mounted routes; on the prediction routes they measured ~40% of /predict's requests/s at c=32 (with no tracing
# exporter configured, the spans go nowhere). The prediction log records every answered prediction and
# /metrics counts requests per route and status, so by default the prediction routes are not traced and not
# access-logged. ML_ASSETS_SERVE_TRACING=1 traces and logs them (configure an exporter in BentoML's config).
PREDICTION_ROUTES = ["/predict", "/predict_batch", "/predict_file"]
TRACE_PREDICTIONS = int_env("ML_ASSETS_SERVE_TRACING", 0) == 1
UNTRACED_PREDICTIONS: dict[str, Any] = {
    "tracing": {"excluded_urls": PREDICTION_ROUTES},
    "logging": {"access": {"skip_paths": ["/metrics", "/healthz", "/livez", "/readyz", *PREDICTION_ROUTES]}},
}


@bentoml.service(
    name=f"{SPEC.name}-service",
    workers=WORKERS,
    traffic={"timeout": 60},
    labels={"dataset": SPEC.name, "owner": "ml-assets"},
    **({} if TRACE_PREDICTIONS else UNTRACED_PREDICTIONS),
)
@bentoml.asgi_app(API.docs, path="/")  # describes the routes in /docs.json (same paths: never reached)
@bentoml.asgi_app(API.app, path="/")  # serves them (mounted first)
class TabularClassifier:
    """Scores records of the dataset with the champion model; every prediction goes to the prediction log."""

    # declaring the model makes `bentoml build` pack it into the Bento, so the image is self-contained
    model_ref = bentoml.models.BentoModel(MODEL_TAG) if MODEL_TAG else None

    def __init__(self) -> None:
        self._ready = False
        if not MODEL_TAG:
            raise RuntimeError(
                f"{MODEL_TAG_ENV} is not set and this is not a Bento that packs exactly one model: the deployer "
                "(or the image) must name the model tag to serve"
            )
        self.log = PredictionLog(paths().prediction_log)
        scorer = Scorer(SPEC, TabularModel.load(model_path(MODEL_TAG), MODEL_TAG), MODEL_TAG, self.log)
        # warm-up through the same path as a request (schema -> frame -> model), not logged
        warm: dict[str, Any] = request_schemas(SPEC).record_adapter.validate_python(warmup_record(SPEC))
        scorer.score([warm] * 8, log=False)
        API.runtime = new_runtime(scorer, BATCH_MAX_ROWS, BATCH_INLINE_ROWS)
        # everything loaded so far lives as long as the process: keep it out of the garbage collector's full
        # passes, which otherwise stall a request now and then (p99 at c=32 measured ~200 -> ~80 ms)
        gc.collect()
        gc.freeze()
        self._ready = True
        logger.info("serving %s (threshold %.4f) for dataset %s", MODEL_TAG, scorer.threshold, SPEC.name)

    def __is_ready__(self) -> bool:
        return self._ready

    @bentoml.on_shutdown
    def _close_log(self) -> None:
        self.log.close()
