"""Peak memory of one daily ingest (raw_data + its checks + features + its checks, one ``materialize``).

The landing day is written first, in chunks, by another process (CSV files of synthetic Adult rows drawn from the
demo rows, ``--files`` of them), so the measured process holds only what the ingest holds. Each size runs in a
fresh interpreter; peak memory is the max RSS of that process and its children (the step runs in-process).

    python -m benchmarks.ingest_memory --rows 1000000 3000000
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
CHUNK_ROWS = 500_000


def land(home: Path, rows: int, files: int, fmt: str) -> None:
    """Write ``rows`` synthetic rows of DAY as ``files`` landing files, a chunk at a time."""
    import pyarrow as pa
    import pyarrow.csv as pacsv

    from ml_assets.dataset import load_default_spec
    from ml_assets.datasets.synthetic import synthetic_rows

    spec = load_default_spec()
    folder = home / "landing" / DAY
    folder.mkdir(parents=True, exist_ok=True)
    per_file = -(-rows // files)
    done = 0
    for f in range(files):
        n_file = min(per_file, rows - done)
        path = folder / f"part{f:03d}.{fmt}"
        writer = None
        for start in range(0, n_file, CHUNK_ROWS):
            n = min(CHUNK_ROWS, n_file - start)
            frame = synthetic_rows(
                spec, n, seed=done + start, start=datetime.fromisoformat(DAY), days=1,
                from_demo=True, id_start=done + start + 1,
            )  # fmt: skip
            table = pa.Table.from_pandas(frame.astype({c: "string" for c in frame.select_dtypes("category")}))
            if writer is None:
                writer = pacsv.CSVWriter(path, table.schema) if fmt == "csv" else None
                if writer is None:
                    import pyarrow.parquet as pq

                    writer = pq.ParquetWriter(path, table.schema)
            writer.write_table(table)
        if writer is not None:
            writer.close()
        done += n_file


def measure(home: Path) -> dict:
    """Materialize the day's ingest in this process; its wall time and checks."""
    from dagster import DagsterInstance, materialize

    from ml_assets.data.assets import build_data_assets
    from ml_assets.dataset import load_default_spec
    from ml_assets.environments import local_resources

    spec = load_default_spec()
    data = build_data_assets(spec)
    started = time.perf_counter()
    result = materialize(
        [data.raw_data, data.features, data.features_checks],
        partition_key=DAY,
        instance=DagsterInstance.ephemeral(),
        resources=local_resources(spec),
        raise_on_error=True,
    )
    checks = result.get_asset_check_evaluations()
    failed = sorted(c.check_name for c in checks if not c.passed)
    return {
        "wall_s": time.perf_counter() - started,
        "checks": f"{len(checks) - len(failed)}/{len(checks)}",
        "failed": failed,
    }


def child(mode: str, home: str, rows: int, files: int, fmt: str) -> None:
    os.environ.update(ML_ASSETS_HOME=home, DAGSTER_HOME=str(Path(home) / "dagster"), BENTOML_DO_NOT_TRACK="true")
    (Path(home) / "dagster").mkdir(parents=True, exist_ok=True)
    if mode == "land":
        land(Path(home), rows, files, fmt)
        print(json.dumps({}))
        return
    out = measure(Path(home))
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    print(json.dumps(out | {"peak_mb": (own + children) / 1024}))


def run(rows: int, files: int, fmt: str) -> dict:
    home = tempfile.mkdtemp(prefix="ml_assets_ingest_")
    results = {}
    for mode in ("land", "ingest"):
        proc = subprocess.run(
            [sys.executable, "-m", "benchmarks.ingest_memory", "--child", mode, home, str(rows), str(files), fmt],
            capture_output=True,
            text=True,
            check=False,
        )
        if proc.returncode != 0:
            raise RuntimeError(f"{mode} for {rows} rows failed:\n{proc.stderr[-3000:]}")
        results = json.loads(proc.stdout.strip().splitlines()[-1])
    return {"rows": rows} | results


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, nargs="+", default=[1_000_000, 3_000_000])
    parser.add_argument("--files", type=int, default=4)
    parser.add_argument("--fmt", choices=["csv", "parquet"], default="csv")
    parser.add_argument("--child", nargs=5, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        mode, home, rows, files, fmt = args.child
        child(mode, home, int(rows), int(files), fmt)
        return
    print("| rows | wall (s) | peak RSS (MB) | checks passed | failed |")
    print("|---:|---:|---:|---|---|")
    for rows in args.rows:
        r = run(rows, args.files, args.fmt)
        print(f"| {r['rows']:,} | {r['wall_s']:.1f} | {r['peak_mb']:,.0f} | {r['checks']} | {', '.join(r['failed'])} |")


if __name__ == "__main__":
    main()
