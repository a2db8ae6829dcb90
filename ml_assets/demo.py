"""The headless demo: land the demo data, then materialize the graph through the Definitions' own jobs.

It uses the same jobs a user launches from the Dagster UI, on the instance under DAGSTER_HOME, so after a demo
``dagster dev`` shows every materialization and check result it produced.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass, field

from dagster import AssetCheckSeverity, DagsterInstance, Definitions, ExecuteInProcessResult

from ml_assets.dataset import DatasetSpec, load_default_spec
from ml_assets.partitions import day_range, last_complete_day
from ml_assets.settings import paths

QUIET = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}


@dataclass
class Summary:
    """What the demo did, for the closing table and the exit code."""

    rows: list[tuple[str, str, str, str]] = field(default_factory=list)  # step, partition, status, detail
    blocking_failures: list[str] = field(default_factory=list)

    def add(self, step: str, partition: str, status: str, detail: str = "") -> None:
        self.rows.append((step, partition, status, detail))
        print(f"  {step:<14} {partition:<11} {status:<7} {detail}", flush=True)

    def table(self) -> str:
        widths = [max(len(r[i]) for r in [*self.rows, ("step", "partition", "status", "detail")]) for i in range(4)]
        line = "  ".join
        out = [line(h.ljust(w) for h, w in zip(("step", "partition", "status", "detail"), widths, strict=True))]
        out += [line(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in self.rows]
        return "\n".join(out)


def check_outcome(result: ExecuteInProcessResult) -> tuple[int, int, list[str]]:
    """(passed, failed, names of failed blocking ERROR checks) of a run."""
    passed = failed = 0
    blocking: list[str] = []
    for ev in result.get_asset_check_evaluations():
        if ev.passed:
            passed += 1
            continue
        failed += 1
        if ev.severity == AssetCheckSeverity.ERROR:
            blocking.append(f"{ev.asset_key.to_user_string()}.{ev.check_name}")
    return passed, failed, blocking


def rows_of(result: ExecuteInProcessResult, asset: str) -> str:
    for ev in result.get_asset_materialization_events():
        mat = ev.event_specific_data.materialization  # type: ignore[union-attr]
        if mat.asset_key.to_user_string() == asset:
            count = mat.metadata.get("dagster/row_count")
            return f"{count.value} rows" if count is not None else "materialized"
    return "not materialized"


def run_partitioned(
    defs: Definitions, instance: DagsterInstance, job: str, days: Iterable[str], asset: str, summary: Summary
) -> list[str]:
    """Run a partitioned job per day; return the days that succeeded with no blocking check failure."""
    good = []
    for day in days:
        started = time.perf_counter()
        result = defs.get_job_def(job).execute_in_process(
            partition_key=day, instance=instance, raise_on_error=False, run_config=QUIET
        )
        passed, failed, blocking = check_outcome(result)
        detail = f"{rows_of(result, asset)}, checks {passed} passed / {failed} failed"
        detail += f", {time.perf_counter() - started:.1f}s"
        if not result.success:
            failure = next((e for e in result.all_events if e.is_step_failure), None)
            reason = failure.step_failure_data.error.message.strip() if failure else "run failed"  # type: ignore[union-attr]
            summary.blocking_failures.append(f"{job}[{day}]: {reason.splitlines()[0]}")
            summary.add(job, day, "FAILED", reason.splitlines()[0][:160])
        elif blocking:
            summary.blocking_failures.extend(f"{name}[{day}]" for name in blocking)
            summary.add(job, day, "BLOCKED", f"{detail}; blocking: {', '.join(blocking)}")
        else:
            summary.add(job, day, "ok", detail)
            good.append(day)
    return good


def land_demo_data(spec: DatasetSpec, days: list[str], seed: int) -> int:
    """Replay the demo data into the landing zone for the days that have no files yet."""
    import shutil
    import tempfile
    from datetime import date
    from pathlib import Path

    from ml_assets.datasets.simulator import simulate

    landing = paths().landing
    todo = {d for d in days if not any((landing / d).glob("*.*"))}
    if not todo:
        return 0
    moved = 0
    with tempfile.TemporaryDirectory(dir=paths().home) as scratch:
        files = simulate(spec, Path(scratch), date.fromisoformat(days[0]), date.fromisoformat(days[-1]), seed=seed)
        for f in files:  # days that already have files (a user's own) are left untouched
            if f.parent.name in todo:
                (landing / f.parent.name).mkdir(parents=True, exist_ok=True)
                shutil.move(str(f), landing / f.parent.name / f.name)
                moved += 1
    return moved


def run_demo(days: int | None = None, seed: int = 0, stages: str = "all") -> int:
    from ml_assets.definitions import INGEST_JOB, TRAINING_SET_JOB, build_definitions

    spec = load_default_spec()
    wanted = {"data", "model", "serving"} if stages == "all" else set(stages.split(","))
    n_days = days or spec.training.window_days + 2
    if n_days < spec.training.window_days:
        raise SystemExit(f"--days must be at least the training window ({spec.training.window_days} days)")
    day_keys = [d.isoformat() for d in day_range(last_complete_day(spec), n_days)]
    where = paths()
    print(f"ml-assets demo: dataset {spec.name!r}, {n_days} days {day_keys[0]} .. {day_keys[-1]}")
    print(f"  state under {where.home} (DAGSTER_HOME={where.dagster_home})")
    landed = land_demo_data(spec, day_keys, seed)
    print(f"  landing zone {where.landing}: {landed} new files")

    defs = build_definitions(spec)
    instance = DagsterInstance.get()
    summary = Summary()
    started = time.perf_counter()
    if "data" in wanted:
        good = run_partitioned(defs, instance, INGEST_JOB, day_keys, "features", summary)
        window_end = day_keys[-1]
        if set(day_keys[-spec.training.window_days :]) <= set(good):
            run_partitioned(defs, instance, TRAINING_SET_JOB, [window_end], "training_set", summary)
        else:
            summary.add(TRAINING_SET_JOB, window_end, "SKIPPED", "a day of its window failed ingestion")
    print(f"\nsummary ({time.perf_counter() - started:.0f}s):\n{summary.table()}")
    if summary.blocking_failures:
        print("\nblocking failures:\n  " + "\n  ".join(summary.blocking_failures))
        return 1
    print("\nall blocking checks passed. Explore it in the UI: dagster dev (from the repository root)")
    return 0
