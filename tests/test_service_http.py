"""Integration: a real Bento of a real model under ``bentoml serve`` on a free loopback port, real HTTP.

One server per module (start-up takes seconds); it is stopped by PID in the fixture teardown even on failure.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import numpy as np
import pandas as pd
import pytest

from bento.prediction_log import read_day
from ml_assets.dataset import DatasetSpec
from ml_assets.serving.assets import validation_sample
from ml_assets.serving.build import build_bento
from ml_assets.serving.schema import MAX_BATCH_ROWS
from resources.bento_deployer import stop_pid
from resources.model_store import ModelStore
from tests.serving_support import adult_training_set, fit_logistic, save_model, serve

pytestmark = pytest.mark.integration


@dataclass
class Served:
    url: str
    home: Path
    model_tag: str
    bento_tag: str
    records: list[dict]
    expected: np.ndarray
    threshold: float


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
        expected = ModelStore(home=str(bentoml_home)).load(tag).predict_proba(rows)
        pid, url = serve(bento.tag, tag, home, bentoml_home)
        try:
            yield Served(url, home, tag, bento.tag, records, np.asarray(expected), model.threshold)
        finally:
            stop_pid(pid)


def post(s: Served, path: str, body, **kw) -> httpx.Response:
    return httpx.post(s.url + path, json=body, timeout=60, **kw)


def test_ready_and_schema_in_docs(served: Served, adult_spec: DatasetSpec):
    assert httpx.get(served.url + "/readyz").status_code == 200
    docs = httpx.get(served.url + "/docs.json").json()
    body = docs["paths"]["/predict"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    ref = body["properties"]["record"]["$ref"].rsplit("/", 1)[-1]
    record = docs["components"]["schemas"][ref]
    assert record["additionalProperties"] is False
    assert set(record["properties"]) == {c.name for c in adult_spec.feature_columns}
    assert record["properties"]["hours_per_week"]["maximum"] == 99
    assert record["properties"]["relationship"]["x-categories"] == adult_spec.column("relationship").categories
    batch = docs["paths"]["/predict_batch"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    assert batch["properties"]["records"]["maxItems"] == MAX_BATCH_ROWS
    assert batch["properties"]["records"]["items"]["$ref"].endswith("/" + ref)


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
    "float for an integer": ({"capital_gain": 1.5}, ["record", "capital_gain"], "int_type"),
    "out of range": ({"hours_per_week": 168}, ["record", "hours_per_week"], "less_than_equal"),
    "below range": ({"age": 5}, ["record", "age"], "greater_than_equal"),
    "null for a required field": ({"education": None}, ["record", "education"], "string_type"),
    "unknown field": ({"salary": 10}, ["record", "salary"], "extra_forbidden"),
}


@pytest.mark.parametrize("case", list(BAD_CASES))
def test_bad_record_is_a_400_naming_field_and_rule(served: Served, case: str):
    change, loc, rule = BAD_CASES[case]
    r = post(served, "/predict", {"record": _rec(served, **change)})
    assert r.status_code == 400, r.text
    detail = r.json()["detail"]
    assert [(d["loc"], d["type"]) for d in detail] == [(loc, rule)], detail
    assert detail[0]["msg"]  # a human-readable rule, e.g. "Input should be less than or equal to 99"


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


def test_unknown_category_is_scored_as_unknown_and_reported(served: Served):
    r = post(served, "/predict", {"record": _rec(served, native_country="Atlantis")})
    assert r.status_code == 200, r.text
    assert r.json()["unknown_categories"] == ["native_country"]
    assert 0.0 <= r.json()["probability"] <= 1.0


def test_every_served_prediction_is_logged(served: Served):
    ids = [f"log-test-{i}" for i in range(3)]
    for i, rid in enumerate(ids):
        r = post(served, "/predict", {"record": served.records[i]}, headers={"X-Request-ID": rid})
        assert r.json()["request_id"] == rid
    batch = post(served, "/predict_batch", {"records": served.records[:4]}).json()
    time.sleep(1.5)  # the writer flushes at least every second
    day = pd.Timestamp.now(tz="UTC").date()
    entries = {e["request_id"]: e for e in read_day(served.home / "prediction_log", day)}
    for i, rid in enumerate(ids + [p["request_id"] for p in batch]):
        e = entries[rid]
        assert e["model_tag"] == served.model_tag
        assert e["inputs"] == {k: v for k, v in served.records[i % 3 if i < 3 else i - 3].items()}
        assert abs(e["probability"] - served.expected[i if i < 3 else i - 3]) <= 1e-5
        assert e["label"] in (0, 1) and e["time"].startswith(day.isoformat())
    files = list((served.home / "prediction_log" / day.isoformat()).glob("*.jsonl"))
    assert files and all(f.stem.split("-")[0].isdigit() for f in files)  # one file per serving process
