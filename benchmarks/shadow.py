"""Shadow data: time to train the generator and to sample 1e6 rows, and the fidelity and privacy figures.

    python -m benchmarks.shadow                        # Adult and COMPAS, 20 epochs, 2 CPU ranks
    python -m benchmarks.shadow --datasets adult --epochs 10

Per dataset: the shipped demo rows replayed over 12 days (as the demo lands them) are the real rows; the assets
run as they do in the graph (``shadow_model`` through the DeepSpeed trainer resource with torchrun, then
``shadow_data`` for 12 days and its checks). "train s" is the shadow_model step (launch, rank start-up, training,
read-back), "epochs s" the ranks' training loop alone; "sample 1e6 s" generates a million rows in landed form in
this process.
"""

from __future__ import annotations

import argparse
import tempfile
import time
import warnings
from datetime import date
from pathlib import Path

import dagster as dg
import pandas as pd

from ml_assets import markdown
from ml_assets.dataset import DatasetSpec, load_spec
from ml_assets.datasets.simulator import simulate
from ml_assets.partitions import day_range
from ml_assets.settings import PACKAGE_DIR
from ml_assets.shadow.assets import build_shadow_assets
from ml_assets.shadow.generator import generate_days
from resources.deepspeed_trainer import DeepSpeedTrainer
from resources.launchers import LocalTorchrunLauncher
from resources.training_storage import TrainingStorage

DAYS = 12
SAMPLE_ROWS = 1_000_000


def real_rows(spec: DatasetSpec, folder: Path) -> pd.DataFrame:
    files = simulate(spec, folder, date(2026, 1, 1), date(2026, 1, DAYS), seed=0)
    return pd.concat([spec.coerce(pd.read_parquet(f))[0] for f in files], ignore_index=True)


def measure(name: str, epochs: int, ranks: int) -> dict[str, object]:
    spec = load_spec(PACKAGE_DIR / "datasets" / f"{name}.yaml")
    home = Path(tempfile.mkdtemp(prefix=f"shadow-bench-{name}-"))
    rows = real_rows(spec, home / "landing")

    @dg.asset(name="raw_data")
    def raw_data() -> pd.DataFrame:
        return rows

    trainer = DeepSpeedTrainer(
        launcher=LocalTorchrunLauncher(log_root=str(home / "logs")),
        storage=TrainingStorage(root=str(home / "staging")),
        ranks=ranks,
        checkpoint_dir=str(home / "checkpoints"),
    )
    result = dg.materialize(
        [raw_data, *build_shadow_assets(spec)],
        resources={"trainer": trainer, "io_manager": dg.FilesystemIOManager(base_dir=str(home / "storage"))},
        instance=dg.DagsterInstance.ephemeral(),
        run_config={
            "ops": {"shadow_model": {"config": {"epochs": epochs}}, "shadow_data": {"config": {"days": DAYS}}},
            "loggers": {"console": {"config": {"log_level": "CRITICAL"}}},
        },
        raise_on_error=False,
    )
    steps = {
        e.step_key: e.event_specific_data.duration_ms / 1000  # type: ignore[union-attr]
        for e in result.all_events
        if e.is_step_success
    }
    generator = result.output_for_node("shadow_model")
    started = time.perf_counter()
    sampled = generate_days(spec, generator, day_range(date(2026, 1, 10), 10), rows_per_day=SAMPLE_ROWS // 10)
    sample_s = time.perf_counter() - started
    assert len(sampled) == SAMPLE_ROWS
    data = result.asset_materializations_for_node("shadow_data")[0].metadata
    model = result.asset_materializations_for_node("shadow_model")[0].metadata
    checks = {e.check_name: e for e in result.get_asset_check_evaluations()}
    failed = [n for n, e in checks.items() if not e.passed]

    def figure(check: str, key: str) -> float:
        return float(checks[check].metadata[key].value)

    return {
        "dataset": name,
        "real rows": len(rows),
        "epochs": epochs,
        "train s": steps.get("shadow_model", float("nan")),
        "epochs s": float(model["train_seconds"].value),
        "sample 1e6 s": sample_s,
        "max col dist": float(data["max_column_distance"].value),
        "mean assoc dist": float(data["mean_association_distance"].value),
        "utility ratio": float(data["utility_ratio"].value),
        "copies": float(data["exact_copy_share"].value),
        "DCR q05 shadow/real": f"{figure('privacy_closest_record', 'shadow_dcr'):.3f}/"
        f"{figure('privacy_closest_record', 'holdout_dcr'):.3f}",
        "MIA AUC": float(data["membership_auc"].value),
        "failed checks": ", ".join(failed) or "none",
    }


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", nargs="+", default=["adult", "compas"])
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--ranks", type=int, default=2)
    args = parser.parse_args(argv)
    warnings.filterwarnings("ignore")
    rows = [measure(name, args.epochs, args.ranks) for name in args.datasets]
    print(markdown.table(rows, list(rows[0]), digits=3, right=[k for k in rows[0] if k not in ("dataset",)]))


if __name__ == "__main__":
    import sys

    main(sys.argv[1:])
