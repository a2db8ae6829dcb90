"""The served HTTP API: a lean Starlette app mounted on the Bento, with its OpenAPI description in a FastAPI app.

Why not ``@bentoml.api``: BentoML validates every record into a pydantic model instance, dispatches through its
batcher and validates the answer again, which measured 26-35% of a bare server's rows/s. Here a request's JSON
bytes are validated in one pydantic-core call into plain dicts (``ml_assets.serving.schema``), concurrent
requests are merged into one model call (``MicroBatcher``), and answers are encoded once with orjson.

BentoML still runs the server (workers, ``/readyz``, ``/metrics``) and publishes ``/docs.json``, into which it
merges the OpenAPI paths of mounted FastAPI apps. So every route is defined once (``Endpoint``: path, handler,
OpenAPI description) and registered twice: in a plain Starlette app, mounted first, which serves it, and in a
FastAPI app mounted after it, which only describes it (its paths are the same, so requests never reach it;
FastAPI's per-request machinery measured ~45 us of a ~1.3 ms request). Bodies are validated by hand, the
documented FastAPI pattern for custom bodies, so refusals are 400s in the project's ``ErrorResponse`` form.

Routes: ``POST /predict`` (one record), ``POST /predict_batch`` (1 to MAX_BATCH_ROWS records) and
``POST /predict_file`` (an Arrow IPC or Parquet file of up to MAX_FILE_ROWS rows; the answer has the same
media type). Limits: MAX_JSON_BODY_BYTES / MAX_FILE_BODY_BYTES (413), X-Request-ID (400).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import orjson
from fastapi import FastAPI
from pydantic import ValidationError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ml_assets.dataset import DatasetSpec
from ml_assets.serving import columnar
from ml_assets.serving.schema import (
    MAX_BATCH_ROWS,
    MAX_FILE_BODY_BYTES,
    MAX_FILE_ROWS,
    MAX_JSON_BODY_BYTES,
    REQUEST_ID_HEADER,
    REQUEST_ID_PATTERN,
    ErrorResponse,
    Prediction,
    RequestRefused,
    refusal,
    request_id_prefix,
    request_schemas,
    validation_refusal,
)
from ml_assets.serving.scoring import MicroBatcher, Scorer

JSON = "application/json"
BINARY = {"schema": {"type": "string", "format": "binary"}}
Handler = Callable[[Request], Awaitable[Response]]


@dataclass
class Runtime:
    """What the routes score with, set by the service once the model is loaded."""

    scorer: Scorer
    batcher: MicroBatcher[dict[str, Any], str, dict[str, Any]]  # records, X-Request-ID prefix, predictions
    bulk: asyncio.Semaphore  # one bulk file scored at a time per worker: bounds memory, leaves CPU to the rest


def new_runtime(scorer: Scorer, max_rows: int, inline_rows: int) -> Runtime:
    batcher: MicroBatcher[dict[str, Any], str, dict[str, Any]] = MicroBatcher(
        scorer.score, max_rows=max_rows, inline_rows=inline_rows
    )
    return Runtime(scorer, batcher, asyncio.Semaphore(1))


@dataclass(frozen=True)
class Endpoint:
    """One route: its path, its handler and its OpenAPI description (FastAPI ``add_api_route`` arguments)."""

    path: str
    handler: Handler
    openapi: dict[str, Any]


@dataclass
class HttpApi:
    """The serving app, the app describing it, and the runtime the handlers score with (None until ready)."""

    app: Starlette
    docs: FastAPI
    runtime: Runtime | None = field(default=None)


def build_api(spec: DatasetSpec) -> HttpApi:
    """Both apps of the spec's routes; they answer 503 until ``runtime`` is set (the service sets it when ready)."""
    schemas = request_schemas(spec)
    errors = {
        400: {"model": ErrorResponse, "description": "a field, header or column breaks a rule of the spec"},
        413: {"model": ErrorResponse, "description": "the body is larger than the endpoint (or the proxy) accepts"},
        502: {"model": ErrorResponse, "description": "behind the deployment's proxy: the server broke the request"},
        503: {"model": ErrorResponse, "description": "the model is not loaded yet, or the server is unavailable"},
    }
    header = {
        "name": REQUEST_ID_HEADER,
        "in": "header",
        "required": False,
        "description": "optional client id; each prediction's request_id is '<X-Request-ID>-<32 hex>'",
        "schema": {"type": "string", "pattern": REQUEST_ID_PATTERN, "maxLength": 64},
    }

    def json_body(schema: dict[str, Any]) -> dict[str, Any]:
        return {"parameters": [header], "requestBody": {"required": True, "content": {JSON: {"schema": schema}}}}

    def answer(run: Callable[[Runtime, Request], Awaitable[Response]]) -> Handler:
        async def handler(request: Request) -> Response:
            try:
                if api.runtime is None:
                    raise refusal(503, ["service"], "not_ready", "the model is still loading; retry shortly")
                return await run(api.runtime, request)
            except RequestRefused as e:
                return Response(orjson.dumps({"detail": e.detail}), status_code=e.status, media_type=JSON)

        return handler

    async def predict(runtime: Runtime, request: Request) -> Response:
        prefix = request_id_prefix(request.headers.get(REQUEST_ID_HEADER))
        body = await read_body(request, MAX_JSON_BODY_BYTES)
        record = _validate(schemas.predict.validate_json, body, spec)["record"]
        (out,) = await runtime.batcher.submit([record], prefix)
        return Response(orjson.dumps(out), media_type=JSON)

    async def predict_batch(runtime: Runtime, request: Request) -> Response:
        prefix = request_id_prefix(request.headers.get(REQUEST_ID_HEADER))
        body = await read_body(request, MAX_JSON_BODY_BYTES)
        records = _validate(schemas.predict_batch.validate_json, body, spec)["records"]
        out = await runtime.batcher.submit(records, prefix)
        return Response(orjson.dumps(out), media_type=JSON)

    async def predict_file(runtime: Runtime, request: Request) -> Response:
        prefix = request_id_prefix(request.headers.get(REQUEST_ID_HEADER))
        kind = columnar.media_type(request.headers.get("content-type"))
        body = await read_body(request, MAX_FILE_BODY_BYTES)
        async with runtime.bulk:
            answer = await asyncio.to_thread(score_file, runtime.scorer, body, kind, prefix)
        return Response(answer, media_type=kind)

    files = {kind: BINARY for kind in columnar.MEDIA_TYPES}
    endpoints = [
        Endpoint("/predict", answer(predict), {
            "summary": "Score one record",
            "description": f"Score one record. Send `{REQUEST_ID_HEADER}` to prefix the logged request id.",
            "responses": {200: {"model": Prediction, "description": "the prediction"}, **errors},
            "openapi_extra": json_body(schemas.json_schema(schemas.predict)),
        }),
        Endpoint("/predict_batch", answer(predict_batch), {
            "summary": "Score a list of records",
            "description": f"Score 1 to {MAX_BATCH_ROWS} records; one prediction per record, in order.",
            "responses": {200: {"model": list[Prediction], "description": "the predictions, in order"}, **errors},
            "openapi_extra": json_body(schemas.json_schema(schemas.predict_batch)),
        }),
        Endpoint("/predict_file", answer(predict_file), {
            "summary": "Score a columnar file",
            "description": f"Score an Arrow IPC (stream or file) or Parquet file of up to {MAX_FILE_ROWS} rows "
            "with the record's fields as columns (the id and sensitive columns optional), validated like JSON "
            "records; the answer has the request's media type: the id column if sent, then request_id "
            "('<X-Request-ID>-<32 hex>-<row>'), probability and label per row, in order, with the model tag "
            "and threshold in the schema metadata.",
            "response_class": Response,
            "responses": {
                200: {"description": "one score per row, in order", "content": files},
                415: {"model": ErrorResponse, "description": "the Content-Type is not a supported file type"},
                **errors,
            },
            "openapi_extra": {"parameters": [header], "requestBody": {"required": True, "content": files}},
        }),
    ]  # fmt: skip
    docs = FastAPI(title=f"{spec.name} scoring", docs_url=None, redoc_url=None, openapi_url=None)
    for e in endpoints:
        docs.add_api_route(e.path, e.handler, methods=["POST"], **e.openapi)
    api = HttpApi(Starlette(routes=[Route(e.path, e.handler, methods=["POST"]) for e in endpoints]), docs)
    return api


def score_file(scorer: Scorer, body: bytes, kind: str, prefix: str) -> bytes:
    """Decode, validate, score (and log) a bulk file; the scores encoded in the same media type."""
    table = columnar.validate_table(scorer.spec, columnar.read_table(body, kind))
    scored = scorer.score_table(table, prefix)
    out = columnar.scores_table(
        scorer.spec, table, scored.request_ids, scored.probabilities, scored.labels, scorer.model_tag, scorer.threshold
    )
    return columnar.write_table(out, kind)


async def read_body(request: Request, limit: int) -> bytes:
    """The request body, or a 413 as soon as it is known to exceed ``limit`` bytes (from Content-Length, or
    while streaming a body without one)."""
    length = request.headers.get("content-length", "")
    if length.isdigit() and int(length) > limit:
        raise _too_large(request, int(length), limit)
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise _too_large(request, size, limit)
        chunks.append(chunk)
    return b"".join(chunks)


def _too_large(request: Request, size: int, limit: int) -> RequestRefused:
    return refusal(
        413, ["body"], "body_too_large", f"{request.url.path} accepts at most {limit} bytes; the body has {size}+"
    )


def _validate(validate: Callable[[bytes], Any], body: bytes, spec: DatasetSpec) -> Any:
    try:
        return validate(body)
    except ValidationError as e:
        raise validation_refusal(e, spec) from e
