"""The self-driving graph with real processes: ``ml-assets demo``, then ``ml-assets up`` (a real dagster-webserver and
dagster-daemon on free ports), then nothing but landings.

- The UI serves the whole graph, its checks, jobs and sensors, with the sensors on.
- A landed day flows to a new deployment answering over HTTP with a new model tag: no call but the landing.
- A corrupted batch stops at raw_data (its blocking checks fail): features are not recomputed, the champion keeps
  serving.
- When the served model stops answering, the deployment's health check turns red within a minute.
- Ctrl-C stops the webserver and the daemon with their whole process trees, by PID: nothing is left listening.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import psutil
import pytest

from ml_assets.dataset import load_default_spec
from ml_assets.datasets.next_day import land_next_day
from ml_assets.datasets.simulator import Corruption, replay
from ml_assets.partitions import today
from ml_assets.serving.schema import warmup_record
from resources.bento_deployer import free_port
from resources.processes import stop_tree, wait_until

pytestmark = pytest.mark.integration

GRAPH = """
{
  assetNodes { assetKey { path } groupName isPartitioned assetChecksOrError { ... on AssetChecks { checks { name } } } }
  repositoriesOrError { ... on RepositoryConnection { nodes { name jobs { name } sensors { name sensorState { status } } } } }
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


def test_demo_then_up_then_only_landings(tmp_path: Path) -> None:
    home = Home(tmp_path / "home")
    seeded = home.cli("demo", "--fresh", timeout=900)
    assert seeded.returncode == 0, seeded.stdout[-4000:] + seeded.stderr[-4000:]
    first_model = home.served_tag()
    assert first_model is not None

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
        assert {
            k: nodes[k]["groupName"] for k in ("landing_files", "raw_data", "approved_training_set")
        } == dict.fromkeys(("landing_files", "raw_data", "approved_training_set"), "data")
        assert nodes["raw_data"]["isPartitioned"] and not nodes["champion_model"]["isPartitioned"]
        assert {"beats_baseline", "fairness"} <= {
            c["name"] for c in nodes["model_evaluation"]["assetChecksOrError"]["checks"]
        }
        repo = data["repositoriesOrError"]["nodes"][0]
        assert {"ingest_job", "model_job", "serving_job", "rollback_champion"} <= {j["name"] for j in repo["jobs"]}
        sensors = {s["name"]: s["sensorState"]["status"] for s in repo["sensors"]}
        assert sensors == dict.fromkeys(("automation_sensor", "deployment_health_sensor", "landing_sensor"), "RUNNING")
        trees = [p.pid for p in psutil.Process(up.pid).children(recursive=True)]

        # 1. a landed day, and nothing else: a new model serves
        landed_at = time.time()
        landed = land_next_day(load_default_spec(), home.root / "landing")
        assert wait_until(lambda: home.served_tag() not in (None, first_model), 600, every_s=2), (
            f"no new model after landing {landed.day}; see {tmp_path / 'up.log'} and {home.root / 'logs'}"
        )
        second_model = home.served_tag()
        # the stable URL switches inside the deployment step; its materialization follows
        assert wait_until(lambda: events_since(home, "deployment", landed_at), 60, every_s=1)
        for asset in ("raw_data", "features", "training_set", "approved_training_set", "candidate_model", "deployment"):
            assert events_since(home, asset, landed_at), f"{asset} was not materialized by automation"

        # 2. a corrupted batch of the same day: raw_data fails its blocking check, nothing after it moves
        day = today(load_default_spec()).isoformat()
        bad_at = time.time()
        scratch = tmp_path / "bad"
        corrupt = Corruption("out_of_range", landed.day, "age")
        replay(load_default_spec(), scratch, landed.day, landed.day, rows_per_day=500, corruptions=[corrupt],
               first_id=7_000_000_000, file_stem="bad")  # fmt: skip
        for f in (scratch / day).iterdir():
            f.rename(home.root / "landing" / day / f.name)
        assert wait_until(lambda: events_since(home, "raw_data", bad_at, day), 300, every_s=2)
        assert wait_until(lambda: latest_check(home, "raw_data", "age_in_range", day) is not None, 60)
        assert not latest_check(home, "raw_data", "age_in_range", day).passed
        time.sleep(40)  # two more automation ticks
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
        home.cli("stop", timeout=120)
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
