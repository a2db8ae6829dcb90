"""Bulk scoring's columnar side: Arrow IPC or Parquet in, validated against the spec like JSON input, scores out.

``/predict_file`` and the ``batch_predictions`` asset share this module (and ``ml_assets.serving.scoring.Scorer``), so a
file sent over HTTP and a day scored in-process pass the same rules and reach the model in the same form.
Every rule of the JSON record (``ml_assets.serving.schema``) holds column-wise: no unknown column, required
columns present and non-null, integer/number/text types, numeric ranges, finite numbers, text trimmed, non-empty
and no longer than the spec's longest category, and the categories of ``reject`` columns. A refusal names the
column, the rule, how many rows break it and the first of them.

Text columns come out dictionary-encoded (the distinct values, trimmed, plus one index per row): the rules,
the model frame and the prediction log then work on a few distinct values instead of every row.
"""

from __future__ import annotations

import io
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.ipc as ipc
import pyarrow.parquet as pq

from ml_assets.dataset import Column, DatasetSpec
from ml_assets.serving.schema import (
    EXTRA_FORBIDDEN,
    ID_MAX_CHARS,
    INT64_MAX,
    MAX_FILE_ROWS,
    RequestRefused,
    category_max_chars,
    error_item,
    not_a_field,
    refusal,
    served_columns,
)

ARROW_STREAM = "application/vnd.apache.arrow.stream"
ARROW_FILE = "application/vnd.apache.arrow.file"
PARQUET = "application/vnd.apache.parquet"
MEDIA_TYPES = (ARROW_STREAM, ARROW_FILE, PARQUET)
MAX_DECODED_BYTES = 2 * 1024**3  # a small compressed file must not decode into more than this (memory bound)
MODEL_TAG_KEY, THRESHOLD_KEY = b"model_tag", b"threshold"  # schema metadata of a scores file

_TEXT = pa.large_string()
_TEXT_DICT = pa.dictionary(pa.int32(), _TEXT)


# ---- files -----------------------------------------------------------------------------------------------------
def media_type(content_type: str | None) -> str:
    """The supported media type named by a Content-Type header (parameters ignored); a 415 otherwise."""
    kind = (content_type or "").split(";", 1)[0].strip().lower()
    if kind not in MEDIA_TYPES:
        raise refusal(
            415,
            ["header", "Content-Type"],
            "media_type_unsupported",
            f"send the file as one of {', '.join(MEDIA_TYPES)} (got {content_type or 'no Content-Type'!r})",
            content_type,
        )
    return kind


def read_table(body: bytes, kind: str) -> pa.Table:
    """Decode a request body of media type ``kind``; a 400 names what is wrong with it."""
    try:
        if kind == PARQUET:
            source = pq.ParquetFile(pa.BufferReader(body))
            meta = source.metadata
            _bound_rows(meta.num_rows)
            decoded = sum(meta.row_group(i).total_byte_size for i in range(meta.num_row_groups))
            _bound_bytes(decoded)
            return source.read()
        reader = ipc.open_stream(body) if kind == ARROW_STREAM else ipc.open_file(body)
        batches, rows, size = [], 0, 0
        for batch in (
            reader if kind == ARROW_STREAM else (reader.get_batch(i) for i in range(reader.num_record_batches))
        ):
            rows += batch.num_rows
            size += batch.nbytes
            _bound_rows(rows)
            _bound_bytes(size)
            batches.append(batch)
        return pa.Table.from_batches(batches, schema=reader.schema)
    except RequestRefused:
        raise
    except (pa.ArrowException, OSError, ValueError) as e:
        raise refusal(400, ["body"], "file_invalid", f"the body is not a readable {kind} file: {e}") from e


def write_table(table: pa.Table, kind: str) -> bytes:
    """Encode ``table`` as media type ``kind``."""
    sink = io.BytesIO()
    if kind == PARQUET:
        pq.write_table(table, sink)
    else:
        opener = ipc.new_stream if kind == ARROW_STREAM else ipc.new_file
        with opener(sink, table.schema) as writer:
            writer.write_table(table)
    return sink.getvalue()


def _bound_rows(rows: int) -> None:
    if rows > MAX_FILE_ROWS:
        raise refusal(400, ["file"], "too_long", f"the file has more than {MAX_FILE_ROWS} rows; split it")


def _bound_bytes(size: int) -> None:
    if size > MAX_DECODED_BYTES:
        raise refusal(400, ["file"], "too_large", f"the file decodes to more than {MAX_DECODED_BYTES} bytes; split it")


# ---- rules -----------------------------------------------------------------------------------------------------
def validate_table(spec: DatasetSpec, table: pa.Table) -> pa.Table:
    """The table's served columns (spec order), typed int64 / float64 / bool / dictionary text, or a 400 that
    lists every broken rule. Nullable features may be absent (they become null); id and sensitive columns may be
    absent (they stay absent, as in a JSON record)."""
    allowed = {c.name: c for c in served_columns(spec)}
    problems = [
        error_item(["file", name], EXTRA_FORBIDDEN, not_a_field(spec, name))
        for name in table.column_names
        if name not in allowed
    ]
    dupes = sorted({n for n in table.column_names if table.column_names.count(n) > 1})
    problems += [error_item(["file", n], "duplicate_column", "column appears more than once") for n in dupes]
    n = table.num_rows
    if n == 0:
        problems.append(error_item(["file"], "too_short", "the file has no rows"))
    out: dict[str, pa.Array] = {}
    for name, col in allowed.items():
        if name not in table.column_names or name in dupes:
            if col.is_feature and not col.nullable and name not in dupes:
                problems.append(error_item(["file", name], "missing", "required column is missing"))
            elif col.is_feature and name not in dupes:
                out[name] = pa.nulls(n, type=_arrow_type(col))
            continue
        array, found = _column_problems(spec, col, table.column(name))
        problems += found
        if array is not None:
            out[name] = array
    if problems:
        raise RequestRefused(400, problems)
    return pa.table(out)


def _arrow_type(col: Column) -> pa.DataType:
    return {"int64": pa.int64(), "float64": pa.float64(), "bool": pa.bool_()}.get(col.dtype, _TEXT_DICT)


def _column_problems(
    spec: DatasetSpec, col: Column, column: pa.ChunkedArray
) -> tuple[pa.Array | None, list[dict[str, Any]]]:
    """(the column in its served type, or None if it breaks a rule; the rules it breaks)."""
    array = column.combine_chunks()
    loc = ["file", col.name]
    if pa.types.is_dictionary(array.type) and col.dtype != "string":
        array = array.dictionary_decode()
    kind = array.type.value_type if pa.types.is_dictionary(array.type) else array.type
    if pa.types.is_null(kind):
        array = pa.nulls(len(array), type=_arrow_type(col))
        kind = _TEXT if col.dtype == "string" else array.type
    problems: list[dict[str, Any]]
    if col.dtype == "int64":
        if pa.types.is_floating(kind):  # whole numbers written as floats (pandas: an int column with a null)
            return _whole_floats(col, pc.cast(array, pa.float64()))
        if not pa.types.is_integer(kind):
            return None, [error_item(loc, "int_type", f"column should hold integers, not {array.type}")]
        problems = _range_problems(col, array)
        if kind == pa.uint64():
            too_big = pc.greater(array, pa.scalar(INT64_MAX, pa.uint64()))
            problems += _rule(
                col, "less_than_equal", f"Input should be less than or equal to {INT64_MAX}", too_big, array
            )
        typed = array if problems else pc.cast(array, pa.int64())
    elif col.dtype == "float64":
        if not (pa.types.is_floating(kind) or pa.types.is_integer(kind)):
            return None, [error_item(loc, "float_type", f"column should hold numbers, not {array.type}")]
        typed = pc.cast(array, pa.float64())
        finite = pc.invert(pc.is_finite(typed))
        problems = _rule(col, "finite_number", "Input should be a finite number", finite, typed)
        problems += _range_problems(col, typed)
    elif col.dtype == "bool":
        if not pa.types.is_boolean(kind):
            return None, [error_item(loc, "bool_type", f"column should hold booleans, not {array.type}")]
        typed, problems = array, []
    else:
        if col.integer_coded and pa.types.is_integer(kind):  # codes as numbers: the same codes as text
            array = pc.cast(array.dictionary_decode() if pa.types.is_dictionary(array.type) else array, _TEXT)
            kind = _TEXT
        elif col.bool_coded and pa.types.is_boolean(kind):  # a flag: true is the category "True"
            array = pc.if_else(array, pa.scalar("True", _TEXT), pa.scalar("False", _TEXT))
            kind = _TEXT
        if not (pa.types.is_string(kind) or pa.types.is_large_string(kind)):
            return None, [error_item(loc, "string_type", f"column should hold text, not {array.type}")]
        typed, problems = _text_column(spec, col, array)
    if not col.nullable and typed.null_count:
        rule = {"int64": "int_type", "float64": "float_type", "bool": "bool_type"}.get(col.dtype, "string_type")
        problems += _rule(col, rule, "null in a non-nullable column", pc.is_null(typed), None)
    return (None if problems else typed), problems


def _whole_floats(col: Column, array: pa.Array) -> tuple[pa.Array | None, list[dict[str, Any]]]:
    """An integer column sent as floats: every value whole (58.0), as landing takes it, then int64. NaN is a
    missing value, as pandas writes one (and landing reads it)."""
    array = pc.if_else(pc.is_nan(array), pa.scalar(None, pa.float64()), array)
    finite = pc.is_finite(array)
    fraction = pc.and_(finite, pc.not_equal(pc.floor(array), array))
    problems = _rule(
        col, "int_from_float", "Input should be a valid integer, got a number with a fractional part", fraction, array
    )
    problems += _rule(col, "int_type", "Input should be a valid integer", pc.invert(finite), array)
    problems += _range_problems(col, array)
    if not problems:  # whole and within the spec's range: still within int64?
        outside = pc.or_(pc.less(array, pa.scalar(-(2.0**63))), pc.greater_equal(array, pa.scalar(2.0**63)))
        problems = _rule(col, "less_than_equal", f"Input should be less than or equal to {INT64_MAX}", outside, array)
    if problems:
        return None, problems
    typed = pc.cast(array, pa.int64())
    if not col.nullable and typed.null_count:
        return None, _rule(col, "int_type", "null in a non-nullable column", pc.is_null(typed), None)
    return typed, []


def _range_problems(col: Column, array: pa.Array) -> list[dict[str, Any]]:
    """The spec's range (the JSON schema's ge/le); numbers are compared as float64, exact below 2**53."""
    lo = col.range.min if col.range is not None else None
    hi = col.range.max if col.range is not None else None
    values = array if pa.types.is_floating(array.type) else pc.cast(array, pa.float64(), safe=False)
    out = []
    if lo is not None:
        below = pc.less(values, pa.scalar(float(lo)))
        out += _rule(col, "greater_than_equal", f"Input should be greater than or equal to {_num(lo)}", below, array)
    if hi is not None:
        above = pc.greater(values, pa.scalar(float(hi)))
        out += _rule(col, "less_than_equal", f"Input should be less than or equal to {_num(hi)}", above, array)
    return out


def _text_column(spec: DatasetSpec, col: Column, array: pa.Array) -> tuple[pa.Array, list[dict[str, Any]]]:
    """Trimmed, dictionary-encoded text; rules checked once per distinct value."""
    encoded = array if pa.types.is_dictionary(array.type) else pc.dictionary_encode(array)
    uniques = pc.utf8_trim_whitespace(encoded.dictionary.cast(_TEXT))
    indices = encoded.indices.cast(pa.int32())
    typed = pa.DictionaryArray.from_arrays(indices, uniques)
    limit = category_max_chars(spec) if col.categories else ID_MAX_CHARS
    lengths = pc.utf8_length(uniques)
    if col.nullable:  # blank text is missing, as landing reads it
        blank = pc.indices_nonzero(pc.equal(lengths, 0)).cast(pa.int32())
        if len(blank):
            indices = pc.if_else(pc.is_in(indices, blank), pa.scalar(None, pa.int32()), indices)
            typed = pa.DictionaryArray.from_arrays(indices, uniques)
    checks = [
        ("string_too_short", "String should have at least 1 non-space character", pc.equal(lengths, 0)),
        (
            "string_too_long",
            f"String should have at most {limit} characters (after trimming)",
            pc.greater(lengths, limit),
        ),
    ]
    if col.categories and col.unknown_category == "reject":
        known = pa.array(col.categories, type=_TEXT)
        checks.append(
            ("literal_error", f"Input should be one of {col.categories}", pc.invert(pc.is_in(uniques, known)))
        )
    problems = []
    for rule, msg, bad_unique in checks:
        bad_codes = pc.indices_nonzero(pc.fill_null(bad_unique, False)).cast(pa.int32())
        if len(bad_codes):
            problems += _rule(col, rule, msg, pc.is_in(indices, bad_codes), typed)
    return typed, problems


def _rule(col: Column, rule: str, msg: str, bad: pa.Array, values: pa.Array | None) -> list[dict[str, Any]]:
    """One error item if any row is ``bad``: the rule, how many rows break it and the first one (and its value)."""
    rows = pc.indices_nonzero(pc.fill_null(bad, False))
    if not len(rows):
        return []
    first = rows[0].as_py()
    value = values[first].as_py() if values is not None else None
    return [error_item(["file", col.name], rule, f"{msg} ({len(rows)} rows, first at row {first})", value)]


def _num(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)


# ---- model input and output ------------------------------------------------------------------------------------
def model_frame(spec: DatasetSpec, table: pa.Table) -> pd.DataFrame:
    """The validated table's feature columns typed like the training data, as the model expects.

    Text columns become object columns gathered from their few distinct values (one pointer copy per row),
    which the model's preprocessing maps to codes without decoding a string per row.
    """
    data: dict[str, Any] = {}
    for c in spec.feature_columns:
        array = table.column(c.name).combine_chunks()
        if pa.types.is_dictionary(array.type):
            uniques = np.append(array.dictionary.to_numpy(zero_copy_only=False), None)
            codes = pc.fill_null(array.indices, -1).to_numpy(zero_copy_only=False)  # -1: the trailing None
            data[c.name] = uniques[codes]
        elif c.dtype == "int64":
            values = pc.fill_null(array, 0).to_numpy(zero_copy_only=False)
            data[c.name] = pd.arrays.IntegerArray(values, pc.is_null(array).to_numpy(zero_copy_only=False))
        elif c.dtype == "float64":
            data[c.name] = array.to_numpy(zero_copy_only=False)
        else:
            data[c.name] = array.to_pandas()
    return pd.DataFrame(data, copy=False)


def scores_table(
    spec: DatasetSpec,
    inputs: pa.Table,
    request_ids: pa.Array,
    probabilities: np.ndarray,
    labels: np.ndarray,
    model_tag: str,
    threshold: float,
) -> pa.Table:
    """The answer to a file: the id column if it was sent, request_id, probability and label, one row per input
    row in order; the model tag and threshold in the schema metadata."""
    columns: dict[str, Any] = {}
    if spec.id.name in inputs.column_names:
        columns[spec.id.name] = inputs.column(spec.id.name)
    columns |= {
        "request_id": request_ids,
        "probability": pa.array(probabilities, type=pa.float64()),
        "label": pa.array(labels, type=pa.int8()),
    }
    table = pa.table(columns)
    return table.replace_schema_metadata({MODEL_TAG_KEY: model_tag.encode(), THRESHOLD_KEY: repr(threshold).encode()})
