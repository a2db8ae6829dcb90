"""Peak memory of training ranks on a window larger than their shard cache: kept, streamed, and (optionally) the
previous code, where every rank read every train and validation row and fitted the preprocessing on them.

    python -m benchmarks.rank_memory --rows 2000000 --budget-mb 32 [--before DIR]

``DIR`` is an export of the previous code (``git archive <commit> | tar -x -C DIR``). Synthetic Adult rows (the demo
data repeated with fresh ids) are written as Parquet once; each variant writes its job (the launching step's work,
measured as one process) and runs two CPU ranks under torchrun for ``--epochs`` epochs of one MLP, sampling the
resident memory of every process every 0.1 s. Prints a Markdown table.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import psutil

HERE = Path(__file__).resolve().parents[1]


def peak_rss(command: list[str], env: dict[str, str]) -> tuple[float, float, float]:
    """Run ``command``; (wall seconds, peak RSS of its largest process in MB, peak RSS summed over its processes)."""
    # from a neutral folder: ``python -m`` puts the working directory first on the path, before PYTHONPATH's code
    process = subprocess.Popen(
        command, env=env, cwd=tempfile.gettempdir(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    )
    parent = psutil.Process(process.pid)
    peaks = {"one": 0, "all": 0}
    started = time.perf_counter()

    def sample() -> None:
        while process.poll() is None:
            try:
                procs = [parent, *parent.children(recursive=True)]
                rss = [p.memory_info().rss for p in procs if p.is_running()]
            except psutil.Error:
                continue
            peaks["one"], peaks["all"] = max(peaks["one"], *rss), max(peaks["all"], sum(rss))
            time.sleep(0.1)

    thread = threading.Thread(target=sample, daemon=True)
    thread.start()
    _, err = process.communicate()
    thread.join()
    if process.returncode:
        raise SystemExit(f"{command} failed:\n{err[-3000:]}")
    return time.perf_counter() - started, peaks["one"] / 2**20, peaks["all"] / 2**20


def generate(folder: Path, rows: int) -> None:
    """Synthetic train and validation rows as Parquet files (row groups of ROW_GROUP_ROWS)."""
    from ml_assets.dataset import load_default_spec
    from ml_assets.datasets.samples import demo_training_set
    from resources.training_storage import TrainingStorage

    frame = demo_training_set(load_default_spec(), rows, seed=0)
    storage = TrainingStorage(root=str(folder))
    for split in ("train", "validation"):
        part = frame[frame["split"] == split].drop(columns=["split"])
        scan = storage.put_rows(str(folder / f"{split}.parquet"), part)
        (folder / f"{split}.json").write_text(scan.model_dump_json())


def cache_bytes() -> int:
    """The shard cache the benchmark's variant sets (``ML_ASSETS_SHARD_CACHE_MB``), as the environments read it."""
    from resources.deepspeed_trainer import SHARD_CACHE_MB

    return int(float(os.environ.get("ML_ASSETS_SHARD_CACHE_MB", SHARD_CACHE_MB)) * 2**20)


def write_job(folder: Path, out: Path, epochs: int) -> None:
    """The job a launching step would write, with this process's code (the previous code's shape if it has it)."""
    from ml_assets.dataset import load_default_spec
    from resources.deepspeed_trainer import DeepSpeedTrainer
    from resources.launchers import LocalTorchrunLauncher
    from resources.training_records import TrainingJob
    from resources.training_storage import TrainingStorage

    spec = load_default_spec()
    trainer = DeepSpeedTrainer(
        launcher=LocalTorchrunLauncher(),
        storage=TrainingStorage(root=str(out)),
        ranks=2,
        device="cpu",
        micro_batch_size=512,
        max_epochs=epochs,
        early_stopping_patience=epochs,
        checkpoint_dir=str(out / "checkpoints"),
    )
    plan = trainer.plan()
    fields = dict(
        output_dir=str(out / "output"),
        checkpoint_dir=str(out / "checkpoints"),
        spec=spec.model_dump(mode="json"),
        trials=trainer._trials({"architecture": "mlp", "hidden": [128, 64]}, [], plan),
        select_by="log_loss",
        higher_is_better=False,
        max_seconds=None,
        halving=None,
        ensemble_size=1,
        device="cpu",
        precision=plan.precision,
        max_epochs=epochs,
        epoch_rows=None,  # every epoch reads the whole shard: what bounds a rank's memory
        patience=epochs,
        seed=0,
        warmup_fraction=0.05,
        launched_at=time.time(),
    )
    if "train_rows" in TrainingJob.model_fields:  # the previous code: ranks read the staged files whole
        job = TrainingJob(
            train_rows=str(folder / "train.parquet"), validation_rows=str(folder / "validation.parquet"), **fields
        )
    else:
        from ml_assets.model.shards import prepare
        from resources.parquet_tables import TableScan

        train, val = (
            TableScan.model_validate_json((folder / f"{s}.json").read_text()) for s in ("train", "validation")
        )
        job = TrainingJob(rows=prepare(spec, train, val, plan.ranks), shard_cache_bytes=cache_bytes(), **fields)
    (out / "job.json").write_text(job.model_dump_json())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=2_000_000)
    parser.add_argument("--budget-mb", type=float, default=32)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--before", help="an export of the previous code, to measure it too")
    parser.add_argument("--step", nargs=3, help=argparse.SUPPRESS)  # internal: generate|job FOLDER OUT
    args = parser.parse_args()
    if args.step:
        kind, folder, out = args.step
        generate(Path(folder), args.rows) if kind == "generate" else write_job(Path(folder), Path(out), args.epochs)
        return

    work = Path(tempfile.mkdtemp(prefix="rank-memory-"))
    data = work / "data"
    base = {**os.environ, "ML_ASSETS_HOME": str(work / "home"), "OMP_NUM_THREADS": "1"}
    # by path, so that the job step imports the code under test (PYTHONPATH), whichever it is
    me = [sys.executable, str(Path(__file__).resolve()), "--rows", str(args.rows), "--epochs", str(args.epochs)]
    subprocess.run([*me, "--step", "generate", str(data), "-"], env={**base, "PYTHONPATH": str(HERE)}, check=True)
    variants = [("kept in memory", str(HERE), 1024 * 1024), ("streamed", str(HERE), args.budget_mb)]
    if args.before:
        variants.insert(0, ("before: every rank reads every row", args.before, 0))
    print(
        "| variant | shard cache (MB) | launching step: peak RSS (MB) | rank: peak RSS (MB) | ranks summed (MB) "
        "| ranks wall (s) | val ROC AUC |\n|---|---|---|---|---|---|---|"
    )
    for name, code, budget in variants:
        out = work / name.split(":")[0].replace(" ", "-")
        out.mkdir(parents=True)
        env = {**base, "PYTHONPATH": code, "ML_ASSETS_SHARD_CACHE_MB": str(budget)}
        command = [*me, "--step", "job", str(data), str(out)]
        _, step_rss, _ = peak_rss(command, env)
        torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]
        wall, rank_rss, all_rss = peak_rss([*torchrun, "-m", "ml_assets.model.train", str(out / "job.json")], env)
        auc = json.loads((out / "output" / "result.json").read_text())["metrics"]["roc_auc"]
        cache = "-" if name.startswith("before") else f"{budget:.0f}"
        print(f"| {name} | {cache} | {step_rss:.0f} | {rank_rss:.0f} | {all_rss:.0f} | {wall:.0f} | {auc:.4f} |")


if __name__ == "__main__":
    main()
