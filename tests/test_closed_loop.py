"""The closed loop with real processes, on one home seeded by ``ml-assets demo`` (a real champion served by a real
``bentoml serve`` behind the deployer's proxy):

1. Monitoring acts: drifted traffic replayed over HTTP (``ml-assets traffic``) with its labels landed, the day's
   monitoring fails its drift check, the retrain sensor requests a run, the new candidate (real DeepSpeed ranks)
   passes every gate and serves. Then labels that the previous champion predicts better than the new one make
   ``champion_regression`` fail: the sensor requests the rollback, and the previous champion serves again.
   The runs the sensor requests are executed in process here, with the run config and tags it asked for (the daemon
   would launch the same requests; that path is covered by test 2).
2. The self-driving graph: ``ml-assets up`` (a real dagster-webserver and dagster-daemon), then nothing but landings:
   a landed day flows to a new deployment; a corrupted batch stops at raw_data and the champion keeps serving; when
   the served model stops answering the health check turns red within a minute; Ctrl-C leaves no process behind.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

import httpx
import numpy as np
import pandas as pd
import psutil
import pytest

from ml_assets.dataset import load_default_spec
from ml_assets.datasets.next_day import land_next_day
from ml_assets.datasets.simulator import Corruption, replay
from ml_assets.demo import observe_landing
from ml_assets.model.refs import load_stored
from ml_assets.partitions import today
from ml_assets.serving.schema import warmup_record
from resources.process_tree import free_port, stop_tree, wait_until

pytestmark = pytest.mark.integration

GRAPH = """
{
  assetNodes { assetKey { path } groupName isPartitioned assetChecksOrError { ... on AssetChecks { checks { name } } } }
  repositoriesOrError { ... on RepositoryConnection { nodes { name jobs { name } sensors { name sensorState { status } } } } }
}
"""
QUIET = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}
LANDED = """
{
  assetNodeOrError(assetKey: {path: ["landing_files"]}) {
    ... on AssetNode { assetPartitionStatuses { ... on TimePartitionStatuses { ranges { startKey endKey status } } } }
  }
}
"""


class Home:
    """One ML_ASSETS_HOME, the CLI run against it, and its Dagster instance read back."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.serve_port = free_port()
        self.ui_port = free_port()
        self.env = {k: v for k, v in os.environ.items() if k not in ("DAGSTER_HOME", "BENTOML_HOME")}
        self.env.update(
            ML_ASSETS_HOME=str(root), ML_ASSETS_SERVE_PORT=str(self.serve_port), BENTOML_DO_NOT_TRACK="true"
        )
        self.url = f"http://127.0.0.1:{self.serve_port}"
        self.ui = f"http://127.0.0.1:{self.ui_port}"

    def cli(self, *args: str, **kw) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-m", "ml_assets.cli", *args], env=self.env, capture_output=True, text=True, **kw
        )

    def served_tag(self) -> str | None:
        try:
            r = httpx.post(self.url + "/predict", json={"record": warmup_record(load_default_spec())}, timeout=5)
            return r.json()["model_tag"] if r.status_code == 200 else None
        except (httpx.HTTPError, ValueError, KeyError):
            return None

    def instance(self):
        from dagster import DagsterInstance

        return DagsterInstance.from_config(str(self.root / "dagster"))


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory):
    home = Home(tmp_path_factory.mktemp("closed_loop") / "home")
    seeded = home.cli("demo", "--fresh", timeout=900)
    assert seeded.returncode == 0, seeded.stdout[-4000:] + seeded.stderr[-4000:]
    try:
        yield home
    finally:
        home.cli("stop", timeout=120)


def events_since(home: Home, asset: str, since: float, partition: str | None = None) -> list:
    from dagster import AssetKey, AssetRecordsFilter

    with home.instance() as instance:
        return list(
            instance.fetch_materializations(
                AssetRecordsFilter(
                    asset_key=AssetKey(asset),
                    asset_partitions=[partition] if partition else None,
                    after_timestamp=since,
                ),
                limit=10,
            ).records
        )


def latest_check(home: Home, asset: str, check: str, partition: str | None = None):
    from dagster import AssetKey

    from ml_assets.event_log import latest_check_evaluations

    with home.instance() as instance:
        return latest_check_evaluations(instance, AssetKey(asset), [check], partition)[check]


def test_monitoring_retrains_on_drift_and_rolls_back_a_regressing_champion(home: Home, monkeypatch) -> None:
    from dagster import AssetKey, build_sensor_context

    from ml_assets.dataset import Retraining
    from ml_assets.definitions import MONITORING_JOB, build_definitions
    from ml_assets.model.registry import champion_history
    from resources.alerts import Alerts
    from resources.model_store import ModelStore

    for name, value in home.env.items():
        if name.startswith(("ML_ASSETS", "BENTOML")):
            monkeypatch.setenv(name, value)
    monkeypatch.setenv("DAGSTER_HOME", str(home.root / "dagster"))
    spec = load_default_spec()
    day = today(spec).isoformat()
    first = home.served_tag()
    assert first is not None

    sent = home.cli(
        "traffic", "--day", day, "--rows", "1500", "--shift", "age=2", "--labels-lag-days", "0", timeout=600
    )
    assert sent.returncode == 0, sent.stdout + sent.stderr
    # a past day replayed through the real service is filed under that day (time-true), with the real serving time
    yesterday = (today(spec) - timedelta(days=1)).isoformat()
    replayed = home.cli("traffic", "--day", yesterday, "--rows", "120", timeout=600)
    assert replayed.returncode == 0, replayed.stdout + replayed.stderr
    lines = [json.loads(x) for f in (home.root / "prediction_log" / yesterday).glob("*.jsonl")
             for x in f.read_text().splitlines()]  # fmt: skip
    mine = [x for x in lines if x["request_id"].startswith(f"replay-{yesterday}-")]
    assert len(mine) == 120 and all(x["time"][:10] == day for x in mine)
    # the sensor's own retraining requests are for the on_request (and cron) policies: under the default policy
    # automation trains each new window itself, and there is no daemon in this test
    defs = build_definitions(spec.model_copy(update={"retraining": Retraining(trigger="on_request")}))
    instance = home.instance()
    labels_job = defs.get_implicit_global_asset_job_def().get_subset(asset_selection={AssetKey("labels")})

    def monitor():
        assert labels_job.execute_in_process(partition_key=day, instance=instance, run_config=QUIET).success
        result = defs.resolve_job_def(MONITORING_JOB).execute_in_process(
            partition_key=day, instance=instance, run_config=QUIET
        )
        assert result.success
        return {e.check_name for e in result.get_asset_check_evaluations() if not e.passed}

    assert "input_drift" in monitor()
    sensor = defs.get_sensor_def("retrain_sensor")
    alerts = Alerts(log_path=str(home.root / "alerts.jsonl"))

    def tick():
        context = build_sensor_context(instance=instance, definitions=defs, resources={"alerts": alerts})
        return sensor.evaluate_tick(context).run_requests

    assert tick() == [], "the newest window is the champion's own: retraining would rebuild the same model"
    # today's data lands and is cut into a window: now retraining can learn something new
    landed = land_next_day(spec, home.root / "landing")
    observe_landing(instance, [landed.day.isoformat()])  # as the landing sensor would
    for job in ("ingest_job", "training_set_job"):
        done = defs.resolve_job_def(job).execute_in_process(
            partition_key=landed.day.isoformat(), instance=instance, run_config=QUIET
        )
        assert done.success, job
    [retrain] = tick()
    assert retrain.job_name == "model_job" and "input_drift" in retrain.tags["ml_assets/retrain_reason"]
    ran = defs.resolve_job_def(retrain.job_name).execute_in_process(
        instance=instance, tags=retrain.tags, run_config=QUIET
    )
    assert ran.success, "the retrained candidate passed every gate"
    assert defs.resolve_job_def("serving_job").execute_in_process(instance=instance, run_config=QUIET).success
    second = home.served_tag()
    assert second not in (None, first) and champion_history(instance)[0][0] == second

    # the new champion serves the rest of the day; labels under which the previous champion is right and the new
    # one is not land for those rows: the new one regresses
    served = home.cli("traffic", "--day", day, "--rows", "1500", timeout=600)
    assert served.returncode == 0, served.stdout + served.stderr
    store = ModelStore(home=str(home.root / "bentoml"))
    truth = sorted((home.root / "traffic").glob("*/ground_truth.parquet"))[-1]
    rows = pd.read_parquet(truth.with_name("rows.parquet"))
    old = load_stored(store, first).predict_proba(rows)
    new = load_stored(store, second).predict_proba(rows)
    disagree = (old >= 0.5) != (new >= 0.5)
    assert disagree.sum() >= 20, "the two champions must disagree somewhere for the test to mean anything"
    negative = next(c for c in spec.target.categories or [] if c != spec.positive_label)
    rows[spec.target.name] = np.where(old >= 0.5, spec.positive_label, negative)
    # every disagreement, and the agreeing rows nearest the new champion's threshold: the previous one ranks them
    # all right (its own decisions), the new one misranks the disagreements against their neighbours
    agreeing = np.flatnonzero(~disagree)
    nearest = agreeing[np.argsort(np.abs(new[agreeing] - 0.5))[: spec.monitoring.min_labeled_rows + 50]]
    keep = disagree.copy()
    keep[nearest] = True
    landed = home.root / "labels" / day / "previous-champion-right.parquet"
    rows.loc[keep, [spec.id.name, spec.target.name]].to_parquet(landed)
    assert "champion_regression" in monitor()
    [rollback] = tick()
    assert rollback.job_name == "rollback_champion"
    rolled = defs.resolve_job_def("rollback_champion").execute_in_process(
        instance=instance, run_config=rollback.run_config, tags=rollback.tags
    )
    assert rolled.success
    assert defs.resolve_job_def("serving_job").execute_in_process(instance=instance, run_config=QUIET).success
    assert home.served_tag() == first
    instance.dispose()


def test_demo_then_up_then_only_landings(home: Home, tmp_path: Path) -> None:
    before = home.served_tag()
    assert before is not None
    up = subprocess.Popen(
        [sys.executable, "-m", "ml_assets.cli", "up", "--port", str(home.ui_port)],
        env=home.env,
        stdout=(tmp_path / "up.log").open("w"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    trees: list[int] = []
    try:
        assert wait_until(lambda: _answers(home.ui + "/server_info") or up.poll() is not None, 180), "UI never answered"
        assert up.poll() is None, (tmp_path / "up.log").read_text()
        data = _graph(home.ui)
        nodes = {"/".join(n["assetKey"]["path"]): n for n in data["assetNodes"]}
        groups = {k: nodes[k]["groupName"] for k in ("landing_files", "raw_data", "champion_model", "deployment",
                                                      "model_monitoring")}  # fmt: skip
        assert groups == {"landing_files": "data", "raw_data": "data", "champion_model": "model",
                          "deployment": "serving", "model_monitoring": "monitoring"}  # fmt: skip
        assert nodes["raw_data"]["isPartitioned"] and not nodes["champion_model"]["isPartitioned"]
        # the days the demo landed count as present in the UI (an observed source alone showed "0% filled")
        landed_now = httpx.post(f"{home.ui}/graphql", json={"query": LANDED}, timeout=60).json()["data"]
        ranges = landed_now["assetNodeOrError"]["assetPartitionStatuses"]["ranges"]
        yesterday = (today(load_default_spec()) - timedelta(days=1)).isoformat()
        assert any(r["status"] == "MATERIALIZED" and r["startKey"] <= yesterday <= r["endKey"] for r in ranges), ranges
        checks = {c["name"] for c in nodes["model_evaluation"]["assetChecksOrError"]["checks"]}
        assert {"beats_baseline", "fairness"} <= checks
        repo = data["repositoriesOrError"]["nodes"][0]
        assert {"ingest_job", "model_job", "serving_job", "rollback_champion"} <= {j["name"] for j in repo["jobs"]}
        sensors = {s["name"]: s["sensorState"]["status"] for s in repo["sensors"]}
        assert set(sensors.values()) == {"RUNNING"} and {
            "automation_sensor",
            "landing_sensor",
            "retrain_sensor",
        } <= set(sensors)
        trees = [p.pid for p in psutil.Process(up.pid).children(recursive=True)]
        seen_in_a_browser(home.ui, tmp_path)

        # 1. a landed day, and nothing else: a new model serves
        landed_at = time.time()
        landed = land_next_day(load_default_spec(), home.root / "landing")
        assert wait_until(lambda: home.served_tag() not in (None, before), 600, every_s=2), (
            f"no new model after landing {landed.day}; see {tmp_path / 'up.log'} and {home.root / 'logs'}"
        )
        second_model = home.served_tag()
        # the stable URL switches inside the deployment step; its materialization follows
        assert wait_until(lambda: events_since(home, "deployment", landed_at), 60, every_s=1)
        for asset in ("raw_data", "features", "training_set", "approved_training_set", "candidate_model"):
            assert events_since(home, asset, landed_at), f"{asset} was not materialized by automation"

        # 2. a corrupted batch of the same day: raw_data fails its blocking check, nothing after it moves
        day = landed.day.isoformat()
        bad_at = time.time()
        scratch = tmp_path / "bad"
        replay(load_default_spec(), scratch, landed.day, landed.day, rows_per_day=500, file_stem="bad",
               corruptions=[Corruption("out_of_range", landed.day, "age")], first_id=7_000_000_000)  # fmt: skip
        for f in (scratch / day).iterdir():
            f.rename(home.root / "landing" / day / f.name)
        assert wait_until(lambda: events_since(home, "raw_data", bad_at, day), 300, every_s=2)
        assert wait_until(lambda: latest_check(home, "raw_data", "age_in_range", day) is not None, 60)
        assert not latest_check(home, "raw_data", "age_in_range", day).passed
        time.sleep(35)  # two more automation ticks
        assert events_since(home, "features", bad_at, day) == [], "features recomputed from a day that failed"
        assert events_since(home, "training_set", bad_at) == [] and home.served_tag() == second_model

        # 3. the served model stops: the health check turns red within a minute
        stopped_at = time.time()
        assert home.cli("stop", timeout=120).returncode == 0
        red = lambda: (e := latest_check(home, "deployment", "health")) is not None and not e.passed  # noqa: E731
        assert wait_until(red, 90, every_s=2), "deployment.health did not turn red"
        assert time.time() - stopped_at < 90
    finally:
        up.send_signal(signal.SIGINT)
        try:
            up.wait(timeout=90)
        except subprocess.TimeoutExpired:
            stop_tree(up.pid)
    assert up.returncode == 0, (tmp_path / "up.log").read_text()[-3000:]
    assert trees and not [pid for pid in trees if psutil.pid_exists(pid) and psutil.Process(pid).status() != "zombie"]
    assert not _answers(home.ui + "/server_info")


def _answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def _graph(ui: str) -> dict:
    deadline = time.monotonic() + 120
    while True:  # the code location loads in a subprocess after the server is up
        data = httpx.post(f"{ui}/graphql", json={"query": GRAPH}, timeout=60).json()["data"]
        if data["assetNodes"] or time.monotonic() > deadline:
            return data
        time.sleep(2)


def click_past_prompts(driver, element) -> None:
    """Click ``element`` as a person would, first closing the UI's one-time community prompt (a modal that can open
    a few seconds after the page, over everything) when it is in the way."""
    from selenium.common.exceptions import ElementClickInterceptedException
    from selenium.webdriver.common.by import By

    for _ in range(10):
        for skip in driver.find_elements(By.XPATH, "//button[normalize-space()='Skip']"):
            if skip.is_displayed():
                skip.click()
        try:
            element.click()
            return
        except ElementClickInterceptedException:
            time.sleep(1)
    element.click()


def seen_in_a_browser(ui: str, shots: Path) -> None:
    """What a person sees in headless Chromium (Debian's chromium and chromium-driver, driven by selenium): on
    model_evaluation the gate table and the ROC picture in place, without a click, and every figure plotted across
    evaluations one click away (the metadata's Plots view); on model_monitoring the drift and quality pictures in
    place. Screenshots are kept under ``shots``."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    options = webdriver.ChromeOptions()
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1600,2400"):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=options)
    wait = WebDriverWait(driver, 90)
    try:
        driver.get(f"{ui}/assets/model_evaluation")
        # the metadata table of the latest materialization has loaded
        wait.until(lambda d: d.find_elements(By.XPATH, "//td[normalize-space()='candidate_roc_auc']"))
        driver.save_screenshot(str(shots / "model_evaluation.png"))
        gate_rows = driver.find_elements(By.XPATH, "//td[normalize-space()='beats_baseline']")
        assert gate_rows and gate_rows[0].is_displayed(), "the gate table is not shown in place"
        pictures = driver.find_elements(By.CSS_SELECTOR, "img[src^='data:image/svg+xml']")
        assert any(p.is_displayed() and p.size["width"] > 100 for p in pictures), "no ROC picture in place"
        click_past_prompts(driver, driver.find_element(By.XPATH, "//button[normalize-space()='Plots']"))
        wait.until(lambda d: d.find_elements(By.XPATH, "//*[normalize-space()='reference_roc_auc']"))
        assert len(driver.find_elements(By.CSS_SELECTOR, "canvas")) >= 10, "the numeric figures are not plotted"
        driver.save_screenshot(str(shots / "model_evaluation_plots.png"))

        driver.get(f"{ui}/assets/model_monitoring")
        wait.until(lambda d: d.find_elements(By.XPATH, "//td[normalize-space()='drift_chart']"))
        driver.save_screenshot(str(shots / "model_monitoring.png"))
        pictures = driver.find_elements(By.CSS_SELECTOR, "img[src^='data:image/svg+xml']")
        assert sum(p.is_displayed() for p in pictures) >= 2, "drift and quality pictures are not shown in place"
    finally:
        driver.quit()
