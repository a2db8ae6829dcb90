"""Bulk files: Arrow IPC and Parquet checked against the spec like JSON records, scored like them."""

from __future__ import annotations

import io

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from ml_assets.dataset import DatasetSpec
from ml_assets.datasets.samples import demo_training_set
from ml_assets.serving import columnar
from ml_assets.serving.schema import MAX_FILE_ROWS, RequestRefused, records_frame, request_schemas
from ml_assets.serving.scoring import Scorer
from tests.test_serving_schema import GOOD


def refused(spec: DatasetSpec, table: pa.Table) -> list[tuple[list, str]]:
    with pytest.raises(RequestRefused) as e:
        columnar.validate_table(spec, table)
    assert e.value.status == 400
    return [(d["loc"], d["type"]) for d in e.value.detail]


def good_rows(n: int = 5) -> list[dict]:
    return [{**GOOD, "age": 20 + i} for i in range(n)]


@pytest.mark.parametrize(
    ("change", "rule"),
    [
        ({"age": 300}, "less_than_equal"),
        ({"age": 5}, "greater_than_equal"),
        ({"education": "   "}, "string_too_short"),
        ({"education": "x" * 27}, "string_too_long"),
        ({"sex": "x" * 100}, "string_too_long"),
        ({"education": None}, "string_type"),
        ({"age": None}, "int_type"),
    ],
)
def test_a_broken_rule_names_column_rule_count_and_first_row(adult_spec: DatasetSpec, change: dict, rule: str):
    rows = [{**r, "sex": "Male"} for r in good_rows(6)]
    for i in (2, 4):
        rows[i] = {**rows[i], **change}
    column = next(iter(change))
    with pytest.raises(RequestRefused) as e:
        columnar.validate_table(adult_spec, pa.Table.from_pylist(rows))
    (item,) = e.value.detail
    assert (item["loc"], item["type"]) == (["file", column], rule)
    assert "(2 rows, first at row 2)" in item["msg"]


def test_columns_and_types(adult_spec: DatasetSpec):
    base = pa.Table.from_pylist(good_rows())
    assert refused(adult_spec, base.append_column("salary", pa.array([1] * 5))) == [
        (["file", "salary"], "extra_forbidden")
    ]
    assert refused(adult_spec, base.drop_columns(["age"])) == [(["file", "age"], "missing")]
    as_float = base.set_column(0, "age", pa.array([42.0] * 5))
    assert columnar.validate_table(adult_spec, as_float).column("age").to_pylist() == [42] * 5  # as landing takes it
    fraction = base.set_column(0, "age", pa.array([42.0, 42.5, 43.0, 44.0, 45.0]))
    assert refused(adult_spec, fraction) == [(["file", "age"], "int_from_float")]
    missing = base.set_column(0, "age", pa.array([42.0, float("nan"), 43.0, 44.0, 45.0]))
    assert refused(adult_spec, missing) == [(["file", "age"], "int_type")]  # NaN is missing: age is required
    as_int = base.set_column(1, "workclass", pa.array([1] * 5))
    assert refused(adult_spec, as_int) == [(["file", "workclass"], "string_type")]
    assert refused(adult_spec, base.slice(0, 0)) == [(["file"], "too_short")]
    too_big = base.set_column(0, "age", pa.array([2**64 - 1] * 5, type=pa.uint64()))
    assert "less_than_equal" in {t for _, t in refused(adult_spec, too_big)}


def test_valid_table_is_typed_trimmed_and_keeps_optional_fields_optional(adult_spec: DatasetSpec):
    rows = [{**r, "workclass": f"  {r['workclass']} "} for r in good_rows()]
    table = pa.Table.from_pylist(rows).drop_columns(["occupation"])  # nullable: may be absent
    table = table.set_column(0, "age", pa.array([30, 31, 32, 33, 34], type=pa.int8()))
    out = columnar.validate_table(adult_spec, table)
    assert out.column("age").type == pa.int64() and out.column("occupation").null_count == 5
    assert out.column("workclass").to_pylist() == ["Private"] * 5
    assert "sex" not in out.column_names and adult_spec.id.name not in out.column_names
    assert pa.types.is_dictionary(out.column("education").type)


def test_a_file_pandas_wrote_is_taken_as_landing_takes_it(adult_spec: DatasetSpec):
    """pandas writes an integer column with a missing value as floats (NaN for the missing one) and keeps blank
    text: a nullable integer column takes the whole floats and the NaN as missing, a nullable text column reads
    whitespace only as missing; the same rows land as the same values."""
    columns = [c.model_copy(update={"nullable": True}) if c.name == "capital_gain" else c for c in adult_spec.columns]
    spec = adult_spec.model_copy(update={"columns": columns})
    frame = pd.DataFrame(good_rows(3)).assign(capital_gain=[0, None, 7], workclass=["Private", "   ", None])
    assert str(frame["capital_gain"].dtype) == "float64"
    sink = io.BytesIO()
    frame.to_parquet(sink)
    table = columnar.read_table(sink.getvalue(), columnar.PARQUET)
    out = columnar.validate_table(spec, table)
    assert out.column("capital_gain").type == pa.int64() and out.column("capital_gain").to_pylist() == [0, None, 7]
    assert out.column("workclass").to_pylist() == ["Private", None, None]
    landed, failures = spec.coerce(frame)
    assert failures == {} and landed["capital_gain"].tolist() == [0, pd.NA, 7]
    assert landed["workclass"].tolist() == ["Private", pd.NA, pd.NA]


def test_model_frame_scores_like_json_records(adult_spec: DatasetSpec):
    from ml_assets.model.assets import BaselineConfig, fit_baseline

    splits = demo_training_set(adult_spec, 2000)
    model = fit_baseline(adult_spec, splits, BaselineConfig())
    names = [c.name for c in adult_spec.feature_columns] + [adult_spec.id.name, "sex"]
    rows = splits[names].astype(object).where(splits[names].notna(), None).to_dict("records")
    rows[3]["native_country"] = "Atlantis"
    recs = [request_schemas(adult_spec).record_adapter.validate_python(r) for r in rows]
    table = columnar.validate_table(adult_spec, pa.Table.from_pylist(rows))
    np.testing.assert_array_equal(
        model.predict_proba(columnar.model_frame(adult_spec, table)),
        model.predict_proba(records_frame(adult_spec, recs)),
    )
    scorer = Scorer(adult_spec, model, "m:1", log=None)
    scored = scorer.score_table(table, "client")
    json_scored = scorer.score(recs)
    assert scored.probabilities.tolist() == [p["probability"] for p in json_scored]
    ids = scored.request_ids.to_pylist()
    assert len(set(ids)) == len(ids) and all(i.startswith("client-") and i.endswith(f"-{k}") for k, i in enumerate(ids))


@pytest.mark.parametrize("kind", columnar.MEDIA_TYPES)
def test_files_round_trip_in_every_format(adult_spec: DatasetSpec, kind: str):
    table = pa.Table.from_pylist([{**r, "record_id": i} for i, r in enumerate(good_rows())])
    back = columnar.read_table(columnar.write_table(table, kind), kind)
    assert back.equals(table)
    out = columnar.scores_table(
        adult_spec, table, pa.array(["a", "b", "c", "d", "e"]), np.full(5, 0.5), np.ones(5, np.int8), "m:1", 0.5
    )
    answer = columnar.read_table(columnar.write_table(out, kind), kind)
    assert answer.column_names == ["record_id", "request_id", "probability", "label"]
    assert answer.schema.metadata[columnar.MODEL_TAG_KEY] == b"m:1"


def test_unreadable_and_oversized_files_are_refused_before_decoding(adult_spec: DatasetSpec):
    with pytest.raises(RequestRefused) as e:
        columnar.read_table(b"not parquet", columnar.PARQUET)
    assert e.value.detail[0]["type"] == "file_invalid"
    with pytest.raises(RequestRefused) as e:
        columnar.media_type("text/csv")
    assert e.value.status == 415
    assert columnar.media_type("application/vnd.apache.parquet; charset=binary") == columnar.PARQUET
    big = pa.table({"age": pa.array(np.zeros(MAX_FILE_ROWS + 1, dtype=np.int8))})
    sink = io.BytesIO()
    pq.write_table(big, sink, compression="zstd")
    with pytest.raises(RequestRefused) as e:
        columnar.read_table(sink.getvalue(), columnar.PARQUET)  # refused from the footer, never decoded
    assert e.value.detail[0]["type"] == "too_long"


def test_a_day_of_features_validates_like_a_file(adult_spec: DatasetSpec):
    """The batch asset's input: the features table (typed by the spec, with its extra columns dropped)."""
    splits = demo_training_set(adult_spec, 300)
    served = [c.name for c in columnar.served_columns(adult_spec)]
    table = pa.Table.from_pandas(splits[served], preserve_index=False)
    out = columnar.validate_table(adult_spec, table)
    assert out.num_rows == 300 and out.column_names == served
    assert isinstance(columnar.model_frame(adult_spec, out), pd.DataFrame)
