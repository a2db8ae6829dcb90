"""A stored model carries its whole dataset spec, so its Bento serves that dataset's schema from the model alone.

Fast: the spec round-trips through the model's files; a model stored before models carried their spec is refused
naming its tag; the Bento's code version follows the spec's content; a Bento that packs one model names it.
Integration: the Bentos of a COMPAS model (integer codes, a sensitive band) and of a Minneapolis model, served with a
clean environment (the store and the log's folder, no ``ML_ASSETS_DATASET_SPEC``, not even the project on the path;
the COMPAS one with its model tag, the Minneapolis one without: the Bento packs it), answer with their own
dataset's schema in ``/docs.json`` and score a record of it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
import yaml

from bento.packed_model import packed_model_tag
from ml_assets.dataset import DatasetSpec, load_spec
from ml_assets.datasets.samples import demo_training_set
from ml_assets.model.bundle import META_FILE, ModelFormatError, TabularModel, load_spec_of
from ml_assets.serving.build import service_code_version
from ml_assets.settings import PACKAGE_DIR
from tests.conftest import pinned
from tests.serving_support import WINDOW_END, fit_logistic

DATASETS = PACKAGE_DIR / "datasets"
ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def compas() -> DatasetSpec:
    return load_spec(DATASETS / "compas.yaml")


@pytest.fixture(scope="module")
def compas_model(compas: DatasetSpec) -> TabularModel:
    return fit_logistic(compas, demo_training_set(compas, 1500, seed=0, window_end=WINDOW_END))


def test_the_stored_model_carries_its_whole_spec(compas: DatasetSpec, compas_model: TabularModel, tmp_path: Path):
    compas_model.save(tmp_path)
    again = TabularModel.load(tmp_path)
    assert again.spec.model_dump(mode="json") == compas.model_dump(mode="json")
    assert load_spec_of(tmp_path) == again.spec and again.spec.target.integer_coded
    assert [b.name for b in again.spec.bands if b.sensitive] == ["age_band"]


def test_a_model_stored_without_its_spec_is_refused_naming_its_tag(compas_model: TabularModel, tmp_path: Path):
    compas_model.save(tmp_path)
    meta = json.loads((tmp_path / META_FILE).read_text())
    del meta["spec"]
    meta["format"] = 1  # what models stored before this change look like
    (tmp_path / META_FILE).write_text(json.dumps(meta))
    with pytest.raises(ModelFormatError, match=r"model compas-baseline:abc .* without its dataset spec: retrain it"):
        TabularModel.load(tmp_path, "compas-baseline:abc")


def test_the_bento_version_follows_the_spec_content(compas: DatasetSpec):
    column = compas.column("c_charge_degree")
    wider = pinned(compas, columns=[c if c is not column else column.model_copy(update={"categories": [
        *column.categories, "X"]}) for c in compas.columns])  # fmt: skip
    assert service_code_version(compas) != service_code_version(wider)
    assert service_code_version(compas) == service_code_version(load_spec(DATASETS / "compas.yaml"))


def test_a_bento_that_packs_one_model_names_it_and_the_source_tree_names_none(tmp_path: Path):
    """``packed_model_tag`` reads the manifest beside a built Bento's ``src/``; several models or none name none."""
    layouts = {"one": [["adult-baseline:abc"]], "two_services": [["a:1"], ["b:2"]], "none": [[]]}
    found = {}
    for name, services in layouts.items():
        manifest = {"models": [], "services": [{"name": f"s{i}", "models": [{"tag": t} for t in tags]}
                                               for i, tags in enumerate(services)]}  # fmt: skip
        (tmp_path / name / "src" / "bento").mkdir(parents=True)
        (tmp_path / name / "bento.yaml").write_text(yaml.safe_dump(manifest))
        found[name] = packed_model_tag(str(tmp_path / name / "src" / "bento" / "service.py"))
    assert found == {"one": "adult-baseline:abc", "two_services": "", "none": ""}
    assert packed_model_tag(str(ROOT / "bento" / "service.py")) == ""  # the source tree is no Bento


# ---- integration: the Bento alone serves its dataset ---------------------------------------------------------
def _serve_clean(bento_tag: str, model_tag: str | None, bentoml_home: Path, work: Path) -> tuple[subprocess.Popen, str]:
    """``bentoml serve`` with nothing but the model tag (given one), the store and where this machine keeps the
    prediction log (a path of the host, not a property of the model): no project on the path, no spec."""
    from resources.process_tree import free_port

    port = free_port()
    env = {
        "PATH": os.environ["PATH"],
        "HOME": str(work),
        "BENTOML_HOME": str(bentoml_home),
        "BENTOML_DO_NOT_TRACK": "true",
        **({"ML_ASSETS_MODEL_TAG": model_tag} if model_tag else {}),
        "ML_ASSETS_HOME": str(work / "home"),
    }
    log = (work / "serve.log").open("ab")
    cmd = [sys.executable, "-m", "bentoml", "serve", bento_tag, "--host", "127.0.0.1", "--port", str(port)]
    proc = subprocess.Popen(cmd, env=env, cwd=work, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            if httpx.get(url + "/readyz", timeout=2).status_code == 200:
                return proc, url
        except httpx.HTTPError:
            pass
        time.sleep(0.25)
    raise AssertionError(f"bentoml serve {bento_tag} did not become ready: {(work / 'serve.log').read_text()[-3000:]}")


@pytest.mark.integration
@pytest.mark.parametrize(("dataset", "named"), [("compas", True), ("mpls_stops", False)])
def test_the_bento_of_a_model_serves_its_own_dataset_schema_from_a_clean_environment(
    dataset: str, named: bool, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    from ml_assets.serving.assets import validation_sample
    from ml_assets.serving.build import build_bento
    from resources.process_tree import stop_tree
    from tests.serving_support import save_model

    spec = load_spec(DATASETS / f"{dataset}.yaml")
    monkeypatch.delenv("ML_ASSETS_DATASET_SPEC", raising=False)  # the Adult default: only the model says otherwise
    training_set = demo_training_set(spec, 2000, seed=0, window_end=WINDOW_END)
    model = fit_logistic(spec, training_set)
    bentoml_home = tmp_path / "bentoml"
    tag = save_model(model, bentoml_home, name=f"{dataset.replace('_', '-')}-baseline")
    bento = build_bento(tag, bentoml_home)
    work = tmp_path / "work"
    work.mkdir()
    proc, url = _serve_clean(bento.tag, tag if named else None, bentoml_home, work)
    try:
        docs = httpx.get(url + "/docs.json").json()
        body = docs["paths"]["/predict"]["post"]["requestBody"]["content"]["application/json"]["schema"]
        record = body["properties"]["record"]
        fields = {c.name for c in spec.feature_columns} | {spec.id.name, *spec.sensitive_columns}
        assert set(record["properties"]) == fields
        for col in spec.feature_columns:
            if col.is_categorical_feature:
                assert record["properties"][col.name]["x-categories"] == col.categories
        records, rows = validation_sample(spec, training_set, n=16)
        r = httpx.post(url + "/predict_batch", json={"records": records}, timeout=60)
        assert r.status_code == 200, r.text
        served = [p["probability"] for p in r.json()]
        assert served == pytest.approx(list(model.predict_proba(rows)), abs=1e-5)
        assert {p["model_tag"] for p in r.json()} == {tag}
        assert list((work / "home" / "prediction_log").rglob("*"))
    finally:
        stop_tree(proc.pid)
