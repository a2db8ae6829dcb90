"""PredictionLine: one line of the prediction log, the record its writer and every reader share.

The serving path (``ml_assets.serving.prediction_log``) writes one JSON object a line with these keys in this
order; the log reader resource (``resources.prediction_logs``) parses the lines with the Arrow schema built here
from the same fields, and monitoring types the inputs from the dataset spec. A renamed or added field changes
this one class, and the reader's schema follows, so monitoring can never read a column that no longer exists as
silent nulls. A leaf module (pydantic and pyarrow only): the Bento, the resources and the assets all import it.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

import pyarrow as pa
from pydantic import BaseModel, ConfigDict


class PredictionLine(BaseModel):
    """One answered prediction: which request, when (ISO-8601 UTC), by which model, on which validated request
    fields (features, id and sensitive attributes as sent), with what probability and label."""

    model_config = ConfigDict(extra="forbid")

    request_id: str
    time: datetime
    model_tag: str
    inputs: dict[str, Any]
    probability: float
    label: Literal[0, 1]


FIELDS: tuple[str, ...] = tuple(PredictionLine.model_fields)
# How a reader parses each field (times stay text: Arrow's JSON reader does not parse ISO offsets everywhere).
_ARROW: dict[str, pa.DataType] = {
    "request_id": pa.string(),
    "time": pa.string(),
    "model_tag": pa.string(),
    "probability": pa.float64(),
    "label": pa.int64(),
}
if set(_ARROW) | {"inputs"} != set(FIELDS):  # a new field must say how it is read
    raise RuntimeError(f"PredictionLine fields {FIELDS} and their Arrow types {sorted(_ARROW)} disagree")


def line_schema(inputs: pa.StructType) -> pa.Schema:
    """The Arrow schema of a log line, the request fields typed by ``inputs`` (from the dataset spec)."""
    return pa.schema([(name, inputs if name == "inputs" else _ARROW[name]) for name in FIELDS])
