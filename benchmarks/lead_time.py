"""Benchmark: lead time from a landed day to the deployment answering with a new model, unattended.

On a fresh home it runs ``ml-assets demo`` (the seed), starts ``ml-assets up`` (webserver + daemon, sensors on),
lands the next simulated day and polls the served URL until it answers with a new model tag. Nothing else is
called: the landing sensor, declarative automation and the gates do the rest. The split comes from the Dagster
event log: when each asset of the chain materialized, measured from the moment the file landed.

    python -m benchmarks.lead_time [--timeout 900] [--keep HOME]   # HOME is wiped, seeded, and kept afterwards

Target on 2 cores: under 3 minutes from landing to the new model answering.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

TARGET_S = 180.0
CHAIN = (
    ("landing observed", "landing_files"),
    ("ingest", "features"),
    ("training set", "training_set"),
    ("training", "candidate_model"),
    ("gates", "model_evaluation"),
    ("promotion", "champion_model"),
    ("bento", "bento"),
)  # then "deploy": validated, switched and answering on the stable URL (the deployment step's record follows)


def free_port() -> int:
    from resources.process_tree import free_port as pick

    return pick()


def served_tag(url: str, record: dict) -> str | None:
    try:
        r = httpx.post(url + "/predict", json={"record": record}, timeout=5)
        return r.json()["model_tag"] if r.status_code == 200 else None
    except (httpx.HTTPError, ValueError, KeyError):
        return None


def event_times(dagster_home: Path, after: float) -> dict[str, float]:
    """First materialization (observation for landing_files) time of each chain asset after ``after``."""
    os.environ["DAGSTER_HOME"] = str(dagster_home)
    from dagster import AssetKey, AssetRecordsFilter, DagsterInstance

    found: dict[str, float] = {}
    with DagsterInstance.get() as instance:
        for _, asset in CHAIN:
            flt = AssetRecordsFilter(asset_key=AssetKey(asset), after_timestamp=after)
            fetch = instance.fetch_observations if asset == "landing_files" else instance.fetch_materializations
            records = fetch(flt, limit=50, ascending=True).records
            if records:
                found[asset] = records[0].timestamp
    return found


def run(timeout_s: float, keep: Path | None) -> list[dict]:
    from ml_assets.dataset import load_default_spec
    from ml_assets.datasets.next_day import land_next_day
    from ml_assets.serving.schema import warmup_record
    from resources.process_tree import stop_tree

    home = keep or Path(tempfile.mkdtemp(prefix="lead-time-"))
    serve_port, ui_port = free_port(), free_port()
    env = {**os.environ, "ML_ASSETS_HOME": str(home), "ML_ASSETS_SERVE_PORT": str(serve_port)}
    env.pop("DAGSTER_HOME", None)
    env.pop("BENTOML_HOME", None)
    cli = [sys.executable, "-m", "ml_assets.cli"]
    url = f"http://127.0.0.1:{serve_port}"
    print(f"home {home}; seeding with ml-assets demo ...", flush=True)
    seed = subprocess.run([*cli, "demo", "--fresh"], env=env, capture_output=True, text=True)
    if seed.returncode != 0:
        raise SystemExit(f"ml-assets demo failed:\n{seed.stdout[-3000:]}\n{seed.stderr[-3000:]}")
    spec = load_default_spec()
    record = warmup_record(spec)
    before = served_tag(url, record)
    up = subprocess.Popen(
        [*cli, "up", "--port", str(ui_port)], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    try:
        deadline = time.monotonic() + 180
        while not _ready(f"http://127.0.0.1:{ui_port}"):
            if up.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"ml-assets up did not start:\n{up.stdout.read() if up.stdout else ''}")
            time.sleep(1)
        time.sleep(20)  # let every sensor take its first tick, as a user would find it running
        landed_at = time.time()
        landed = land_next_day(spec, home / "landing")
        print(f"landed {landed.day} ({landed.rows} rows); serving {before}; waiting for a new model ...", flush=True)
        served_at = None
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            tag = served_tag(url, record)
            if tag is not None and tag != before:
                served_at = time.time()
                print(f"new model {tag} answering after {served_at - landed_at:.0f} s", flush=True)
                break
            time.sleep(1)
        times = event_times(home / "dagster", landed_at)  # every chain asset materialized before the switch
    finally:
        up.send_signal(signal.SIGINT)
        try:
            up.wait(timeout=60)
        except subprocess.TimeoutExpired:
            stop_tree(up.pid)
        subprocess.run([*cli, "stop"], env=env, capture_output=True)
        if keep is None:
            shutil.rmtree(home, ignore_errors=True)
    rows, previous = [], landed_at
    for stage, asset in CHAIN:
        at = times.get(asset)
        rows.append(
            {
                "stage": stage,
                "until": asset,
                "done at (s after landing)": None if at is None else round(at - landed_at, 1),
                "stage seconds": None if at is None else round(at - previous, 1),
            }
        )
        previous = at or previous
    total = None if served_at is None else round(served_at - landed_at, 1)
    rows.append(
        {
            "stage": "deploy",
            "until": "the new model answering over HTTP",
            "done at (s after landing)": total,
            "stage seconds": None if served_at is None else round(served_at - previous, 1),
        }
    )
    return rows


def _ready(url: str) -> bool:
    try:
        return httpx.get(url + "/server_info", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def main(argv: list[str]) -> int:
    from ml_assets import markdown

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--timeout", type=float, default=900, help="seconds to wait for the new model")
    parser.add_argument(
        "--keep",
        type=Path,
        default=None,
        help="run in this home instead of a temp dir (demo --fresh wipes and seeds it) and keep it afterwards",
    )
    args = parser.parse_args(argv)
    rows = run(args.timeout, args.keep)
    print(markdown.table(rows, right=["done at (s after landing)", "stage seconds"], digits=1))
    total = rows[-1]["done at (s after landing)"]
    verdict = "no new model within the timeout" if total is None else f"{total:.0f} s"
    print(f"\nlead time: {verdict} (target < {TARGET_S:.0f} s on 2 cores)")
    print(json.dumps({"lead_time_s": total}))
    return 0 if total is not None else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
