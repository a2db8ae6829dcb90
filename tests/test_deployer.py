"""Integration: blue/green redeploys through the loopback proxy with real ``bentoml serve`` processes.

Two real models (different regularisation, so different predictions) are built into two Bentos once per module.
Every server and the proxy are stopped by PID in the fixture teardown, also when a test fails.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from dagster import asset, materialize

from ml_assets.dataset import DatasetSpec
from ml_assets.model.bundle import ModelRef
from ml_assets.serving.assets import build_serving_assets, validation_sample
from ml_assets.serving.build import BentoRef, build_bento
from resources.bento_deployer import DeploymentError, LocalBentoDeployer, _alive, free_port
from resources.model_store import ModelStore
from tests.serving_support import adult_training_set, fit_logistic, save_model

pytestmark = pytest.mark.integration


@dataclass
class Release:
    bento: BentoRef
    expected: list[float]


@dataclass
class World:
    home: Path
    bentoml_home: Path
    records: list[dict]
    a: Release
    b: Release
    deployer: LocalBentoDeployer
    training_set: object


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory, adult_spec: DatasetSpec):
    home = tmp_path_factory.mktemp("deployer")
    bentoml_home = home / "bentoml"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("BENTOML_DO_NOT_TRACK", "true")
        mp.setenv("ML_ASSETS_HOME", str(home))
        ts = adult_training_set(adult_spec, rows=3000)
        records, rows = validation_sample(adult_spec, ts)
        releases = []
        for c in (1.0, 0.001):
            model = fit_logistic(adult_spec, ts, c=c)
            tag = save_model(model, bentoml_home)
            releases.append(Release(build_bento(tag, bentoml_home), [float(p) for p in model.predict_proba(rows)]))
        deployer = LocalBentoDeployer(home=str(home), bentoml_home=str(bentoml_home), port=free_port())
        try:
            yield World(home, bentoml_home, records, releases[0], releases[1], deployer, ts)
        finally:
            deployer.stop()


def served_tags(url: str, records: list[dict]) -> set[str]:
    r = httpx.post(url + "/predict_batch", json={"records": records[:4]}, timeout=30)
    assert r.status_code == 200, r.text
    return {p["model_tag"] for p in r.json()}


def test_deploy_then_redeploy_without_a_failed_request(world: World):
    d, a, b = world.deployer, world.a, world.b
    state = d.deploy(a.bento.tag, a.bento.model_tag, world.records, a.expected)
    assert served_tags(d.url, world.records) == {a.bento.model_tag}
    first_pid = state["current"]["pid"]
    assert _alive(first_pid) and _alive(state["proxy"]["pid"])
    assert d.state_file.exists()

    results: list[tuple[int, str]] = []
    stop = threading.Event()

    def client() -> None:
        with httpx.Client(timeout=30) as c:
            i = 0
            while not stop.is_set():
                try:
                    r = c.post(d.url + "/predict", json={"record": world.records[i % len(world.records)]})
                    results.append((r.status_code, r.json().get("model_tag", "") if r.status_code == 200 else r.text))
                except httpx.HTTPError as e:
                    results.append((-1, repr(e)))
                i += 1

    threads = [threading.Thread(target=client) for _ in range(2)]
    for t in threads:
        t.start()
    try:
        time.sleep(0.5)
        state = d.deploy(b.bento.tag, b.bento.model_tag, world.records, b.expected)
        time.sleep(0.5)
    finally:
        stop.set()
        for t in threads:
            t.join()
    failures = [r for r in results if r[0] != 200]
    assert not failures, failures[:5]
    tags = [r[1] for r in results]
    assert tags[0] == a.bento.model_tag and tags[-1] == b.bento.model_tag
    assert len(results) > 50
    assert not _alive(first_pid)  # the old server was drained and stopped by PID
    assert state["previous"]["bento_tag"] == a.bento.tag  # kept for rollback
    assert served_tags(d.url, world.records) == {b.bento.model_tag}


def test_failed_validation_keeps_the_old_model_serving(world: World):
    d = world.deployer
    before = d.state()["current"]
    assert before["bento_tag"] == world.b.bento.tag
    # A's Bento must reproduce B's offline predictions: it cannot, so it must never take traffic
    with pytest.raises(DeploymentError, match="train/serve skew") as e:
        d.deploy(world.a.bento.tag, world.a.bento.model_tag, world.records, world.b.expected)
    assert "max |online - offline|" in str(e.value)
    after = d.state()
    assert after["current"]["pid"] == before["pid"] and after["candidate"] is None
    assert served_tags(d.url, world.records) == {world.b.bento.model_tag}


def test_deployment_asset_and_checks(world: World, adult_spec: DatasetSpec):
    """The Dagster assets end to end: bento built for the champion, deployed (rollback to A), checks pass."""
    a_ref = ModelRef(tag=world.a.bento.model_tag, name="adult-baseline", kind="logistic", metrics={},
                     training_set_version="test")  # fmt: skip

    @asset(name="champion_model")
    def champion_model() -> ModelRef:
        return a_ref

    @asset(name="training_set")
    def training_set():
        return world.training_set

    result = materialize(
        [champion_model, training_set, *build_serving_assets(adult_spec)],
        resources={"model_store": ModelStore(home=str(world.bentoml_home)), "bento_deployer": world.deployer},
    )
    assert result.success
    info = result.output_for_node("deployment")
    assert info.model_tag == a_ref.tag and info.url == world.deployer.url
    checks = {e.check_name: e.passed for e in result.get_asset_check_evaluations()}
    assert checks["health"] and checks["train_serve_skew"], checks
    assert "http_p99_latency" in checks
    meta = result.asset_materializations_for_node("bento")[0].metadata
    assert meta["model_tag"].value == a_ref.tag and meta["size_mb"].value > 0
    assert served_tags(world.deployer.url, world.records) == {a_ref.tag}


def test_stop_stops_everything_by_pid(world: World):
    d = world.deployer
    state = d.state()
    pids = [state["current"]["pid"], state["proxy"]["pid"]]
    assert all(_alive(p) for p in pids)
    d.stop()
    assert not any(_alive(p) for p in pids)
    with pytest.raises(httpx.HTTPError):
        httpx.get(d.url + "/readyz", timeout=2)
