"""Landing -> raw_data (+ Great Expectations checks) -> features (+ checks) for one partition of synthetic rows.

Each size runs in its own process so peak memory (max RSS) is that size's alone. Prints a table:

    python -m benchmarks.data_pipeline --rows 100000 1000000
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
from datetime import datetime
from pathlib import Path

DAY = "2026-06-01"


def _child(rows: int) -> dict:
    """Measure one size inside this process (called in a fresh interpreter)."""
    home = Path(tempfile.mkdtemp(prefix="ml_assets_bench_"))
    os.environ.update(ML_ASSETS_HOME=str(home), DAGSTER_HOME=str(home / "dagster"), BENTOML_DO_NOT_TRACK="true")
    (home / "dagster").mkdir(parents=True)

    from dagster import DagsterInstance, materialize

    from ml_assets.data.assets import build_data_assets
    from ml_assets.dataset import load_default_spec
    from ml_assets.datasets.synthetic import synthetic_rows
    from ml_assets.environments import local_resources

    spec = load_default_spec()
    started = time.perf_counter()
    frame = synthetic_rows(spec, rows, seed=1, start=datetime.fromisoformat(DAY), days=1)
    landing = home / "landing" / DAY
    landing.mkdir(parents=True)
    frame.to_parquet(landing / "bench.parquet", index=False)
    land_s = time.perf_counter() - started
    del frame

    data = build_data_assets(spec)
    instance = DagsterInstance.ephemeral()
    started = time.perf_counter()
    result = materialize(
        [data.raw_data, data.features, data.features_checks],
        partition_key=DAY,
        instance=instance,
        resources=local_resources(spec),
        raise_on_error=True,
    )
    pipeline_s = time.perf_counter() - started
    checks = result.get_asset_check_evaluations()
    step_s = _step_seconds(instance, result)
    return {
        "rows": rows,
        "land_s": land_s,
        "pipeline_s": pipeline_s,
        "raw_data_s": step_s.get("raw_data", float("nan")),
        "features_s": step_s.get("features", float("nan")) + step_s.get("features_checks", 0.0),
        "checks": f"{sum(c.passed for c in checks)}/{len(checks)}",
        "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def _step_seconds(instance, result) -> dict[str, float]:
    return {s.step_key: s.end_time - s.start_time for s in instance.get_run_step_stats(result.run_id)}


def run(sizes: list[int]) -> list[dict]:
    results = []
    for rows in sizes:
        proc = subprocess.run(
            [sys.executable, "-m", "benchmarks.data_pipeline", "--child", str(rows)],
            capture_output=True,
            text=True,
            check=False,
        )
        if proc.returncode != 0:
            raise RuntimeError(f"benchmark child for {rows} rows failed:\n{proc.stderr[-3000:]}")
        results.append(json.loads(proc.stdout.strip().splitlines()[-1]))
    return results


def table(results: list[dict]) -> str:
    from ml_assets import markdown

    rows = [
        {
            "rows": f"{r['rows']:,}",
            "land (s)": f"{r['land_s']:.1f}",
            "raw_data+GX (s)": f"{r['raw_data_s']:.1f}",
            "features+checks (s)": f"{r['features_s']:.1f}",
            "pipeline (s)": f"{r['pipeline_s']:.1f}",
            "rows/s": f"{r['rows'] / r['pipeline_s']:,.0f}",
            "peak RSS (MB)": f"{r['peak_mb']:,.0f}",
            "checks passed": r["checks"],
        }
        for r in results
    ]
    return markdown.table(rows, right=[c for c in rows[0] if c != "checks passed"] if rows else ())


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--child", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(_child(args.child)))
        return
    print("landing -> raw_data -> GX checks -> features, one daily partition (target: 1e6 rows < 20 s)")
    print(table(run(args.rows)))


if __name__ == "__main__":
    main()
