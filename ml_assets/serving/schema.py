"""The HTTP contract of the served model, generated from the DatasetSpec.

One record type per dataset: the feature columns with their types, categories and numeric ranges as
constraints, plus the spec's id and sensitive columns as optional fields that never reach the model (they are
logged with the prediction, so monitoring can join labels and slice fairness). Unknown fields are refused.
Requests are validated straight from the JSON bytes into plain dicts (pydantic-core, no model instances), and
every refusal is a 400 whose body follows ``ErrorResponse``, the schema ``/docs.json`` publishes.

Limits are part of the contract: request bodies, rows per request, text lengths (no category longer than the
spec's longest, so an 8 MB string never reaches the log) and the ``X-Request-ID`` header.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from operator import itemgetter
from typing import Annotated, Any, Literal, NotRequired

import numpy as np
import pandas as pd
import pyarrow as pa
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
    TypeAdapter,
    ValidationError,
)
from pydantic_core import PydanticCustomError
from typing_extensions import TypedDict

from ml_assets.dataset import PANDAS_DTYPES, Column, DatasetSpec, Role

MAX_BATCH_ROWS = 4096  # records per predict_batch request; larger lists get a 400 naming the limit
MAX_FILE_ROWS = 4_000_000  # rows per predict_file request
MAX_JSON_BODY_BYTES = 8 * 1024**2  # 4096 records of ~400 bytes need 1.6 MB
MAX_FILE_BODY_BYTES = 256 * 1024**2  # a million Adult rows: ~15 MB as Parquet, ~120 MB as plain Arrow IPC
ID_MAX_CHARS = 128  # text ids (the spec's id column when it is a string)
REQUEST_ID_HEADER = "X-Request-ID"
REQUEST_ID_PATTERN = r"^[A-Za-z0-9._~-]{1,64}$"  # URL-safe, short: safe to log and to echo
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1  # integers must fit the warehouse and numpy int64
ERROR_INPUT_MAX_CHARS = 100  # an offending value is echoed in the error only when this short

_REQUEST_ID = re.compile(REQUEST_ID_PATTERN)


class Prediction(BaseModel):
    """One scored record."""

    request_id: str = Field(
        description="unique id of this prediction in the prediction log: 32 hex digits, prefixed by the "
        "request's X-Request-ID and '-' when one was sent (so a repeated X-Request-ID never makes two "
        "predictions share an id)"
    )
    probability: float = Field(description="probability of the positive label")
    label: int = Field(description="1 when probability >= threshold, else 0")
    label_name: str = Field(description="the target category the label stands for")
    threshold: float = Field(description="decision threshold of the model")
    model_tag: str = Field(description="BentoML model tag that scored the record")
    unknown_categories: list[str] = Field(
        default_factory=list, description="fields whose value is not a known category and was scored as unknown"
    )


class ErrorItem(BaseModel):
    """One refused part of a request."""

    loc: list[str | int] = Field(
        description="where: the path to the field in the JSON body, ['header', name], ['file', column] or ['body']"
    )
    type: str = Field(description="the rule that failed, e.g. less_than_equal, string_too_long, extra_forbidden")
    msg: str = Field(description="the rule in words, with the limit")
    input: Any = Field(None, description=f"the offending value, when at most {ERROR_INPUT_MAX_CHARS} characters")


class ErrorResponse(BaseModel):
    """The body of every 4xx (and 5xx) answer: what was refused and why."""

    detail: list[ErrorItem]


class RequestRefused(Exception):
    """A request the service refuses: HTTP status and ErrorItem dicts."""

    def __init__(self, status: int, detail: list[dict[str, Any]]) -> None:
        super().__init__(f"{status}: {detail}")
        self.status = status
        self.detail = detail


def refusal(status: int, loc: list[str | int], type_: str, msg: str, value: Any = None) -> RequestRefused:
    """A one-item refusal; ``value`` is echoed only when short."""
    return RequestRefused(status, [error_item(loc, type_, msg, value)])


def error_item(loc: list[str | int], type_: str, msg: str, value: Any = None) -> dict[str, Any]:
    """One ErrorItem; ``value`` is echoed only when it is a short JSON scalar (an integer within int64, a
    finite number, a short text), so a refusal can always be encoded and never repeats a huge input."""
    item: dict[str, Any] = {"loc": list(loc), "type": type_, "msg": msg}
    if _echoable(value):
        item["input"] = value
    return item


def _echoable(value: Any) -> bool:
    if isinstance(value, bool):
        return True
    if isinstance(value, str):
        return len(value) <= ERROR_INPUT_MAX_CHARS
    if isinstance(value, int):
        return INT64_MIN <= value <= INT64_MAX
    return isinstance(value, float) and math.isfinite(value)


def validation_refusal(error: ValidationError, spec: DatasetSpec) -> RequestRefused:
    """A pydantic ValidationError as a 400 (loc, rule, message; long inputs and library context left out); a
    field of the source that is no request field is refused saying what it is (``not_a_field``)."""
    items: dict[tuple[str | int, ...], dict[str, Any]] = {}
    for e in error.errors(include_url=False, include_context=False):
        loc, msg = _field_loc(list(e["loc"]), spec), e["msg"]
        if e["type"] == EXTRA_FORBIDDEN and loc and isinstance(loc[-1], str):
            msg = not_a_field(spec, loc[-1])
        if (same := items.get(tuple(loc))) is not None:  # another form of one value refused too: one item says both
            if msg not in same["msg"]:
                same["msg"] += f"; or {msg[0].lower()}{msg[1:]}"
            continue
        items[tuple(loc)] = error_item(loc, e["type"], msg, e.get("input"))
    return RequestRefused(400, list(items.values()))


def _field_loc(loc: list[str | int], spec: DatasetSpec) -> list[str | int]:
    """The path to the field, without what pydantic appends for each form a value may take (an integer code or
    its text: ``function-before[_whole_number(), constrained-int]``), which no caller can act on. The field is
    found by the request's shape (``record.<field>``, ``records.<i>.<field>``, or a bare record's ``<field>``),
    never by its name alone: a column may be named ``record`` or like a form."""
    at = 1 if loc[:1] == ["record"] else 2 if loc[:1] == ["records"] and len(loc) > 1 and isinstance(loc[1], int) else 0
    if len(loc) <= at + 1 or loc[at] not in set(spec.column_names):
        return loc  # the body itself, or a field the record does not have (extra_forbidden): as pydantic says
    return loc[: at + 1]


EXTRA_FORBIDDEN = "extra_forbidden"


def not_a_field(spec: DatasetSpec, name: str) -> str:
    """Why ``name`` is refused as a request field. A caller that sends a row of the source as it is sends the
    target and the time column too: say what they are rather than call them unknown."""
    role = next((c.role for c in spec.columns if c.name == name), None)
    if role == Role.TARGET:
        return f"{name!r} is the spec's target, which the model predicts: leave it out (labels arrive as label files)"
    if role == Role.TIME:
        return f"{name!r} is the spec's time column: a prediction is stamped with the time it is answered; leave it out"
    if name in spec.left_out:  # a column of the source the spec leaves out on purpose: say why, not "unknown"
        why = spec.left_out[name]
        short = why if len(why) <= 200 else why[:200] + "..."
        return f"{name!r} is left out of the model's inputs ({short}): leave it out"
    return f"{name!r} is not a field of the record (unknown: a record holds the id, features and sensitive columns)"


def request_id_prefix(header: str | None) -> str:
    """The validated X-Request-ID ('' when absent); a 400 naming the header otherwise."""
    if header is None:
        return ""
    if not _REQUEST_ID.fullmatch(header):
        raise refusal(
            400,
            ["header", REQUEST_ID_HEADER],
            "request_id_invalid",
            f"{REQUEST_ID_HEADER} must be 1 to 64 characters of A-Z a-z 0-9 . _ ~ - (got {len(header)} characters)",
            header,
        )
    return header


# ---- the record type -------------------------------------------------------------------------------------------
def category_max_chars(spec: DatasetSpec) -> int:
    """Longest text a categorical value may have: the spec's longest category (the spec has no field for it).

    A longer value cannot be a known category of any column, so refusing it loses nothing the model knows.
    """
    return max(len(v) for c in spec.columns for v in (c.categories or ()))


def served_columns(spec: DatasetSpec) -> list[Column]:
    """The fields a request record may have, in spec order: the id, the features and the sensitive columns."""
    return [c for c in spec.columns if c.is_feature or c.role in (Role.ID, Role.SENSITIVE)]


# ---- values as landing takes them ------------------------------------------------------------------------------
# Landing (``ml_assets.dataset._cast``) takes a whole number written as a float (58.0, as pandas writes an integer
# column with a missing value) for an integer, trims text and reads blank text as missing. The HTTP rules take
# exactly that, and the published schema says so: integers are JSON Schema integers (which 58.0 is), text fields
# carry a pattern over their trimmed form. Whitespace is Python's (str.isspace, the same set Arrow trims on
# landing), spelled out as a class so every regex engine reads the pattern alike.
WHITESPACE = "".join(c for c in map(chr, range(0x3001)) if c.isspace())  # none above U+3000


def _char_class(chars: str) -> str:
    """The characters as a regex class body of \\uXXXX escapes, consecutive ones as ranges."""
    runs: list[list[int]] = []
    for code in map(ord, chars):
        if runs and code == runs[-1][1] + 1:
            runs[-1][1] = code
        else:
            runs.append([code, code])
    return "".join(f"\\u{a:04x}" + (f"-\\u{b:04x}" if b > a else "") for a, b in runs)


SPACE, NON_SPACE = f"[{_char_class(WHITESPACE)}]", f"[^{_char_class(WHITESPACE)}]"


def text_pattern(max_chars: int, blank_allowed: bool) -> str:
    """A regex of text whose trimmed form has 1 to ``max_chars`` characters (0 too when ``blank_allowed``)."""
    inner = NON_SPACE + (f"(?:[\\s\\S]{{0,{max_chars - 2}}}{NON_SPACE})?" if max_chars >= 2 else "")
    body = f"(?:{inner})?" if blank_allowed else inner
    return f"^{SPACE}*{body}{SPACE}*$"


def categories_pattern(categories: Sequence[str], blank_allowed: bool) -> str:
    """A regex of text whose trimmed form is one of ``categories`` (or blank when ``blank_allowed``)."""
    choices = "|".join(re.escape(c) for c in categories)
    return f"^{SPACE}*(?:{choices}){'?' if blank_allowed else ''}{SPACE}*$"


def _whole_number(value: Any) -> Any:
    """58.0 -> 58 for an integer field (landing takes it); 58.5 is refused naming the fraction."""
    if isinstance(value, float) and math.isfinite(value):
        if not value.is_integer():
            raise PydanticCustomError(
                "int_from_float", "Input should be a valid integer, got a number with a fractional part"
            )
        return int(value)
    return value


def _trimmed(max_chars: int, categories: Sequence[str] | None, blank_is_missing: bool):
    """The validator of a text value: trimmed; blank is missing where the column is nullable (landing reads it
    so) and refused where it is not; longer than ``max_chars`` or, for a closed domain, not a category, refused."""
    known = frozenset(categories or ())

    def check(value: str) -> str | None:
        text = value.strip()
        if not text:
            if blank_is_missing:
                return None
            raise PydanticCustomError("string_too_short", "String should have at least 1 non-space character")
        if len(text) > max_chars:
            raise PydanticCustomError(
                "string_too_long",
                "String should have at most {max_length} characters (after trimming)",
                {"max_length": max_chars},
            )
        if known and text not in known:
            raise PydanticCustomError("literal_error", "Input should be one of {expected}", {"expected": sorted(known)})
        return text

    return check


def _text_type(spec: DatasetSpec, col: Column) -> Any:
    """A text value: trimmed; its pattern publishes the same rule the validator applies."""
    closed = list(col.categories) if col.categories and col.unknown_category == "reject" else None
    limit = category_max_chars(spec) if col.categories else ID_MAX_CHARS
    if closed:
        pattern = categories_pattern(closed, col.nullable)
    else:
        pattern = text_pattern(limit, col.nullable)
    return Annotated[
        str,
        Field(strict=True, json_schema_extra={"pattern": pattern}),
        AfterValidator(_trimmed(limit, closed, col.nullable)),
    ]


def _value_type(spec: DatasetSpec, col: Column) -> Any:
    """The annotation of one value of a column (without nullability), rules taken from the spec."""
    if col.dtype in ("int64", "float64"):
        lo = col.range.min if col.range and col.range.min is not None else None
        hi = col.range.max if col.range and col.range.max is not None else None
        if col.dtype == "int64":
            lo = INT64_MIN if lo is None else int(lo)
            hi = INT64_MAX if hi is None else int(hi)
            return Annotated[int, Field(strict=True, ge=lo, le=hi), BeforeValidator(_whole_number)]
        return Annotated[float, Field(strict=True, ge=lo, le=hi, allow_inf_nan=False)]
    if col.dtype == "bool":
        return Annotated[bool, Field(strict=True)]
    if col.dtype == "datetime":
        return Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=64)]
    text = _text_type(spec, col)
    if col.bool_coded:  # a flag: JSON true and the text "True" are the same category, scored and logged as "True"
        return Annotated[
            Annotated[bool, Field(strict=True)] | text, AfterValidator(lambda v: v if v is None else str(v))
        ]
    if col.integer_coded:  # codes land as numbers: 3, 3.0 and "3" are the same code, scored and logged as "3"
        if col.categories and col.unknown_category == "reject":
            number: Any = Annotated[
                Literal[tuple(int(c) for c in col.categories)],  # type: ignore[misc]
                BeforeValidator(_whole_number),
            ]
        else:
            number = Annotated[int, Field(strict=True, ge=INT64_MIN, le=INT64_MAX), BeforeValidator(_whole_number)]
        return Annotated[number | text, AfterValidator(lambda v: v if v is None else str(v))]
    return text


def _field(spec: DatasetSpec, col: Column) -> Any:
    """The TypedDict entry of one column: required feature, nullable feature (default null) or optional extra."""
    doc = col.description or col.name
    extra: dict[str, Any] = {}
    if col.categories and col.unknown_category == "map_to_unknown" and col.dtype == "string":
        extra["x-categories"] = list(col.categories)
        doc += f"; known categories: {', '.join(col.categories)}; any other value is scored as unknown"
    value = _value_type(spec, col)
    if col.dtype == "string":
        doc += "; text is trimmed" + ("; whitespace only is missing" if col.nullable else "")
    if not col.is_feature:
        doc += f" ({col.role.value} column: optional, never a model input; logged with the prediction)"
        kind = value | None if col.nullable else value
        return NotRequired[Annotated[kind, Field(description=doc, json_schema_extra=extra)]]
    if col.nullable:
        field = Field(None, description=doc + " (nullable: may be null or omitted)", json_schema_extra=extra)
        return NotRequired[Annotated[value | None, field]]
    return Annotated[value, Field(description=doc, json_schema_extra=extra)]


def _title(spec: DatasetSpec) -> str:
    return "".join(part.capitalize() for part in spec.name.replace("-", "_").split("_")) + "Record"


def _typed_dict(title: str, doc: str, fields: dict[str, Any]) -> Any:
    cls = TypedDict(title, fields)  # type: ignore[operator]
    cls.__doc__ = doc
    cls.__pydantic_config__ = ConfigDict(extra="forbid", title=title)  # type: ignore[attr-defined]
    return cls


@dataclass(frozen=True)
class RequestSchemas:
    """The request types of one spec and their validators (from JSON bytes to plain dicts)."""

    record: Any
    record_adapter: TypeAdapter[Any]
    predict: TypeAdapter[Any]
    predict_batch: TypeAdapter[Any]

    def json_schema(self, adapter: TypeAdapter[Any]) -> dict[str, Any]:
        """The JSON schema of a request body with its definitions inlined (OpenAPI request bodies have no $defs)."""
        return _inline_refs(adapter.json_schema())


@cache
def _request_schemas(spec_json: str) -> RequestSchemas:
    spec = DatasetSpec.model_validate_json(spec_json)
    title = _title(spec)
    record = _typed_dict(
        title,
        f"One {spec.name} record: its feature columns as landed; optionally its id and sensitive columns, which "
        "are logged with the prediction but never passed to the model. Any other field is refused.",
        {c.name: _field(spec, c) for c in served_columns(spec)},
    )
    predict = _typed_dict("PredictRequest", "One record to score.", {"record": record})
    batch = _typed_dict(
        "PredictBatchRequest",
        f"Records to score (1 to {MAX_BATCH_ROWS}).",
        {"records": Annotated[list[record], Field(min_length=1, max_length=MAX_BATCH_ROWS)]},  # type: ignore[valid-type]
    )
    return RequestSchemas(record, TypeAdapter(record), TypeAdapter(predict), TypeAdapter(batch))


def request_schemas(spec: DatasetSpec) -> RequestSchemas:
    """The request types of ``spec`` (cached per spec, so repeated imports share one set of validators)."""
    return _request_schemas(spec.model_dump_json())


def _inline_refs(schema: dict[str, Any]) -> dict[str, Any]:
    defs = schema.pop("$defs", {})

    def walk(node: Any) -> Any:
        if isinstance(node, dict):
            ref = node.get("$ref")
            if isinstance(ref, str) and ref.startswith("#/$defs/"):
                return walk(defs[ref.removeprefix("#/$defs/")])
            return {k: walk(v) for k, v in node.items()}
        if isinstance(node, list):
            return [walk(v) for v in node]
        return node

    return walk(schema)


# ---- records -> model input ------------------------------------------------------------------------------------
def warmup_record(spec: DatasetSpec) -> dict[str, Any]:
    """A valid record built from the spec alone (mid-range numbers, first category; integer codes as numbers, as
    clients send them), to warm a model up."""
    out: dict[str, Any] = {}
    for col in spec.feature_columns:
        if col.dtype in ("int64", "float64"):
            lo = col.range.min if col.range and col.range.min is not None else 0.0
            hi = col.range.max if col.range and col.range.max is not None else lo
            mid = (lo + hi) / 2
            out[col.name] = int(mid) if col.dtype == "int64" else float(mid)
        elif col.integer_coded:
            out[col.name] = int((col.categories or ["0"])[0])
        else:
            out[col.name] = (col.categories or [""])[0]
    return out


def frame_records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """A typed frame's rows as JSON-ready request records (nulls as None, numpy scalars as Python values)."""
    return [
        {k: (None if pd.isna(v) else v.item() if isinstance(v, np.generic) else v) for k, v in r.items()}
        for r in frame.astype(object).to_dict("records")
    ]


def records_columns(
    spec: DatasetSpec, records: list[dict[str, Any]], features: Sequence[Column] | None = None
) -> dict[str, list[Any]]:
    """The feature values of records as one list per feature column (None where a record lacks the field).

    One C-level pass over the records (``itemgetter`` + ``zip``) when every record holds every feature, as
    validated records do; a per-column ``get`` otherwise. Fields that are not features (id, sensitive) are
    never picked up, so they cannot reach the model. ``features``: the spec's feature columns, if the caller
    keeps them (the property builds a new list per call).
    """
    names = [c.name for c in (features if features is not None else spec.feature_columns)]
    try:
        rows = list(map(itemgetter(*names), records))
    except KeyError:
        return {n: [r.get(n) for r in records] for n in names}
    if len(names) == 1:
        return {names[0]: rows}
    return dict(zip(names, map(list, zip(*rows, strict=True)), strict=True))


def records_frame(
    spec: DatasetSpec,
    records: list[dict[str, Any]],
    columns: dict[str, list[Any]] | None = None,
    features: Sequence[Column] | None = None,
) -> pd.DataFrame:
    """Validated records -> a frame typed like the training data (spec dtypes), as the model expects.

    Built column-wise from numpy arrays (integers with a null mask, floats with NaN, strings straight into
    Arrow), no row-wise or per-value pandas construction. ``columns``: the records' ``records_columns`` if the
    caller already has them; ``features`` as in ``records_columns``.
    """
    features = features if features is not None else spec.feature_columns
    cols = columns if columns is not None else records_columns(spec, records, features)
    n = len(records)
    data: dict[str, Any] = {}
    for c in features:
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
