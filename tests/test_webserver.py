"""The Dagster UI as a user opens it: a real dagster-webserver on workspace.yaml answers GraphQL with the graph."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from resources.process_tree import free_port

ROOT = Path(__file__).resolve().parents[1]

QUERY = """
{
  assetNodes { assetKey { path } groupName isPartitioned assetChecksOrError { ... on AssetChecks { checks { name } } } }
  repositoriesOrError { ... on RepositoryConnection { nodes { name jobs { name } sensors { name } } } }
}
"""


@pytest.fixture
def webserver(tmp_path: Path):
    port = free_port()
    home = tmp_path / "state"
    (home / "dagster").mkdir(parents=True)
    env = {
        **os.environ,
        "ML_ASSETS_HOME": str(home),
        "DAGSTER_HOME": str(home / "dagster"),
        "BENTOML_HOME": str(home / "bentoml"),
    }
    log = (tmp_path / "webserver.log").open("w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "dagster_webserver", "-w", "workspace.yaml", "-h", "127.0.0.1", "-p", str(port)],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            assert proc.poll() is None, (tmp_path / "webserver.log").read_text()[-3000:]
            try:
                if httpx.get(f"{url}/server_info", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(1)
        else:
            pytest.fail("dagster-webserver did not answer within 180 s")
        yield url
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        log.close()


@pytest.mark.integration
def test_ui_serves_the_whole_graph(webserver: str) -> None:
    deadline = time.monotonic() + 120
    while True:  # the code location loads in a subprocess after the server is up
        data = httpx.post(f"{webserver}/graphql", json={"query": QUERY}, timeout=60).json()["data"]
        if data["assetNodes"] or time.monotonic() > deadline:
            break
        time.sleep(2)
    nodes = {"/".join(n["assetKey"]["path"]): n for n in data["assetNodes"]}
    expected_groups = {
        "raw_data": "data",
        "features": "data",
        "training_set": "data",
        "baseline_model": "model",
        "candidate_model": "model",
        "model_evaluation": "model",
        "champion_model": "model",
        "bento": "serving",
        "deployment": "serving",
    }
    assert {k: nodes[k]["groupName"] for k in expected_groups if k in nodes} == expected_groups
    assert nodes["raw_data"]["isPartitioned"] and not nodes["champion_model"]["isPartitioned"]
    checks = {c["name"] for c in nodes["model_evaluation"]["assetChecksOrError"]["checks"]}
    assert {"beats_baseline", "blessed_against_champion", "fairness", "latency_budget"} <= checks
    deployment_checks = {c["name"] for c in nodes["deployment"]["assetChecksOrError"]["checks"]}
    assert {"health", "train_serve_skew", "http_p99_latency"} <= deployment_checks
    repo = data["repositoriesOrError"]["nodes"][0]
    assert {"ingest_job", "training_set_job", "model_job", "serving_job", "rollback_champion"} <= {
        j["name"] for j in repo["jobs"]
    }
    assert "landing_sensor" in {s["name"] for s in repo["sensors"]}
