"""Integration: a real Bento of a real model under ``bentoml serve`` on a free loopback port, real HTTP.

One server per module (start-up takes seconds); it is stopped with its whole process tree in the fixture
teardown even on failure. Covers the published contract (``/docs.json``, refusals in its ErrorResponse form,
schemathesis over it), the limits, the prediction log and the bulk endpoint.
"""

from __future__ import annotations

import io
import json
import os
import signal
import stat
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import jsonschema
import numpy as np
import pandas as pd
import psutil
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from ml_assets.dataset import DatasetSpec
from ml_assets.model.refs import load_stored
from ml_assets.serving import columnar
from ml_assets.serving.assets import validation_sample
from ml_assets.serving.build import build_bento
from ml_assets.serving.prediction_log import read_day
from ml_assets.serving.schema import MAX_BATCH_ROWS, MAX_JSON_BODY_BYTES, category_max_chars, frame_records
from resources.model_store import ModelStore
from resources.process_tree import stop_tree
from tests.serving_support import adult_training_set, fit_logistic, save_model, serve

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[1]


@dataclass
class Served:
    url: str
    pid: int
    home: Path
    model_tag: str
    bento_tag: str
    records: list[dict]
    expected: np.ndarray
    threshold: float
    rows: pd.DataFrame


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory, adult_spec: DatasetSpec):
    home = tmp_path_factory.mktemp("serving_http")
    bentoml_home = home / "bentoml"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("BENTOML_DO_NOT_TRACK", "true")
        mp.setenv("ML_ASSETS_HOME", str(home))
        training_set = adult_training_set(adult_spec, rows=3000)
        model = fit_logistic(adult_spec, training_set)
        tag = save_model(model, bentoml_home)
        bento = build_bento(tag, bentoml_home)
        records, rows = validation_sample(adult_spec, training_set)
        expected = load_stored(ModelStore(home=str(bentoml_home)), tag).predict_proba(rows)
        pid, url = serve(bento.tag, tag, home, bentoml_home)
        try:
            yield Served(url, pid, home, tag, bento.tag, records, np.asarray(expected), model.threshold, rows)
        finally:
            stop_tree(pid)


def post(s: Served, path: str, body, **kw) -> httpx.Response:
    return httpx.post(s.url + path, json=body, timeout=60, **kw)


def docs(s: Served) -> dict:
    return httpx.get(s.url + "/docs.json").json()


def test_ready_and_schema_in_docs(served: Served, adult_spec: DatasetSpec):
    assert httpx.get(served.url + "/readyz").status_code == 200
    paths = docs(served)["paths"]
    assert {"/predict", "/predict_batch", "/predict_file"} <= set(paths)
    body = paths["/predict"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    record = body["properties"]["record"]
    assert record["additionalProperties"] is False
    features = {c.name for c in adult_spec.feature_columns}
    assert set(record["properties"]) == features | {adult_spec.id.name, *adult_spec.sensitive_columns}
    assert set(record["required"]) <= features
    for name in (adult_spec.id.name, *adult_spec.sensitive_columns):
        assert "never a model input" in record["properties"][name]["description"]
    assert record["properties"]["hours_per_week"]["maximum"] == 99
    assert record["properties"]["relationship"]["x-categories"] == adult_spec.column("relationship").categories
    batch = paths["/predict_batch"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    assert batch["properties"]["records"]["maxItems"] == MAX_BATCH_ROWS
    assert batch["properties"]["records"]["items"] == record
    files = paths["/predict_file"]["post"]["requestBody"]["content"]
    assert set(files) == set(columnar.MEDIA_TYPES)


def test_predictions_equal_offline(served: Served):
    r = post(served, "/predict_batch", {"records": served.records})
    assert r.status_code == 200, r.text
    got = r.json()
    assert len(got) == len(served.records)
    np.testing.assert_allclose([p["probability"] for p in got], served.expected, atol=1e-5, rtol=0)
    assert [p["label"] for p in got] == [int(p >= served.threshold) for p in served.expected]
    assert {p["model_tag"] for p in got} == {served.model_tag}
    assert {p["threshold"] for p in got} == {served.threshold}
    for i in (0, 5, 17):
        one = post(served, "/predict", {"record": served.records[i]})
        assert one.status_code == 200, one.text
        assert abs(one.json()["probability"] - served.expected[i]) <= 1e-5


def _rec(served: Served, **change):
    rec = {**served.records[0], **change}
    return {k: v for k, v in rec.items() if v != "<drop>"}


BAD_CASES = {
    "missing field": ({"age": "<drop>"}, ["record", "age"], "missing"),
    "wrong type": ({"age": "forty"}, ["record", "age"], "int_type"),
    "fraction for an integer": ({"capital_gain": 1.5}, ["record", "capital_gain"], "int_from_float"),
    "text for an integer": ({"capital_gain": "7"}, ["record", "capital_gain"], "int_type"),
    "blank text, not nullable": ({"education": " \t "}, ["record", "education"], "string_too_short"),
    "out of range": ({"hours_per_week": 168}, ["record", "hours_per_week"], "less_than_equal"),
    "below range": ({"age": 5}, ["record", "age"], "greater_than_equal"),
    "null for a required field": ({"education": None}, ["record", "education"], "string_type"),
    "unknown field": ({"salary": 10}, ["record", "salary"], "extra_forbidden"),
    "the target": ({"income": ">50K"}, ["record", "income"], "extra_forbidden"),
    "8 MB category": ({"native_country": "x" * 8_000_000}, ["record", "native_country"], "string_too_long"),
    "id beyond int64": ({"record_id": -(2**63) - 1}, ["record", "record_id"], "greater_than_equal"),
}


@pytest.mark.parametrize("case", list(BAD_CASES))
def test_bad_record_is_a_400_naming_field_and_rule(served: Served, case: str):
    change, loc, rule = BAD_CASES[case]
    r = post(served, "/predict", {"record": _rec(served, **change)})
    assert r.status_code == 400, r.text
    detail = r.json()["detail"]
    assert [(d["loc"], d["type"]) for d in detail] == [(loc, rule)], detail
    assert detail[0]["msg"]  # a human-readable rule, e.g. "Input should be less than or equal to 99"
    assert len(r.content) < 1000  # an 8 MB input is never echoed back


def test_values_landing_accepts_are_accepted_over_http(served: Served, adult_spec: DatasetSpec):
    """A whole number sent as a float (how pandas reads an integer column with a missing value) and whitespace only
    in a nullable text field (missing, as landing reads it) are answered like the same record written as landing
    types it; the published schema says integer and gives the text's pattern, which both values satisfy."""
    typed = {**served.records[0], "age": 58, "capital_gain": 0, "workclass": None}
    sent = {**typed, "age": 58.0, "capital_gain": 0.0, "workclass": "   "}
    record = docs(served)["paths"]["/predict"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    jsonschema.validate({"record": sent}, record)
    answers = [post(served, "/predict", {"record": r}, headers={"X-Request-ID": f"landing-{i}"}) for i, r in
               enumerate((typed, sent))]  # fmt: skip
    assert [a.status_code for a in answers] == [200, 200], answers[1].text
    assert answers[0].json()["probability"] == answers[1].json()["probability"]
    logged = {e.request_id: e for e in read_day(served.home / "prediction_log", pd.Timestamp.now(tz="UTC").date())}
    assert logged[answers[1].json()["request_id"]].inputs == typed  # logged as landing would store it
    rows = served.rows[[c.name for c in adult_spec.feature_columns]].head(4).copy()
    rows["capital_gain"] = rows["capital_gain"].astype("float64")  # whole floats, as pandas writes them
    rows["workclass"] = rows["workclass"].astype(object)
    rows.loc[1, "workclass"] = "  "
    r = httpx.post(served.url + "/predict_file", content=_file(rows, columnar.PARQUET),
                   headers={"content-type": columnar.PARQUET})  # fmt: skip
    assert r.status_code == 200, r.text


def test_bad_batches_are_400s(served: Served):
    too_many = post(served, "/predict_batch", {"records": [served.records[0]] * (MAX_BATCH_ROWS + 1)})
    assert too_many.status_code == 400 and too_many.json()["detail"][0]["type"] == "too_long"
    empty = post(served, "/predict_batch", {"records": []})
    assert empty.status_code == 400 and empty.json()["detail"][0]["type"] == "too_short"
    one_bad = post(served, "/predict_batch", {"records": [served.records[0], _rec(served, age=999)]})
    assert one_bad.status_code == 400 and one_bad.json()["detail"][0]["loc"] == ["records", 1, "age"]
    garbage = httpx.post(served.url + "/predict", content=b"{not json", headers={"content-type": "application/json"})
    assert garbage.status_code == 400 and garbage.json()["detail"][0]["type"] == "json_invalid"
    assert post(served, "/predict", {"records": served.records[:1]}).status_code == 400  # wrong envelope


def test_limits_on_body_size_and_request_id(served: Served):
    huge = httpx.post(served.url + "/predict_batch", content=b" " * (MAX_JSON_BODY_BYTES + 1), timeout=60)
    assert huge.status_code == 413 and huge.json()["detail"][0]["type"] == "body_too_large"
    for bad in ("x" * 8192, "has space", "quo'te"):
        r = post(served, "/predict", {"record": served.records[0]}, headers={"X-Request-ID": bad})
        assert r.status_code == 400 and r.json()["detail"][0]["loc"] == ["header", "X-Request-ID"], r.text
        assert "64" in r.json()["detail"][0]["msg"] and len(r.content) < 1000
    ids = [post(served, "/predict", {"record": served.records[0]}, headers={"X-Request-ID": "dup"}).json()["request_id"]
           for _ in range(3)]  # fmt: skip
    assert len(set(ids)) == 3 and all(i.startswith("dup-") for i in ids)  # a repeated id is made unique


def test_error_bodies_follow_the_published_schema(served: Served):
    spec = docs(served)
    error_schema = {**spec["components"]["schemas"]["ErrorResponse"], "components": spec["components"]}
    resolver_doc = {"components": spec["components"]}
    answers = [
        post(served, "/predict", {"record": _rec(served, age=5, education=None)}),
        post(served, "/predict", {"record": served.records[0]}, headers={"X-Request-ID": "no way"}),
        httpx.post(served.url + "/predict", content=b" " * (MAX_JSON_BODY_BYTES + 1)),
        httpx.post(served.url + "/predict_file", content=b"a,b\n1,2", headers={"content-type": "text/csv"}),
        httpx.post(served.url + "/predict_file", content=b"junk", headers={"content-type": columnar.PARQUET}),
    ]
    assert [a.status_code for a in answers] == [400, 400, 413, 415, 400]
    for paths_op in ("/predict", "/predict_file"):
        responses = spec["paths"][paths_op]["post"]["responses"]
        assert responses["400"]["content"]["application/json"]["schema"]["$ref"].endswith("/ErrorResponse")
    for a in answers:
        jsonschema.validate(a.json(), {**error_schema, **resolver_doc})
    assert error_schema["properties"]["detail"]["type"] == "array"  # the issue: it said string, answers a list


def test_every_answered_prediction_is_logged_with_its_id_and_sensitive_fields(served: Served, adult_spec):
    sent = [{**served.records[i], "record_id": 1000 + i, "sex": "Female", "race": "Black"} for i in range(3)]
    answers = [post(served, "/predict", {"record": r}, headers={"X-Request-ID": f"log-{i}"}).json() for i, r in
               enumerate(sent)]  # fmt: skip
    batch = post(served, "/predict_batch", {"records": served.records[:4]}).json()
    # written before the answer was sent: no wait needed
    day = pd.Timestamp.now(tz="UTC").date()
    entries = {e.request_id: e for e in read_day(served.home / "prediction_log", day)}
    for answer, rec in zip(answers, sent, strict=True):
        e = entries[answer["request_id"]]
        assert e.inputs == rec and e.model_tag == served.model_tag  # id and sensitive fields logged
        assert e.probability == answer["probability"] and e.time.date() == day
    for answer, rec in zip(batch, served.records[:4], strict=True):
        assert entries[answer["request_id"]].inputs == rec  # absent when not sent
    folder = served.home / "prediction_log" / day.isoformat()
    files = list(folder.glob("*.jsonl"))
    assert files and all(stat.S_IMODE(f.stat().st_mode) == 0o600 for f in files)
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700


def _file(rows: pd.DataFrame, kind: str) -> bytes:
    return columnar.write_table(pa.Table.from_pandas(rows, preserve_index=False), kind)


@pytest.mark.parametrize("kind", columnar.MEDIA_TYPES)
def test_bulk_file_equals_json_scoring(served: Served, adult_spec: DatasetSpec, kind: str):
    names = [adult_spec.id.name, *(c.name for c in adult_spec.feature_columns)]
    rows = served.rows[names]
    r = httpx.post(served.url + "/predict_file", content=_file(rows, kind), headers={"content-type": kind},
                   timeout=60)  # fmt: skip
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith(kind)
    answer = columnar.read_table(r.content, kind)
    assert answer.column(adult_spec.id.name).to_pylist() == rows[adult_spec.id.name].tolist()
    json_scores = post(served, "/predict_batch", {"records": frame_records(served.rows[names[1:]])}).json()
    assert answer.column("probability").to_pylist() == [p["probability"] for p in json_scores]
    assert answer.column("label").to_pylist() == [p["label"] for p in json_scores]
    assert answer.schema.metadata[columnar.MODEL_TAG_KEY].decode() == served.model_tag


def test_bulk_file_refusals_name_column_and_rule(served: Served, adult_spec: DatasetSpec):
    rows = served.rows[[c.name for c in adult_spec.feature_columns]].copy()
    rows["age"] = rows["age"].astype("Int64")
    rows.loc[3, "age"] = 500
    rows["education"] = rows["education"].astype(object)
    rows.loc[5, "education"] = "x" * (category_max_chars(adult_spec) + 1)
    r = httpx.post(served.url + "/predict_file", content=_file(rows, columnar.PARQUET),
                   headers={"content-type": columnar.PARQUET})  # fmt: skip
    assert r.status_code == 400
    found = {(tuple(d["loc"]), d["type"]) for d in r.json()["detail"]}
    assert found == {(("file", "age"), "less_than_equal"), (("file", "education"), "string_too_long")}
    assert any("first at row 3" in d["msg"] for d in r.json()["detail"])


def test_a_million_row_parquet_file_in_one_call(served: Served, adult_spec: DatasetSpec):
    names = [c.name for c in adult_spec.feature_columns]
    big = served.rows[names].iloc[np.arange(1_000_000) % len(served.rows)].reset_index(drop=True)
    sink = io.BytesIO()
    pq.write_table(pa.Table.from_pandas(big, preserve_index=False), sink)
    r = httpx.post(served.url + "/predict_file", content=sink.getvalue(), headers={"content-type": columnar.PARQUET},
                   timeout=300)  # fmt: skip
    assert r.status_code == 200, r.text[:500]
    answer = pq.read_table(pa.BufferReader(r.content))
    assert answer.num_rows == 1_000_000
    probs = answer.column("probability").to_numpy()
    np.testing.assert_allclose(probs[: len(served.rows)], served.expected, atol=1e-5, rtol=0)


def test_schemathesis_finds_no_server_error_and_no_schema_violation(served: Served, tmp_path: Path):
    """Property-based fuzzing of the published /docs.json (positive and negative data, bounded examples); then the
    JSON endpoints both ways: every request the schema allows is accepted, every one it forbids refused (a file's
    schema is any bytes, so /predict_file is left out of that run)."""
    env = {**os.environ, "SCHEMATHESIS_HOOKS": "tests.schemathesis_hooks", "PYTHONPATH": str(ROOT)}
    runs = {
        "all": ["--checks", "not_a_server_error,response_schema_conformance,status_code_conformance,"
                "content_type_conformance"],
        "json": ["--checks", "positive_data_acceptance,negative_data_rejection",
                 "--include-path-regex", "^/predict(_batch)?$"],
    }  # fmt: skip
    for name, checks in runs.items():
        report = tmp_path / f"{name}.json"
        cmd = [sys.executable, "-m", "schemathesis.cli", "run", served.url + "/docs.json", *checks,
               "--max-examples", "100", "--seed", "7", "--generation-database", "none", "--workers", "1",
               "--no-color", "--report", "json", "--report-json-path", str(report)]  # fmt: skip
        run = subprocess.run(cmd, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=600)  # its cache
        assert run.returncode == 0, name + run.stdout[-4000:] + run.stderr[-2000:]  # a failure exits non-zero
        assert " passed" in run.stdout.split("SUMMARY")[-1], run.stdout[-3000:]


def test_a_killed_worker_loses_no_answered_prediction(served: Served):
    """Under load, kill -9 the serving worker: every request id answered with a 200 is in the log."""
    parent = psutil.Process(served.pid)
    worker = next(p for p in parent.children(recursive=True) if "worker" in " ".join(p.cmdline()))
    answered: list[str] = []
    stop = threading.Event()

    def client(k: int) -> None:
        with httpx.Client(timeout=60) as c:
            i = 0
            while not stop.is_set():
                try:
                    r = c.post(served.url + "/predict_batch", json={"records": served.records[i % 8 : i % 8 + 8]},
                               headers={"X-Request-ID": f"kill-{k}"})  # fmt: skip
                    if r.status_code == 200:
                        answered.extend(p["request_id"] for p in r.json())
                except httpx.HTTPError:
                    pass  # the requests in flight when the worker dies
                i += 1

    threads = [threading.Thread(target=client, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    time.sleep(2.0)
    os.kill(worker.pid, signal.SIGKILL)
    time.sleep(0.5)
    stop.set()
    for t in threads:
        t.join()
    deadline = time.monotonic() + 120  # the parent respawns the worker: the service comes back
    while httpx.get(served.url + "/readyz", timeout=5).status_code != 200:
        assert time.monotonic() < deadline
        time.sleep(0.5)
    logged = {e.request_id for day in (served.home / "prediction_log").iterdir()
              for e in read_day(served.home / "prediction_log", day.name)}  # fmt: skip
    assert len(answered) > 200
    assert set(answered) - logged == set()


def test_service_module_does_not_import_dagster_or_the_data_pipeline():
    """Importing the Bento's service in a fresh interpreter loads neither Dagster, GX, the data pipeline nor
    the Dagster resources (the Bento packs and pins only what serving needs)."""
    probe = (
        "import sys, bento.service; "
        "print(sorted({m.split('.')[0] if not m.startswith('ml_assets.') else '.'.join(m.split('.')[:2]) "
        "for m in sys.modules}))"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("ML_ASSETS_MODEL_TAG", None)
    out = subprocess.run([sys.executable, "-c", probe], env=env, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    loaded = set(json.loads(out.stdout.strip().replace("'", '"')))
    assert {"dagster", "great_expectations", "resources", "ml_assets.data", "duckdb"}.isdisjoint(loaded)
    assert {"bentoml", "ml_assets.serving", "ml_assets.model"} <= loaded
