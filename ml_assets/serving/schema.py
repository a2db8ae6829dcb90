"""The HTTP contract of the served model, generated from the DatasetSpec.

One pydantic model per dataset: feature columns only, with their types, categories and numeric ranges as
constraints, so BentoML's ``/docs.json`` documents the real schema and bad input is refused with a 400 that
names the field and the rule before it ever reaches the model.
"""

from __future__ import annotations

from functools import cache
from operator import itemgetter
from typing import Annotated, Any, Literal

import numpy as np
import pandas as pd
import pyarrow as pa
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, create_model

from ml_assets.dataset import PANDAS_DTYPES, Column, DatasetSpec

MAX_BATCH_ROWS = 4096  # rows per predict_batch request; larger lists get a 400 naming the limit


class Prediction(BaseModel):
    """One scored record."""

    request_id: str = Field(description="id of this prediction in the prediction log (X-Request-ID if sent)")
    probability: float = Field(description="probability of the positive label")
    label: int = Field(description="1 when probability >= threshold, else 0")
    label_name: str = Field(description="the target category the label stands for")
    threshold: float = Field(description="decision threshold of the model")
    model_tag: str = Field(description="BentoML model tag that scored the record")
    unknown_categories: list[str] = Field(
        default_factory=list, description="fields whose value is not a known category and was scored as unknown"
    )


def _title(spec: DatasetSpec) -> str:
    return "".join(part.capitalize() for part in spec.name.replace("-", "_").split("_")) + "Record"


def _field(col: Column) -> tuple[Any, Any]:
    """The annotation and Field of one feature column, rules taken from the spec."""
    doc = col.description or col.name
    extra: dict[str, Any] = {}
    if col.dtype in ("int64", "float64"):
        base: Any = int if col.dtype == "int64" else float
        lo = col.range.min if col.range else None
        hi = col.range.max if col.range else None
        if col.dtype == "int64":
            lo = int(lo) if lo is not None else None
            hi = int(hi) if hi is not None else None
        constraints = Field(strict=True, ge=lo, le=hi, allow_inf_nan=False if base is float else None)
        annotation: Any = Annotated[base, constraints]
    elif col.unknown_category == "reject":
        annotation = Literal[tuple(col.categories or ())]  # type: ignore[misc]
    else:
        annotation = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1)]
        extra["x-categories"] = list(col.categories or [])
        doc += f"; known categories: {', '.join(col.categories or [])}; any other value is scored as unknown"
    if col.nullable:
        return annotation | None, Field(None, description=doc + " (nullable)", json_schema_extra=extra or None)
    return annotation, Field(..., description=doc, json_schema_extra=extra or None)


@cache
def _record_model(spec_json: str) -> type[BaseModel]:
    spec = DatasetSpec.model_validate_json(spec_json)
    fields = {col.name: _field(col) for col in spec.feature_columns}
    return create_model(  # type: ignore[call-overload]
        _title(spec),
        __config__=ConfigDict(extra="forbid", title=_title(spec)),
        __doc__=f"One {spec.name} record: its feature columns as landed (ids, time and target are not inputs).",
        **fields,
    )


def record_model(spec: DatasetSpec) -> type[BaseModel]:
    """The request model of one record (cached per spec so repeated imports share one class)."""
    return _record_model(spec.model_dump_json())


def unknown_categories(spec: DatasetSpec, record: dict[str, Any]) -> list[str]:
    """Fields of a validated record whose category the model will score as unknown."""
    out = []
    for col in spec.feature_columns:
        if col.is_categorical_feature and col.unknown_category == "map_to_unknown":
            value = record.get(col.name)
            if value is not None and value not in _known(spec, col.name):
                out.append(col.name)
    return out


_KNOWN: dict[tuple[str, str], frozenset[str]] = {}


def _known(spec: DatasetSpec, name: str) -> frozenset[str]:
    key = (spec.name, name)
    if key not in _KNOWN:
        _KNOWN[key] = frozenset(spec.column(name).categories or ())
    return _KNOWN[key]


def warmup_record(spec: DatasetSpec) -> dict[str, Any]:
    """A valid record built from the spec alone (mid-range numbers, first category), to warm a model up."""
    out: dict[str, Any] = {}
    for col in spec.feature_columns:
        if col.dtype in ("int64", "float64"):
            lo = col.range.min if col.range and col.range.min is not None else 0.0
            hi = col.range.max if col.range and col.range.max is not None else lo
            mid = (lo + hi) / 2
            out[col.name] = int(mid) if col.dtype == "int64" else float(mid)
        else:
            out[col.name] = (col.categories or [""])[0]
    return out


def records_columns(spec: DatasetSpec, records: list[dict[str, Any]]) -> dict[str, list[Any]]:
    """The feature values of records as one list per feature column (None where a record lacks the field).

    One C-level pass over the records (``itemgetter`` + ``zip``) when every record holds every feature, as
    validated records do; a per-column ``get`` otherwise.
    """
    names = [c.name for c in spec.feature_columns]
    try:
        rows = list(map(itemgetter(*names), records))
    except KeyError:
        return {n: [r.get(n) for r in records] for n in names}
    if len(names) == 1:
        return {names[0]: rows}
    return dict(zip(names, map(list, zip(*rows, strict=True)), strict=True))


def records_frame(
    spec: DatasetSpec, records: list[dict[str, Any]], columns: dict[str, list[Any]] | None = None
) -> pd.DataFrame:
    """Validated records -> a frame typed like the training data (spec dtypes), as the model expects.

    Built column-wise from numpy arrays (integers with a null mask, floats with NaN, strings straight into
    Arrow), no row-wise or per-value pandas construction. ``columns``: the records' ``records_columns`` if the
    caller already has them.
    """
    cols = columns if columns is not None else records_columns(spec, records)
    n = len(records)
    data: dict[str, Any] = {}
    for c in spec.feature_columns:
        values = cols[c.name]
        if c.dtype == "int64":
            if None in values:
                mask = np.fromiter((v is None for v in values), dtype=bool, count=n)
                ints = np.fromiter((0 if v is None else v for v in values), dtype=np.int64, count=n)
            else:
                mask = np.zeros(n, dtype=bool)
                ints = np.array(values, dtype=np.int64)
            data[c.name] = pd.arrays.IntegerArray(ints, mask)
        elif c.dtype == "float64":
            data[c.name] = np.array(values, dtype=np.float64)  # None -> NaN
        elif c.dtype == "string":
            data[c.name] = pd.arrays.ArrowStringArray(pa.array(values, type=pa.large_string()))
        else:
            data[c.name] = pd.array(values, dtype=PANDAS_DTYPES[c.dtype])
    return pd.DataFrame(data, copy=False)


def unknown_category_mask(spec: DatasetSpec, frame: pd.DataFrame) -> dict[str, np.ndarray]:
    """Per map_to_unknown categorical column, which rows hold a value that is not a known category."""
    out = {}
    for col in spec.feature_columns:
        if col.is_categorical_feature and col.unknown_category == "map_to_unknown":
            values = frame[col.name]
            mask = (values.notna() & ~values.isin(_known(spec, col.name))).to_numpy(dtype=bool)
            if mask.any():
                out[col.name] = mask
    return out
