"""The HTTP schema generated from the spec, the prediction log and the micro-batcher (no server needed)."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pandas as pd
import pytest
from pydantic import ValidationError

from bento.prediction_log import PredictionLog, _open_exclusive, read_day, utc_now
from bento.scoring import MicroBatcher
from ml_assets.dataset import DatasetSpec
from ml_assets.serving.schema import record_model, records_frame, unknown_categories, warmup_record

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


def errors(model, data) -> list[tuple[tuple, str]]:
    with pytest.raises(ValidationError) as e:
        model.model_validate(data)
    return [(err["loc"], err["type"]) for err in e.value.errors()]


def test_schema_has_exactly_the_feature_columns_with_types_ranges_and_categories(adult_spec: DatasetSpec):
    schema = record_model(adult_spec).model_json_schema()
    props = schema["properties"]
    assert list(props) == [c.name for c in adult_spec.feature_columns]
    assert {"record_id", "event_time", "income", "race", "sex"}.isdisjoint(props)  # ids, time, target, sensitive
    assert schema["additionalProperties"] is False
    assert props["age"]["type"] == "integer" and (props["age"]["minimum"], props["age"]["maximum"]) == (17, 100)
    assert props["education"]["x-categories"] == adult_spec.column("education").categories
    assert "unknown" in props["education"]["description"]
    required = set(schema["required"])
    assert "workclass" not in required and "age" in required  # nullable columns may be omitted


@pytest.mark.parametrize(
    ("change", "loc", "rule"),
    [
        ({"age": None}, ("age",), "int_type"),
        ({"age": 300}, ("age",), "less_than_equal"),
        ({"age": 3}, ("age",), "greater_than_equal"),
        ({"age": "42"}, ("age",), "int_type"),
        ({"age": 42.5}, ("age",), "int_type"),
        ({"education": 7}, ("education",), "string_type"),
        ({"education": "  "}, ("education",), "string_too_short"),
        ({"hours_per_week": True}, ("hours_per_week",), "int_type"),
        ({"salary": 1}, ("salary",), "extra_forbidden"),
    ],
)
def test_bad_values_name_the_field_and_the_rule(adult_spec: DatasetSpec, change, loc, rule):
    assert errors(record_model(adult_spec), {**GOOD, **change}) == [(loc, rule)]


def test_missing_required_field_and_nullable_field(adult_spec: DatasetSpec):
    model = record_model(adult_spec)
    assert errors(model, {k: v for k, v in GOOD.items() if k != "education"}) == [(("education",), "missing")]
    ok = model.model_validate({k: v for k, v in GOOD.items() if k != "occupation"})
    assert ok.occupation is None  # nullable: the model scores it as missing


def test_unknown_category_follows_the_spec(adult_spec: DatasetSpec):
    lenient = record_model(adult_spec)  # adult: map_to_unknown
    rec = lenient.model_validate({**GOOD, "native_country": "Atlantis"}).__dict__
    assert unknown_categories(adult_spec, rec) == ["native_country"]
    strict_spec = adult_spec.model_copy(deep=True)
    for col in strict_spec.columns:
        col.unknown_category = "reject"
    strict_spec = type(adult_spec).model_validate(strict_spec.model_dump())
    strict = record_model(strict_spec)
    assert errors(strict, {**GOOD, "native_country": "Atlantis"}) == [(("native_country",), "literal_error")]
    assert strict.model_json_schema()["properties"]["education"]["enum"] == adult_spec.column("education").categories


def test_records_frame_is_typed_like_training_data(adult_spec: DatasetSpec):
    model = record_model(adult_spec)
    recs = [model.model_validate(GOOD).__dict__, model.model_validate({**GOOD, "occupation": None}).__dict__]
    frame = records_frame(adult_spec, recs)
    assert str(frame["age"].dtype) == "Int64" and str(frame["education"].dtype) == "string"
    assert frame["occupation"].isna().tolist() == [False, True]
    model.model_validate(warmup_record(adult_spec))  # the warm-up record is valid by construction


def test_prediction_log_writes_day_files_and_never_shares_a_file(tmp_path: Path):
    log = PredictionLog(tmp_path, flush_interval_s=60)  # no background flush: flush() below is the only write
    now = utc_now()
    log.append([{"request_id": "a", "time": now, "model_tag": "m:1", "inputs": GOOD, "probability": 0.2, "label": 0}])
    log.append([{"request_id": "b", "time": "2026-01-02T00:00:01+00:00", "model_tag": "m:1", "inputs": {},
                 "probability": 0.9, "label": 1}])  # fmt: skip
    assert log.flush() == 2
    assert [e["request_id"] for e in read_day(tmp_path, now.date())] == ["a"]
    assert read_day(tmp_path, "2026-01-02")[0]["probability"] == 0.9
    assert (tmp_path / now.date().isoformat() / f"{os.getpid()}.jsonl").exists()
    # a second writer that picks the same name (same pid) gets its own file: the first holds an exclusive lock
    other = _open_exclusive(tmp_path / now.date().isoformat(), str(os.getpid()))
    assert Path(other.name).name == f"{os.getpid()}-1.jsonl"
    other.close()
    log.close()


def test_a_killed_writer_loses_at_most_the_last_second(tmp_path: Path):
    script = textwrap.dedent(
        f"""
        import time
        from bento.prediction_log import PredictionLog, utc_now
        log = PredictionLog({str(tmp_path)!r}, flush_interval_s=0.5)
        i = 0
        while True:
            log.append([{{"request_id": str(i), "time": utc_now(), "model_tag": "m:1", "inputs": {{}},
                          "probability": 0.5, "label": 1}}])
            print(i, flush=True)
            i += 1
            time.sleep(0.01)
        """
    )
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        time.sleep(3.0)
        os.kill(proc.pid, signal.SIGKILL)
        printed = proc.stdout.read().split()
    finally:
        proc.kill()
        proc.wait()
    appended = int(printed[-1]) + 1
    logged = [e for day in tmp_path.iterdir() for e in read_day(tmp_path, day.name)]
    assert appended > 100
    # everything appended more than ~1 s before the kill is on disk (at 100 appends/s: <= ~100 lost)
    assert len(logged) >= appended - 100, (len(logged), appended)
    assert [int(e["request_id"]) for e in logged] == list(range(len(logged)))


def test_micro_batcher_coalesces_concurrent_calls_and_keeps_order():
    calls: list[int] = []

    def fn(items: list[int]) -> list[int]:
        calls.append(len(items))
        time.sleep(0.01)
        return [i * 2 for i in items]

    async def run() -> list[int]:
        b = MicroBatcher(fn, max_rows=16)
        singles = asyncio.gather(*(b.submit([i]) for i in range(50)))
        lists = asyncio.gather(*(b.submit([100 + i, 200 + i, 300 + i]) for i in range(5)))
        return await singles, await lists

    singles, lists = asyncio.run(run())
    assert singles == [[i * 2] for i in range(50)]
    assert lists == [[200 + 2 * i, 400 + 2 * i, 600 + 2 * i] for i in range(5)]  # each request its own rows
    assert sum(calls) == 65 and max(calls) <= 16 and len(calls) < 10


def test_micro_batcher_passes_model_errors_to_every_caller():
    def fn(items: list[int]) -> list[int]:
        raise RuntimeError("model broke")

    async def run():
        b = MicroBatcher(fn, max_rows=4)
        return await asyncio.gather(*(b.submit([i]) for i in range(3)), return_exceptions=True)

    assert all(isinstance(r, RuntimeError) for r in asyncio.run(run()))


def test_log_lines_are_json(tmp_path: Path):
    log = PredictionLog(tmp_path, flush_interval_s=0.05)
    log.append([{"request_id": "x", "time": utc_now(), "model_tag": "m", "inputs": {"a": pd.NA is None},
                 "probability": 0.1, "label": 0}])  # fmt: skip
    time.sleep(0.3)
    files = list(tmp_path.rglob("*.jsonl"))
    assert len(files) == 1 and json.loads(files[0].read_text())["request_id"] == "x"
    log.close()


def test_records_frame_equals_per_value_pandas_construction(adult_spec: DatasetSpec):
    from ml_assets.dataset import PANDAS_DTYPES

    model = record_model(adult_spec)
    recs = [
        model.model_validate(GOOD).__dict__,
        model.model_validate({**GOOD, "occupation": None, "native_country": "Atlantis"}).__dict__,
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


def test_batch_log_lines_equal_entry_lines(tmp_path: Path):
    now = utc_now()
    inputs = [GOOD, {**GOOD, "occupation": None, "native_country": 'quo"te\n'}]
    log = PredictionLog(tmp_path, flush_interval_s=60)
    log.append_batch(now, "m:1", ["abc123", 'x-"odd" id'], inputs, [0.25, 1e-05], [0, 1])
    log.append([{"request_id": "e", "time": now, "model_tag": "m:1", "inputs": GOOD, "probability": 0.5, "label": 1}])
    assert log.flush() == 3
    log.close()
    lines = (tmp_path / now.date().isoformat() / f"{os.getpid()}.jsonl").read_text().splitlines()
    got = [json.loads(line) for line in lines]
    assert [list(e) for e in got] == [list(("request_id", "time", "model_tag", "inputs", "probability", "label"))] * 3
    assert got[:2] == [
        {"request_id": rid, "time": now.isoformat(), "model_tag": "m:1", "inputs": rec, "probability": p, "label": y}
        for rid, rec, p, y in zip(["abc123", 'x-"odd" id'], inputs, [0.25, 1e-05], [0, 1], strict=True)
    ]
