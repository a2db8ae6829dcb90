"""The HTTP schema generated from the spec, its limits, and the micro-batcher (no server needed)."""

from __future__ import annotations

import asyncio
import json
import re
import time

import pandas as pd
import pyarrow as pa
import pytest
from pydantic import ValidationError

from ml_assets.dataset import DatasetSpec, Role
from ml_assets.serving.columnar import validate_table
from ml_assets.serving.schema import (
    ERROR_INPUT_MAX_CHARS,
    INT64_MAX,
    WHITESPACE,
    RequestRefused,
    categories_pattern,
    category_max_chars,
    records_frame,
    request_id_prefix,
    request_schemas,
    text_pattern,
    validation_refusal,
    warmup_record,
)
from ml_assets.serving.scoring import MicroBatcher

GOOD = {
    "age": 42,
    "workclass": "Private",
    "fnlwgt": 139126,
    "education": "Some-college",
    "education_num": 10,
    "marital_status": "Married-civ-spouse",
    "occupation": "Tech-support",
    "relationship": "Husband",
    "capital_gain": 0,
    "capital_loss": 0,
    "hours_per_week": 40,
    "native_country": "United-States",
}


def record(spec: DatasetSpec, data: dict) -> dict:
    return request_schemas(spec).record_adapter.validate_python(data)


def errors(spec: DatasetSpec, data: dict) -> list[tuple[tuple, str]]:
    with pytest.raises(ValidationError) as e:
        record(spec, data)
    return [(err["loc"], err["type"]) for err in e.value.errors()]


def test_schema_has_the_features_and_optional_id_and_sensitive_fields(adult_spec: DatasetSpec):
    schema = request_schemas(adult_spec).record_adapter.json_schema()
    props = schema["properties"]
    features = [c.name for c in adult_spec.feature_columns]
    extras = {adult_spec.id.name, *adult_spec.sensitive_columns}
    assert set(props) == set(features) | extras
    assert {adult_spec.time.name, adult_spec.target.name}.isdisjoint(props)  # time and target are not inputs
    assert extras.isdisjoint(schema["required"]) and "never a model input" in props[adult_spec.id.name]["description"]
    assert schema["additionalProperties"] is False
    assert props["age"]["type"] == "integer" and (props["age"]["minimum"], props["age"]["maximum"]) == (17, 100)
    assert props["education"]["x-categories"] == adult_spec.column("education").categories
    limit = category_max_chars(adult_spec)
    assert limit == len("Outlying-US(Guam-USVI-etc)")
    assert props["education"]["pattern"] == text_pattern(limit, blank_allowed=False)
    assert props["workclass"]["anyOf"][0]["pattern"] == text_pattern(limit, blank_allowed=True)
    assert props[adult_spec.id.name]["maximum"] == INT64_MAX  # the id has no range in the spec: int64 bounds it
    required = set(schema["required"])
    assert "workclass" not in required and "age" in required  # nullable columns may be omitted


def test_request_bodies_are_inlined_json_schemas(adult_spec: DatasetSpec):
    s = request_schemas(adult_spec)
    batch = s.json_schema(s.predict_batch)
    assert "$defs" not in json.dumps(batch) and "$ref" not in json.dumps(batch)
    assert batch["properties"]["records"]["maxItems"] == 4096
    assert batch["properties"]["records"]["items"]["additionalProperties"] is False


@pytest.mark.parametrize(
    ("change", "loc", "rule"),
    [
        ({"age": None}, ("age",), "int_type"),
        ({"age": 300}, ("age",), "less_than_equal"),
        ({"age": 3}, ("age",), "greater_than_equal"),
        ({"age": "42"}, ("age",), "int_type"),
        ({"age": 42.5}, ("age",), "int_from_float"),
        ({"age": 300.0}, ("age",), "less_than_equal"),
        ({"education": 7}, ("education",), "string_type"),
        ({"education": "  "}, ("education",), "string_too_short"),
        ({"education": "x" * 27}, ("education",), "string_too_long"),
        ({"native_country": "x" * 8_000_000}, ("native_country",), "string_too_long"),
        ({"hours_per_week": True}, ("hours_per_week",), "int_type"),
        ({"salary": 1}, ("salary",), "extra_forbidden"),
        ({"income": ">50K"}, ("income",), "extra_forbidden"),  # the target is never an input
        ({"record_id": 2**63}, ("record_id",), "less_than_equal"),
        ({"sex": "x" * 27}, ("sex",), "string_too_long"),
    ],
)
def test_bad_values_name_the_field_and_the_rule(adult_spec: DatasetSpec, change, loc, rule):
    assert errors(adult_spec, {**GOOD, **change}) == [(loc, rule)]


def test_nullable_features_default_to_null_and_extras_stay_absent(adult_spec: DatasetSpec):
    assert errors(adult_spec, {k: v for k, v in GOOD.items() if k != "education"}) == [(("education",), "missing")]
    rec = record(adult_spec, {k: v for k, v in GOOD.items() if k != "occupation"})
    assert rec["occupation"] is None  # nullable: scored (and logged) as missing
    assert adult_spec.id.name not in rec and "sex" not in rec  # not sent: absent, also from the log
    full = record(adult_spec, {**GOOD, "record_id": 7, "sex": " Female ", "race": "White"})
    assert (full["record_id"], full["sex"], full["race"]) == (7, "Female", "White")


def test_unknown_category_follows_the_spec(adult_spec: DatasetSpec):
    assert record(adult_spec, {**GOOD, "native_country": "Atlantis"})["native_country"] == "Atlantis"
    strict = adult_spec.model_copy(deep=True)
    for col in strict.columns:
        col.unknown_category = "reject"
    strict = type(adult_spec).model_validate(strict.model_dump())
    assert errors(strict, {**GOOD, "native_country": "Atlantis"}) == [(("native_country",), "literal_error")]
    schema = request_schemas(strict).record_adapter.json_schema()
    categories = adult_spec.column("education").categories
    assert schema["properties"]["education"]["pattern"] == categories_pattern(categories, blank_allowed=False)
    assert record(strict, {**GOOD, "education": " Bachelors  "})["education"] == "Bachelors"  # landing trims


def test_values_landing_accepts_are_accepted_as_landing_reads_them(adult_spec: DatasetSpec):
    """A whole number written as a float (pandas: an integer column with a missing value) is that integer; text is
    trimmed; whitespace only is missing where the column is nullable and refused where it is not, as landing
    reads blank text as missing (``ml_assets.dataset._cast``)."""
    rec = record(adult_spec, {**GOOD, "age": 58.0, "record_id": 7.0, "workclass": " \t ", "occupation": "\u3000"})
    assert (rec["age"], rec["record_id"]) == (58, 7) and type(rec["age"]) is int
    assert rec["workclass"] is None and rec["occupation"] is None
    assert record(adult_spec, {**GOOD, "education": "  Bachelors \n"})["education"] == "Bachelors"
    assert errors(adult_spec, {**GOOD, "education": " \u00a0 "}) == [(("education",), "string_too_short")]
    assert errors(adult_spec, {**GOOD, "sex": "   "}) == [(("sex",), "string_too_short")]  # optional, not nullable
    frame = records_frame(adult_spec, [rec])
    assert str(frame["age"].dtype) == "Int64" and frame["workclass"].isna().all()


def test_the_published_schema_and_the_validation_agree_on_every_text(adult_spec: DatasetSpec):
    """Both ways: a value the published pattern accepts is accepted, one it refuses is refused; over every text
    of up to three characters from whitespace of every kind and letters, and texts around the length limit."""
    strict = type(adult_spec).model_validate(
        {**adult_spec.model_dump(), "columns": [
            {**c.model_dump(), "unknown_category": "reject"} if c.name == "race" else c.model_dump()
            for c in adult_spec.columns
        ]}
    )  # fmt: skip
    assert all(not chr(c).isspace() for c in range(0x3001, 0x110000)), "WHITESPACE is every whitespace"
    schema = request_schemas(strict).record_adapter.json_schema()["properties"]
    limit = category_max_chars(adult_spec)
    alphabet = [" ", "\t", "\n", "\x1c", "\u00a0", "\u3000", "a", "Z"]
    texts = [""] + alphabet + [a + b for a in alphabet for b in alphabet]
    texts += [a + b + c for a in alphabet[::2] for b in alphabet for c in alphabet[1::2]]
    texts += [" " + "x" * limit + " ", "x" * (limit + 1), " Black ", "Black\t", "black", "Wh ite"]
    for name in ("education", "workclass", "race"):  # required, nullable, closed domain
        field = schema[name]
        pattern = (field["anyOf"][0] if "anyOf" in field else field)["pattern"]
        for text in texts:
            published = re.search(pattern, text) is not None
            try:
                record(strict, {**GOOD, name: text})
                accepted = True
            except ValidationError:
                accepted = False
            assert published == accepted, (name, text, published, accepted)
    assert set(WHITESPACE) >= {" ", "\t", "\x1c", "\u3000"}


def test_request_id_header_rules():
    assert request_id_prefix(None) == ""
    assert request_id_prefix("client-7.a_b~C") == "client-7.a_b~C"
    for bad in ("", "has space", "x" * 65, "é", 'quo"te', "new\nline"):
        with pytest.raises(RequestRefused) as e:
            request_id_prefix(bad)
        assert e.value.status == 400 and e.value.detail[0]["loc"] == ["header", "X-Request-ID"]
    with pytest.raises(RequestRefused) as e:
        request_id_prefix("x" * 8192)
    assert "input" not in e.value.detail[0]  # a long value is never echoed back


def test_refusals_drop_long_inputs_and_library_context(adult_spec: DatasetSpec):
    with pytest.raises(ValidationError) as e:
        record(adult_spec, {**GOOD, "education": "x" * 1000, "age": 300})
    detail = validation_refusal(e.value, adult_spec).detail
    assert {d["type"] for d in detail} == {"string_too_long", "less_than_equal"}
    long, age = sorted(detail, key=lambda d: d["type"] != "string_too_long")
    assert "input" not in long and age["input"] == 300 and ERROR_INPUT_MAX_CHARS >= 3
    assert all(set(d) <= {"loc", "type", "msg", "input"} for d in detail)
    json.dumps(detail)  # plain JSON, ready for the 400 body


def test_a_source_row_as_it_is_is_refused_saying_what_its_extra_fields_are(adult_spec: DatasetSpec):
    """A caller that sends a row of the source file as it is sends the target and the time column too."""
    time = next(c.name for c in adult_spec.columns if c.role == Role.TIME)
    with pytest.raises(ValidationError) as e:
        record(adult_spec, {**GOOD, "income": ">50K", time: "2026-03-01T10:00:00", "salary": 1})
    why = {d["loc"][-1]: d["msg"] for d in validation_refusal(e.value, adult_spec).detail}
    assert "'income' is the spec's target" in why["income"]
    assert f"{time!r} is the spec's time column" in why[time] and "leave it out" in why[time]
    assert "'salary' is not a field of the record" in why["salary"]


def test_records_frame_is_typed_like_training_data_and_ignores_non_features(adult_spec: DatasetSpec):
    recs = [
        record(adult_spec, {**GOOD, "record_id": 1, "sex": "Male"}),
        record(adult_spec, {**GOOD, "occupation": None}),
    ]
    frame = records_frame(adult_spec, recs)
    assert list(frame.columns) == [c.name for c in adult_spec.feature_columns]
    assert str(frame["age"].dtype) == "Int64" and str(frame["education"].dtype) == "string"
    assert frame["occupation"].isna().tolist() == [False, True]
    record(adult_spec, warmup_record(adult_spec))  # the warm-up record is valid by construction


def test_records_frame_equals_per_value_pandas_construction(adult_spec: DatasetSpec):
    from ml_assets.dataset import PANDAS_DTYPES

    recs = [
        record(adult_spec, GOOD),
        record(adult_spec, {**GOOD, "occupation": None, "native_country": "Atlantis"}),
        {k: v for k, v in GOOD.items() if k != "capital_gain"},  # a record lacking a field: null there
    ]
    want = pd.DataFrame(
        {
            c.name: pd.array([r.get(c.name) for r in recs], dtype=PANDAS_DTYPES[c.dtype])
            for c in adult_spec.feature_columns
        }
    )
    pd.testing.assert_frame_equal(records_frame(adult_spec, recs), want)
    pd.testing.assert_frame_equal(records_frame(adult_spec, recs[:2]), want.iloc[:2])


def test_micro_batcher_coalesces_concurrent_calls_and_keeps_order():
    calls: list[int] = []

    runs_seen: list[list[tuple[str, int]]] = []

    def fn(items: list[int], runs: list[tuple[str, int]]) -> list[int]:
        calls.append(len(items))
        runs_seen.append(runs)
        time.sleep(0.01)
        return [i * 2 for i in items]

    async def run() -> tuple[list, list]:
        b = MicroBatcher(fn, max_rows=16)
        singles = asyncio.gather(*(b.submit([i], f"s{i}") for i in range(50)))
        lists = asyncio.gather(*(b.submit([100 + i, 200 + i, 300 + i], f"l{i}") for i in range(5)))
        return await singles, await lists

    singles, lists = asyncio.run(run())
    assert singles == [[i * 2] for i in range(50)]
    assert lists == [[200 + 2 * i, 400 + 2 * i, 600 + 2 * i] for i in range(5)]  # each request its own rows
    assert sum(calls) == 65 and max(calls) <= 16 and len(calls) < 10
    assert [key for runs in runs_seen for key, _ in runs] == [f"s{i}" for i in range(50)] + [f"l{i}" for i in range(5)]
    assert all(sum(n for _, n in runs) == c for runs, c in zip(runs_seen, calls, strict=True))


def test_micro_batcher_runs_small_batches_on_the_loop_and_large_ones_on_a_thread():
    import threading

    threads: list[str] = []

    def fn(items: list[int], runs: list) -> list[int]:
        threads.append(threading.current_thread().name)
        return items

    async def run() -> None:
        b = MicroBatcher(fn, max_rows=100, inline_rows=4)
        await b.submit([1, 2], "")
        await b.submit(list(range(10)), "")

    asyncio.run(run())
    assert threads[0] == threading.main_thread().name and threads[1] != threading.main_thread().name


def test_micro_batcher_passes_model_errors_to_every_caller():
    def fn(items: list[int], runs: list) -> list[int]:
        raise RuntimeError("model broke")

    async def run():
        b = MicroBatcher(fn, max_rows=4)
        return await asyncio.gather(*(b.submit([i], "") for i in range(3)), return_exceptions=True)

    assert all(isinstance(r, RuntimeError) for r in asyncio.run(run()))


def test_a_flag_column_takes_json_booleans_and_its_text_as_the_same_category(adult_spec: DatasetSpec):
    """A category column landed as booleans (landed: bool, categories "False" / "True"): true and "True" are the
    same category in a JSON record and in a file's boolean column; a number is refused."""
    raw = adult_spec.model_dump()
    flag = {"name": "member", "role": "categorical", "dtype": "string", "landed": "bool"}
    raw["columns"].append(flag | {"categories": ["False", "True"], "unknown_category": "reject"})
    spec = DatasetSpec.model_validate(raw)
    good = {**GOOD, "member": False}
    assert record(spec, {**GOOD, "member": True})["member"] == "True"
    assert record(spec, {**GOOD, "member": " True "})["member"] == "True"
    assert record(spec, good)["member"] == "False"
    assert ("member",) in [loc[:1] for loc, _ in errors(spec, {**GOOD, "member": 1})]
    assert records_frame(spec, [record(spec, good)])["member"].tolist() == ["False"]
    record(spec, warmup_record(spec))
    table = pa.Table.from_pylist([{k: v for k, v in good.items()} | {"member": m} for m in (True, False)])
    assert validate_table(spec, table).column("member").to_pylist() == ["True", "False"]
    assert spec.landed_form(spec.column("member"), pd.Series(["True", None])).tolist() == [True, pd.NA]


def test_a_refused_integer_code_is_one_item_at_the_fields_path(adult_spec: DatasetSpec):
    """A code takes 3, 3.0 or "3", so pydantic refuses each form under a loc of its own making
    (``function-before[_whole_number(), constrained-int]``): two items no caller can act on. One item, at the
    field's path, says both."""
    raw = adult_spec.model_dump()
    raw["columns"].append({"name": "group", "role": "sensitive", "dtype": "string", "landed": "int64",
                           "categories": ["0", "1"]})  # fmt: skip
    spec = DatasetSpec.model_validate(raw)
    for bad, rule in ((None, "int_type"), (1.5, "int_from_float"), ([1], "int_type")):
        with pytest.raises(ValidationError) as e:
            record(spec, {**GOOD, "group": bad})
        [item] = validation_refusal(e.value, spec).detail
        assert item["loc"] == ["group"] and item["type"] == rule and "or input should be a valid string" in item["msg"]
    batch = request_schemas(spec).predict_batch  # a list of records: the row's index stays in the path
    with pytest.raises(ValidationError) as e:
        batch.validate_python({"records": [{**GOOD, "group": 1}, {**GOOD, "group": 2.5}]})
    assert [d["loc"] for d in validation_refusal(e.value, spec).detail] == [["records", 1, "group"]]


def test_a_column_the_spec_leaves_out_is_refused_saying_why(adult_spec: DatasetSpec):
    """Sent as the source holds it, a row carries the columns infer left out (a leak, a row number): the 400 says
    why each is no input instead of calling it unknown, and landing expects it (no unexpected_columns warning)."""
    spec = adult_spec.model_copy(update={"left_out": {"rownames": "integers unique on every row: a row number"}})
    with pytest.raises(ValidationError) as e:
        record(spec, {**GOOD, "rownames": 7, "salary": 1})
    why = {d["loc"][-1]: d["msg"] for d in validation_refusal(e.value, spec).detail}
    assert why["rownames"] == "'rownames' is left out of the model's inputs (integers unique on every row: a row " \
        "number): leave it out"  # fmt: skip
    assert "not a field of the record" in why["salary"]
    assert spec.unexpected(pd.DataFrame(columns=[*spec.column_names, "rownames", "salary"])) == ["salary"]
    with pytest.raises(ValueError, match="left_out names"):
        DatasetSpec.model_validate({**adult_spec.model_dump(), "left_out": {"age": "no"}})


def test_a_column_named_like_the_request_wrapper_keeps_each_refusal_at_its_own_path(adult_spec: DatasetSpec):
    """The path is read by the request's shape, not by column names: a column named ``record`` must not swallow
    the record's other refusals."""
    raw = adult_spec.model_dump()
    raw["columns"].append({"name": "record", "role": "numeric", "dtype": "float64", "nullable": True})
    spec = DatasetSpec.model_validate(raw)
    with pytest.raises(ValidationError) as e:
        request_schemas(spec).predict.validate_python({"record": {**GOOD, "extra1": 1, "extra2": 2}})
    assert [d["loc"] for d in validation_refusal(e.value, spec).detail] == [["record", "extra1"], ["record", "extra2"]]
