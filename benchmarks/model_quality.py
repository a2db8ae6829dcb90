"""Model quality: the logistic baseline, the default candidate search and the gradient-boosted trees reference,
side by side on every shipped dataset and on two synthetic datasets of known structure.

    python -m benchmarks.model_quality                       # all five datasets
    python -m benchmarks.model_quality --datasets adult      # a subset

Each dataset runs as a user would run it: a fresh home, ``ml-assets demo --fresh --stages data,model`` with the
dataset's spec (the synthetic ones get theirs from ``ml-assets spec infer``, no hand edit), so the figures come from
the pipeline's own time splits, gates and windows. The table reads the latest ``model_evaluation`` (test ROC AUC,
PR AUC and log loss of each model) and the run's step timings (training seconds of the baseline and candidate
steps; the reference's fit time is its own metadata). A dataset whose demo stops before an evaluation (a window that
fails its checks) is reported with the reason.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from datetime import date, timedelta
from pathlib import Path

import numpy as np
import pandas as pd

from ml_assets import markdown

SHIPPED = Path(__file__).resolve().parents[1] / "ml_assets" / "datasets"
DATASETS = ("adult", "compas", "mpls_stops", "synthetic_interactions", "synthetic_linear")
ROLES = ("baseline", "candidate", "reference")
METRICS = ("roc_auc", "pr_auc", "log_loss", "ece")
SYNTHETIC_ROWS = 12_000
SYNTHETIC_DAYS = 14


def synthetic_csv(kind: str, path: Path, seed: int = 0) -> Path:
    """Rows over ``SYNTHETIC_DAYS`` days with a label of known structure: ``interactions`` (XOR of thresholds and a
    product of two numerics, which a linear model cannot fit) or ``linear`` (a logistic model of the features)."""
    rng = np.random.default_rng(seed)
    n = SYNTHETIC_ROWS
    x = rng.normal(size=(n, 4))
    colour = rng.choice(["red", "green", "blue", "amber"], size=n)
    shift = pd.Series(colour).map({"red": 0.8, "green": -0.4, "blue": 0.0, "amber": -0.6}).to_numpy()
    if kind == "interactions":
        logit = 2.5 * np.sign(x[:, 0] * x[:, 1]) + 1.5 * (x[:, 2] * x[:, 3]) + shift * np.sign(x[:, 0])
    else:
        logit = 1.2 * x[:, 0] - 0.8 * x[:, 1] + 0.5 * x[:, 2] + shift
    y = rng.random(n) < 1 / (1 + np.exp(-(logit - 0.5)))
    start = pd.Timestamp(date.today() - timedelta(days=SYNTHETIC_DAYS))
    frame = pd.DataFrame(
        {
            "row_id": np.arange(1, n + 1),
            "seen_at": (start + pd.to_timedelta(np.sort(rng.random(n)) * SYNTHETIC_DAYS, unit="D")).strftime(
                "%Y-%m-%d %H:%M:%S"
            ),
            **{f"x{i}": np.round(x[:, i], 4) for i in range(4)},
            "colour": colour,
            "outcome": np.where(y, "yes", "no"),
        }
    )
    frame.to_csv(path, index=False)
    return path


def spec_for(name: str, work: Path, env: dict[str, str]) -> Path:
    """The shipped spec, or for a synthetic dataset the spec ``ml-assets spec infer`` proposes for its file."""
    if not name.startswith("synthetic_"):
        return SHIPPED / f"{name}.yaml"
    data = synthetic_csv(name.removeprefix("synthetic_"), work / f"{name}.csv")
    spec = work / f"{name}.yaml"
    cmd = [sys.executable, "-m", "ml_assets.cli", "spec", "infer", str(data), "--target", "outcome"]
    cmd += ["--positive", "yes", "--name", name.replace("_", "-"), "-o", str(spec)]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"spec infer failed for {name}: {done.stderr.strip()}")
    return spec


def evaluation_figures(home: Path) -> dict[str, float | str]:
    """The latest model_evaluation's figures and the training seconds of its models' steps."""
    from dagster import AssetKey, DagsterInstance

    with DagsterInstance.from_config(str(home / "dagster")) as instance:
        record = instance.get_latest_materialization_event(AssetKey("model_evaluation"))
        if record is None:
            return {"error": "no model_evaluation (the demo stopped before it)"}
        meta = record.asset_materialization.metadata
        out: dict[str, float | str] = {}
        for role in ROLES:
            for metric in METRICS:
                value = meta.get(f"{role}_{metric}")
                out[f"{role}_{metric}"] = float(value.value) if value is not None else float("nan")
        out["reference_seconds"] = (
            float(meta["reference_fit_seconds"].value) if "reference_fit_seconds" in meta else 0.0
        )
        for step, key in (("baseline_model", "baseline_seconds"), ("candidate_model", "candidate_seconds")):
            out[key] = _step_seconds(instance, AssetKey(step))
        candidate = instance.get_latest_materialization_event(AssetKey("candidate_model"))
        family = candidate.asset_materialization.metadata.get("family") if candidate else None
        out["candidate_family"] = str(family.value) if family is not None else "?"
        return out


def _step_seconds(instance, key) -> float:
    record = instance.get_latest_materialization_event(key)
    if record is None:
        return float("nan")
    for stats in instance.get_run_step_stats(record.run_id):
        if stats.step_key == key.path[-1] and stats.end_time and stats.start_time:
            return stats.end_time - stats.start_time
    return float("nan")


def run_dataset(name: str, work: Path) -> dict[str, float | str]:
    home = work / f"home-{name}"
    env = {k: v for k, v in os.environ.items() if k not in ("DAGSTER_HOME", "BENTOML_HOME")}
    env.update(ML_ASSETS_HOME=str(home), BENTOML_DO_NOT_TRACK="true")
    env["ML_ASSETS_DATASET_SPEC"] = str(spec_for(name, work, env))
    demo = [sys.executable, "-m", "ml_assets.cli", "demo", "--fresh", "--stages", "data,model"]
    done = subprocess.run(demo, env=env, capture_output=True, text=True)
    figures = evaluation_figures(home)
    if "error" in figures and done.returncode != 0:
        figures["error"] = (done.stderr.strip() or done.stdout.strip()).splitlines()[-1][:200]
    return figures


def table(results: dict[str, dict[str, float | str]]) -> str:
    rows = []
    for name, fig in results.items():
        if "error" in fig:
            rows.append({"dataset": name, "model": "-", "roc_auc": str(fig["error"])})
            continue
        for role in ROLES:
            rows.append(
                {
                    "dataset": name,
                    "model": f"candidate ({fig['candidate_family']})" if role == "candidate" else role,
                    **{m: round(float(fig[f"{role}_{m}"]), 4) for m in METRICS},
                    "train s": f"{float(fig[f'{role}_seconds']):.1f}",
                }
            )
        gap = float(fig["reference_roc_auc"]) - float(fig["candidate_roc_auc"])
        lead = float(fig["candidate_roc_auc"]) - float(fig["baseline_roc_auc"])
        rows.append({"dataset": name, "model": "candidate - baseline / reference - candidate (ROC AUC)",
                     "roc_auc": f"{lead:+.4f} / {gap:+.4f}"})  # fmt: skip
    columns = ["dataset", "model", *METRICS, "train s"]
    return markdown.table(rows, columns, right=[*METRICS, "train s"])


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", default=",".join(DATASETS), help=f"comma separated, from {DATASETS}")
    args = parser.parse_args(argv)
    names = [n for n in args.datasets.split(",") if n]
    unknown = sorted(set(names) - set(DATASETS))
    if unknown:
        raise SystemExit(f"unknown dataset(s) {unknown}; choose from {DATASETS}")
    results = {}
    with tempfile.TemporaryDirectory(prefix="model-quality-") as tmp:
        for name in names:
            print(f"running {name} ...", file=sys.stderr, flush=True)
            results[name] = run_dataset(name, Path(tmp))
    print(table(results))


if __name__ == "__main__":
    main(sys.argv[1:])
