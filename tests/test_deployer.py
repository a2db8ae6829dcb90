"""Integration: supervised blue/green deployments with real ``bentoml serve`` processes behind the real proxy.

Two real models (different regularisation, so different predictions) are built into two Bentos once per module.
The tests redeploy under load, kill -9 a worker, a ``bentoml serve`` parent, the proxy and the supervisor, and
check with psutil that ``stop`` leaves no process, no listener and no open file. The fixture stops the
deployment (every process it ever recorded) also when a test fails.
"""

from __future__ import annotations

import io
import os
import signal
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import numpy as np
import pandas as pd
import psutil
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from dagster import AssetSelection, DagsterInstance, asset, materialize
from dagster_duckdb_pandas import DuckDBPandasIOManager

from ml_assets.data.approval import build_approved_training_set
from ml_assets.data.splits import WINDOW_END
from ml_assets.data.training_checks import build_training_set_checks
from ml_assets.data.window import TrainingWindow
from ml_assets.dataset import DatasetSpec
from ml_assets.model.bundle import ModelRef
from ml_assets.partitions import training_set_partitions
from ml_assets.serving.assets import build_serving_assets, validation_sample
from ml_assets.serving.build import BentoRef, build_bento
from resources.alerts import Alerts
from resources.bento_deployer import DeploymentError, LocalBentoDeployer
from resources.model_store import ModelStore
from resources.process_tree import ProcessRecord, free_port, listening_pids
from tests.serving_support import adult_training_set, fit_logistic, save_model
from tests.test_batch_predictions import features_day
from tests.test_batch_predictions import run as run_batch
from tests.windows import window_of

pytestmark = pytest.mark.integration
PARQUET = "application/vnd.apache.parquet"


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
        deployer = LocalBentoDeployer(
            home=str(home), bentoml_home=str(bentoml_home), port=free_port(), max_body_bytes=64 * 1024**2
        )
        try:
            yield World(home, bentoml_home, records, releases[0], releases[1], deployer, ts)
        finally:
            deployer.stop()


def served_tags(url: str, records: list[dict]) -> set[str]:
    r = httpx.post(url + "/predict_batch", json={"records": records[:4]}, timeout=30)
    assert r.status_code == 200, r.text
    return {p["model_tag"] for p in r.json()}


@contextmanager
def load(url: str, records: list[dict], clients: int = 2) -> Iterator[list[tuple[int, str]]]:
    """``clients`` threads posting /predict in a loop; yields their (status or -1, model tag or error) list."""
    results: list[tuple[int, str]] = []
    stop = threading.Event()

    def client() -> None:
        with httpx.Client(timeout=60) as c:
            i = 0
            while not stop.is_set():
                try:
                    r = c.post(url + "/predict", json={"record": records[i % len(records)]})
                    results.append((r.status_code, r.json().get("model_tag", "") if r.status_code == 200 else r.text))
                except httpx.HTTPError as e:
                    results.append((-1, repr(e)))
                i += 1

    threads = [threading.Thread(target=client) for _ in range(clients)]
    for t in threads:
        t.start()
    try:
        time.sleep(0.5)
        yield results
    finally:
        stop.set()
        for t in threads:
            t.join()


def deployment_processes(d: LocalBentoDeployer) -> list[ProcessRecord]:
    actual = d.actual()
    trees = [actual["proxy"]["tree"], *(s["tree"] for s in actual["servers"].values())]
    return [ProcessRecord.from_json(actual["supervisor"]), *(ProcessRecord.from_json(r) for t in trees for r in t)]


def wait_for(what: str, done: Callable[[], bool], timeout_s: float = 120) -> None:
    deadline = time.monotonic() + timeout_s
    while not done():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)


def test_deploy_then_redeploy_without_a_failed_request(world: World):
    d, a, b = world.deployer, world.a, world.b
    state = d.deploy(a.bento.tag, a.bento.model_tag, world.records, a.expected)
    assert served_tags(d.url, world.records) == {a.bento.model_tag}
    assert httpx.get(d.url + "/readyz").status_code == 200
    old_port = state.current.port
    first = [ProcessRecord.from_json(r) for r in d.actual()["servers"][state.current.slot]["tree"]]
    assert len(first) >= 2 and all(r.alive() for r in first)  # bentoml serve and its worker

    with load(d.url, world.records) as results:
        state = d.deploy(b.bento.tag, b.bento.model_tag, world.records, b.expected)
        time.sleep(0.5)
    failures = [r for r in results if r[0] != 200]
    assert not failures, failures[:5]
    tags = [r[1] for r in results]
    assert tags[0] == a.bento.model_tag and tags[-1] == b.bento.model_tag
    assert len(results) > 50
    assert not [r for r in first if r.alive()]  # the old server was drained and its whole tree stopped
    assert listening_pids(old_port) == []
    assert state.previous.bento_tag == a.bento.tag  # kept for rollback
    assert served_tags(d.url, world.records) == {b.bento.model_tag}


def test_failed_validation_keeps_the_old_model_serving(world: World):
    d = world.deployer
    before = d.state().current
    assert before.bento_tag == world.b.bento.tag
    # A's Bento must reproduce B's offline predictions: it cannot, so it must never take traffic
    with pytest.raises(DeploymentError, match="train/serve skew") as e:
        d.deploy(world.a.bento.tag, world.a.bento.model_tag, world.records, world.b.expected)
    assert "max |online - offline|" in str(e.value)
    assert d.state().current.pid == before.pid
    assert list(d.actual()["servers"]) == [before.slot]  # the candidate's slot and tree are gone
    assert served_tags(d.url, world.records) == {world.b.bento.model_tag}


def recovered(what: str, actual: dict, parent: int, worker: ProcessRecord, victim: int) -> bool:
    """The killed part has been replaced: a new worker, a new server (and its orphaned worker stopped), a new proxy."""
    server = actual["servers"][actual["serve"]]
    if what == "worker":
        return worker.pid not in [p for p, _ in server["tree"]]
    if what == "parent":
        return server["pid"] != parent and not worker.alive()
    return actual["proxy"]["pid"] != victim


def test_kill_9_of_worker_parent_and_proxy_under_load(world: World):
    """No failed request beyond the ones in flight at the kill, /readyz answers within a second all along, and
    each part comes back: the worker (respawned by its parent), the parent (replaced blue/green while its
    orphaned worker keeps serving, then the orphan is stopped: the loop waits for both) and the proxy
    (restarted on the same socket)."""
    d = world.deployer
    for what in ("worker", "parent", "proxy"):
        actual = d.actual()
        server = actual["servers"][actual["serve"]]
        orphan = next(ProcessRecord.from_json(r) for r in server["tree"] if r[0] != server["pid"])
        victim = {"worker": orphan.pid, "parent": server["pid"], "proxy": actual["proxy"]["pid"]}[what]
        with load(d.url, world.records) as results:
            os.kill(victim, signal.SIGKILL)
            seen, t0 = [], time.monotonic()
            while time.monotonic() - t0 < 90:
                ts = time.monotonic()
                try:
                    code = httpx.get(d.url + "/readyz", timeout=5).status_code
                except httpx.HTTPError as e:
                    code = repr(e)
                seen.append((code, time.monotonic() - ts))
                if (
                    recovered(what, d.actual(), server["pid"], orphan, victim)
                    and code == 200
                    and time.monotonic() - t0 > 2
                ):
                    break
                time.sleep(0.3)
            time.sleep(0.5)
        assert seen[-1][0] == 200, (what, seen)
        assert max(s for _, s in seen) < 1.0, (what, seen)
        failed = [r for r in results if r[0] != 200]
        assert all(r[0] in (-1, 502) for r in failed), (what, failed)  # never a 500
        assert len(failed) <= 2, (what, failed)  # at most the two requests in flight at the kill
        assert len(results) > 20
    assert served_tags(d.url, world.records) == {world.b.bento.model_tag}


def test_deployment_asset_and_checks(world: World, adult_spec: DatasetSpec, tmp_path: Path):
    """The Dagster assets end to end: bento built for the champion, deployed (rollback to A), checks pass. The
    validation rows come from the approved training window (its real checks ran and passed)."""
    a_ref = ModelRef(tag=world.a.bento.model_tag, name="adult-baseline", kind="logistic", metrics={},
                     training_set_version="test")  # fmt: skip
    windows = training_set_partitions(adult_spec)

    @asset(name="champion_model")
    def champion_model() -> ModelRef:
        return a_ref

    @asset(name="training_set", partitions_def=windows)
    def training_set() -> TrainingWindow:
        return window_of(adult_spec, world.training_set, tmp_path / "tables")

    checks_def = build_training_set_checks(adult_spec, windows)
    approved = build_approved_training_set(windows, [c.name for c in checks_def.check_specs if c.blocking])
    instance = DagsterInstance.ephemeral()
    resources = {
        "model_store": ModelStore(home=str(world.bentoml_home)),
        "bento_deployer": world.deployer,
        "warehouse_io_manager": DuckDBPandasIOManager(database=str(tmp_path / "warehouse.duckdb"), schema="ml"),
        "alerts": Alerts(log_path=str(tmp_path / "alerts.jsonl")),
    }
    graph = [champion_model, training_set, checks_def, approved, *build_serving_assets(adult_spec)]
    day = world.training_set[WINDOW_END].max().date().isoformat()
    cut = materialize(graph, selection=[training_set, checks_def], partition_key=day, resources=resources,
                      instance=instance)  # fmt: skip
    assert cut.success
    result = materialize(
        graph,
        selection=AssetSelection.assets("champion_model", "approved_training_set", "bento", "deployment"),
        resources=resources,
        instance=instance,
    )
    assert result.success
    info = result.output_for_node("deployment")
    assert info.model_tag == a_ref.tag and info.url == world.deployer.url
    checks = {e.check_name: e for e in result.get_asset_check_evaluations()}
    assert checks["health"].passed and checks["train_serve_skew"].passed, checks
    assert checks["train_serve_skew"].metadata["max_abs_diff"].value <= 1e-5
    assert "http_p99_latency" in checks
    assert all(e.description for e in checks.values()), "every check result says what it saw in one line"
    assert checks["http_p99_latency"].description.startswith("p99 ")
    deployed = result.asset_materializations_for_node("deployment")[0].metadata
    assert deployed["latest_alerts"].value == "no alert" and deployed["validation_max_abs_diff"].value <= 1e-5
    meta = result.asset_materializations_for_node("bento")[0].metadata
    assert meta["model_tag"].value == a_ref.tag and meta["size_mb"].value > 0
    assert served_tags(world.deployer.url, world.records) == {a_ref.tag}


def test_batch_predictions_equal_the_served_answers(world: World, adult_spec: DatasetSpec, tmp_path: Path):
    """The online/offline check of ``batch_predictions`` against the model this deployment serves (A)."""
    result = run_batch(
        adult_spec, tmp_path, features_day(adult_spec), world.a.bento.model_tag, world.deployer, world.bentoml_home
    )
    assert result.success
    (check,) = result.get_asset_check_evaluations()
    assert check.passed, check.metadata
    assert check.metadata["max_abs_diff"].value <= 1e-5 and check.metadata["rows"].value == 64


def test_oversized_bodies_are_413s_from_the_proxy_and_the_service(world: World):
    d = world.deployer
    huge = httpx.post(d.url + "/predict", content=b" " * (64 * 1024**2 + 1), timeout=60)
    assert huge.status_code == 413 and huge.json()["detail"][0]["type"] == "body_too_large"  # the proxy's bound
    big = httpx.post(d.url + "/predict_batch", content=b" " * (9 * 1024**2), timeout=60)
    assert big.status_code == 413 and "accepts at most" in big.json()["detail"][0]["msg"]  # the service's bound


PROXY_PEAK_RSS_BOUND = 24 * 1024**2  # what a million-row /predict_file may add to the proxy's peak RSS


def peak_rss(pid: int) -> int:
    """The process's peak resident memory (VmHWM), bytes."""
    status = Path(f"/proc/{pid}/status").read_text()
    return int(next(line for line in status.splitlines() if line.startswith("VmHWM:")).split()[1]) * 1024


def test_a_million_row_predict_file_streams_through_the_proxy(world: World):
    """The proxy passes both bodies on as they come: its peak RSS grows by less than half the request body (the
    proxy of before held the request whole, and the answer)."""
    d = world.deployer
    frame = pd.DataFrame(world.records)
    frame = frame.iloc[np.random.default_rng(0).integers(0, len(frame), 1_000_000)].reset_index(drop=True)
    table = pa.Table.from_pandas(frame, preserve_index=False)
    strings = [f.name for f in table.schema if pa.types.is_string(f.type)]
    sink = io.BytesIO()
    pq.write_table(table, sink, compression="none", use_dictionary=strings)  # plain numbers: ~48 MiB
    body = sink.getvalue()
    assert 2 * PROXY_PEAK_RSS_BOUND < len(body) < d.max_body_bytes
    proxy = d.actual()["proxy"]["pid"]
    Path(f"/proc/{proxy}/clear_refs").write_text("5")  # resets VmHWM to the current RSS
    before = peak_rss(proxy)
    r = httpx.post(d.url + "/predict_file", content=body, headers={"content-type": PARQUET}, timeout=300)
    assert r.status_code == 200, r.text[:300]
    answer = pq.read_table(pa.BufferReader(r.content))
    assert answer.num_rows == 1_000_000
    grown = peak_rss(proxy) - before
    assert grown < PROXY_PEAK_RSS_BOUND, f"the proxy's peak RSS grew {grown / 2**20:.1f} MiB for {len(body)} bytes"


def test_a_killed_supervisor_is_cleaned_up_by_stop(world: World):
    d = world.deployer
    processes = deployment_processes(d)
    os.kill(processes[0].pid, signal.SIGKILL)  # the supervisor: proxy and server keep serving, unsupervised
    wait_for("the supervisor's death", lambda: not processes[0].alive())
    assert served_tags(d.url, world.records) == {world.a.bento.model_tag}
    d.stop()
    assert not [r for r in processes if r.alive()]
    # a new deploy starts a new supervisor
    d.deploy(world.a.bento.tag, world.a.bento.model_tag, world.records, world.a.expected)
    assert served_tags(d.url, world.records) == {world.a.bento.model_tag}


def test_stop_leaves_no_process_no_listener_and_no_open_file(world: World):
    d = world.deployer
    processes = deployment_processes(d)
    ports = [d.port, *(s["port"] for s in d.actual()["servers"].values())]
    assert all(r.alive() for r in processes) and len(processes) >= 4  # supervisor, proxy, server parent, worker
    d.stop()
    assert not [r for r in processes if r.alive()]
    assert not [p for port in ports for p in listening_pids(port)]
    home = str(world.home)
    holders = []
    for proc in psutil.process_iter(["pid"]):
        try:
            holders += [(proc.pid, f.path) for f in proc.open_files() if f.path.startswith(home)]
        except psutil.Error:
            continue
    assert not holders, holders
    with pytest.raises(httpx.HTTPError):
        httpx.get(d.url + "/readyz", timeout=2)
