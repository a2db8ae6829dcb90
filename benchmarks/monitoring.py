"""Benchmark: prediction_log + labels + model_monitoring for one day of logged predictions.

A champion (the logistic baseline fitted on real Adult rows) and its training window are put in place; ``--rows``
prediction log lines in the serving format (real Adult inputs, the model's probabilities, ids and sensitive
attributes) land in one day folder over four writer files, and labels for half of them. Then, in a child process
(so its peak memory is its own), the real Definitions materialize prediction_log, labels and model_monitoring for
that day through the monitoring job and the labels asset.

    python -m benchmarks.monitoring [--rows 1000000]

Target on 2 cores: under 30 s for 1e6 predictions.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

TARGET_S = 30.0
DAY = date(2026, 3, 10)
WRITERS = 4


def prepare(home: Path, rows: int) -> None:
    """The champion, its training window in the warehouse, the day's log lines and labels for half of them."""
    import dagster as dg

    from ml_assets.dataset import load_default_spec
    from ml_assets.datasets.replay_log import install_champion, served_rows, write_labels, write_log
    from tests.conftest import pinned

    world = install_champion(pinned(load_default_spec()), home, DAY, dg.DagsterInstance.get())
    served = served_rows(world, rows, seed=0, first_id=10**9)
    write_log(world, home / "prediction_log", DAY, served, WRITERS)
    write_labels(world, home / "labels", DAY, served.iloc[::2])


def measure(home: Path) -> dict[str, float]:
    """In this (child) process: materialize labels, then prediction_log and model_monitoring, timed."""
    import dagster as dg

    from ml_assets.dataset import load_default_spec
    from ml_assets.definitions import MONITORING_JOB, build_definitions
    from tests.conftest import pinned

    defs = build_definitions(pinned(load_default_spec()), env="local")
    instance = dg.DagsterInstance.get()
    quiet = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}
    out: dict[str, float] = {}
    t0 = time.perf_counter()
    labels = defs.get_implicit_global_asset_job_def().get_subset(asset_selection={dg.AssetKey("labels")})
    assert labels.execute_in_process(partition_key=DAY.isoformat(), instance=instance, run_config=quiet).success
    out["labels_s"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    result = defs.resolve_job_def(MONITORING_JOB).execute_in_process(
        partition_key=DAY.isoformat(), instance=instance, run_config=quiet
    )
    assert result.success
    for event in result.all_events:
        if event.event_type_value == "STEP_SUCCESS":
            out[f"{event.step_key}_s"] = event.event_specific_data.duration_ms / 1000  # type: ignore[union-attr]
    out["job_s"] = time.perf_counter() - t0
    meta = result.asset_materializations_for_node("model_monitoring")[0].metadata
    out["rows"] = float(meta["dagster/row_count"].value)
    out["labeled_rows"] = float(meta["labeled_rows"].value)
    out["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return out


def main(argv: list[str]) -> int:
    from ml_assets import markdown

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--child", type=Path, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(measure(args.child)))
        return 0
    home = Path(tempfile.mkdtemp(prefix="bench-monitoring-"))
    env = {**os.environ, "ML_ASSETS_HOME": str(home), "DAGSTER_HOME": str(home / "dagster"),
           "BENTOML_HOME": str(home / "bentoml"), "BENTOML_DO_NOT_TRACK": "true"}  # fmt: skip
    (home / "dagster").mkdir(parents=True)
    os.environ.update(env)
    t0 = time.perf_counter()
    prepare(home, args.rows)
    print(f"prepared {args.rows:,} log lines in {time.perf_counter() - t0:.0f} s under {home}", flush=True)
    child = subprocess.run([sys.executable, "-m", "benchmarks.monitoring", "--child", str(home)], env=env,
                           capture_output=True, text=True, cwd=Path(__file__).resolve().parents[1])  # fmt: skip
    if child.returncode != 0:
        print(child.stdout[-3000:], child.stderr[-3000:], file=sys.stderr)
        return 1
    m = json.loads(child.stdout.strip().splitlines()[-1])
    total = m["prediction_log_s"] + m["model_monitoring_s"]
    rows = [
        {
            "logged predictions": f"{int(m['rows']):,}",
            "labeled": f"{int(m['labeled_rows']):,}",
            "prediction_log (s)": m["prediction_log_s"],
            "model_monitoring (s)": m["model_monitoring_s"],
            "prediction_log + model_monitoring (s)": total,
            "labels (s)": m["labels_s"],
            "peak RSS (MB)": round(m["peak_rss_mb"]),
        }
    ]
    print(markdown.table(rows, digits=1, right=list(rows[0])[2:]))
    print(
        f"\ntarget: prediction_log + model_monitoring < {TARGET_S:.0f} s -> {'met' if total < TARGET_S else 'MISSED'}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
