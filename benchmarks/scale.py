"""Data beyond one machine's memory (issue 25): wall time and peak memory of each step over growing windows.

For each window of N days of R synthetic rows a day (the shipped spec, ``training.window_days = N``), every step
runs in a fresh Python process that materializes it through the Definitions' own jobs, on an instance of its own
under a temporary ``ML_ASSETS_HOME``, while the benchmark samples the RSS of that process and all its children
(torchrun ranks included) every 0.1 s. Steps: each day's ingest (raw_data + features and their checks),
training_set and its checks on the window's last day, the same on the day after (one more day landed and
ingested), approved_training_set, baseline_model, candidate_model (2 ranks, a short search) and model_evaluation.
A separate day of ``--ingest-rows`` rows measures the daily ingest target. Prints a markdown table per window and
PASS/FAIL per target; the exit status says only whether the benchmark itself could run (a target is measured, not
enforced):

    python -m benchmarks.scale --days 3 --rows-per-day 200000 --ingest-rows 0
    python -m benchmarks.scale                      # 3, 10 and 30 days of 1e6 rows, and one day of 1e7
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import date, timedelta
from pathlib import Path

from benchmarks.process_memory import run_measured
from benchmarks.synthetic_days import land_day, write_window_spec

TARGET_MB = 4096  # the bound on every step's peak memory
DAY_AFTER_SLACK = 1.10  # "the day after runs as well as the first": succeeds, and peaks within 10 % of the first
TIME_SLACK = 1.10  # "time grows no faster than the rows": wall ratio at most 1.1x the rows ratio between windows
MODEL_STEPS = ("approved_training_set", "baseline_model", "candidate_model", "model_evaluation")
PARTITIONED_STEPS = ("ingest", "training_set")  # run through the demo's jobs of the same names
STEP_TIMEOUT_S = 6 * 3600
REPO_ROOT = Path(__file__).resolve().parents[1]  # the step processes import ml_assets and benchmarks from here


@dataclass(frozen=True)
class StepRun:
    """One step's process: what it covered and what it cost."""

    step: str
    rows: int
    wall_s: float
    peak_mb: float
    ok: bool
    detail: str

    @property
    def mb_per_million(self) -> float:
        return self.peak_mb / (self.rows / 1e6) if self.rows else float("nan")


@dataclass
class WindowRun:
    """Every step of one window, in the order they ran."""

    days: int
    rows_per_day: int
    land_s: float = 0.0
    steps: list[StepRun] = field(default_factory=list)

    def first(self, step: str) -> StepRun | None:
        return next((s for s in self.steps if s.step == step), None)


@dataclass(frozen=True)
class StepOutcome:
    """What a step process reports on its last line of output (JSON): success with no blocking check failed."""

    ok: bool
    detail: str

    @classmethod
    def from_output(cls, stdout: str) -> StepOutcome | None:
        """The outcome a step process printed last, or None when it died before printing one."""
        for line in reversed(stdout.strip().splitlines()):
            if line.startswith("{"):
                return cls(**json.loads(line))
        return None


@dataclass(frozen=True)
class SearchBudget:
    """The candidate's search, cut so the benchmark takes minutes (CandidateConfig run config)."""

    trials: int
    max_seconds: float

    def run_config(self) -> dict:
        return {"ops": {"candidate_model": {"config": {"trials": self.trials, "max_seconds": self.max_seconds}}}}


# ---- the step process -------------------------------------------------------------------------------------------


def run_step(step: str, partition: str | None, run_config: dict) -> StepOutcome:
    """Materialize one step on the instance under DAGSTER_HOME (called in a fresh interpreter): whether it
    succeeded with no blocking check failed, and a one-line detail (its checks, or why it failed)."""
    from dagster import AssetKey, DagsterInstance

    from ml_assets.definitions import INGEST_JOB, TRAINING_SET_JOB, build_definitions
    from ml_assets.demo import QUIET, blocked_by, check_outcome, describe_checks

    defs = build_definitions()
    if step in PARTITIONED_STEPS:
        job = defs.resolve_job_def(INGEST_JOB if step == "ingest" else TRAINING_SET_JOB)
    else:
        everything = defs.resolve_implicit_global_asset_job_def()
        key = AssetKey(step)
        checks = {c for c in everything.asset_layer.asset_graph.asset_check_keys if c.asset_key == key}
        job = everything.get_subset(asset_selection={key}, asset_check_selection=checks)
    result = job.execute_in_process(
        partition_key=partition,
        instance=DagsterInstance.get(),
        raise_on_error=False,
        run_config={**QUIET, **run_config},
    )
    passed, warned, blocking = check_outcome(result)
    failures = [f.line() for f in blocked_by(result, partition or "-", step)]
    ok = result.success and not blocking
    detail = describe_checks(passed, warned, blocking) + ("" if ok else "; " + " | ".join(failures))
    return StepOutcome(ok, detail)


def run_steps(steps: Sequence[str], partitions: Sequence[str], run_config: dict) -> StepOutcome:
    """Each step on each partition (or once, unpartitioned), in order, in this process; stops at the first
    failure. One outcome for them all (a test's setup runs several steps in one process to save the start-ups)."""
    runs = [(step, partition) for step in steps for partition in partitions or [None]]
    details = []
    for step, partition in runs:
        outcome = run_step(step, partition, run_config)
        where = "" if len(runs) == 1 else f"{step}{f' [{partition}]' if partition else ''}: "
        details.append(where + outcome.detail)
        if not outcome.ok:
            return StepOutcome(False, "; ".join(details))
    return StepOutcome(True, "; ".join(details))


# ---- the benchmark ----------------------------------------------------------------------------------------------


class Window:
    """One window's temporary home, spec copy and environment; runs and measures its steps."""

    def __init__(self, root: Path, days: int, rows_per_day: int, largest_day: int) -> None:
        from ml_assets.settings import spec_path

        self.home = root / f"window-{days}d"
        self.home.mkdir(parents=True, exist_ok=True)
        (self.home / "dagster").mkdir(exist_ok=True)
        self.spec_file = write_window_spec(spec_path(), self.home / "spec", days, largest_day)
        self.run = WindowRun(days=days, rows_per_day=rows_per_day)
        self.env = os.environ | {
            "ML_ASSETS_HOME": str(self.home),
            "DAGSTER_HOME": str(self.home / "dagster"),
            "ML_ASSETS_DATASET_SPEC": str(self.spec_file),
            "ML_ASSETS_ENV": "dev",
            "ML_ASSETS_RUNS_ON": "local",
            "ML_ASSETS_TRAINER_RANKS": "2",
            "BENTOML_DO_NOT_TRACK": "true",
            "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH", "")])),
        }
        self.env.pop("BENTOML_HOME", None)

    def land(self, day: date, rows: int, seed: int) -> None:
        from ml_assets.dataset import load_spec

        started = time.perf_counter()
        land_day(load_spec(self.spec_file), self.home / "landing", day, rows, seed, id_start=seed * 10**9 + 1)
        self.run.land_s += time.perf_counter() - started

    def step(
        self,
        label: str,
        step: str | Sequence[str],
        rows: int,
        partition: str | Sequence[str] = (),
        run_config: dict | None = None,
    ) -> StepRun:
        """Run ``step`` (or several, one after the other) on ``partition`` (or several) in one fresh process, and
        record what it cost."""
        steps = [step] if isinstance(step, str) else list(step)
        partitions = [partition] if isinstance(partition, str) else list(partition)
        cmd = [sys.executable, "-m", "benchmarks.scale", "--step", *steps, "--config", json.dumps(run_config or {})]
        if partitions:
            cmd += ["--partition", *partitions]
        measured = run_measured(cmd, env=self.env, timeout_s=STEP_TIMEOUT_S)
        outcome = StepOutcome.from_output(measured.stdout)
        if outcome is None:  # the process died before reporting (out of memory, a crash): its last words
            tail = " ".join(measured.stderr.strip().splitlines()[-3:])[-400:]
            outcome = StepOutcome(False, f"process exited {measured.returncode}: {tail}")
        run = StepRun(label, rows, measured.wall_s, measured.peak_mb, outcome.ok, outcome.detail)
        self.run.steps.append(run)
        print(
            f"  {label:<32} {rows:>12,} rows {run.wall_s:8.1f} s {run.peak_mb:9,.0f} MB  "
            f"{'ok' if run.ok else 'FAILED'}  {run.detail[:200]}",
            flush=True,
        )
        return run


def window_days(days: int) -> tuple[list[date], date]:
    """The window's days, ending the day before yesterday, and the day after (yesterday: the newest whole day)."""
    from ml_assets.dataset import load_default_spec
    from ml_assets.partitions import day_range, last_complete_day

    after = last_complete_day(load_default_spec())
    return day_range(after - timedelta(days=1), days), after


def run_window(root: Path, days: int, rows_per_day: int, budget: SearchBudget) -> WindowRun:
    """Land and ingest the window day by day, build and check it, do the day after, then train and evaluate."""
    window = Window(root, days, rows_per_day, rows_per_day)
    print(f"\nwindow of {days} days x {rows_per_day:,} rows (spec copy {window.spec_file}, home {window.home})")
    keys, after = window_days(days)
    for i, day in enumerate(keys):
        window.land(day, rows_per_day, seed=i + 1)
    print(f"  landed {days} days in {window.run.land_s:.1f} s", flush=True)
    ingests = [window.step("daily ingest", "ingest", rows_per_day, day.isoformat()) for day in keys]
    window.run.steps = [_ingest_summary(ingests, days)]  # the days' ingests, one row
    if not all(s.ok for s in ingests):
        return window.run  # no window to build: the failed day says why
    window_rows = days * rows_per_day
    first = window.step("training_set (+ checks)", "training_set", window_rows, keys[-1].isoformat())
    window.land(after, rows_per_day, seed=days + 1)
    window.step("daily ingest, the day after", "ingest", rows_per_day, after.isoformat())
    window.step("training_set, the day after", "training_set", window_rows, after.isoformat())
    if not first.ok:
        return window.run
    for step in MODEL_STEPS:
        config = budget.run_config() if step == "candidate_model" else {}
        window.step(step, step, window_rows, run_config=config)
    return window.run


def _ingest_summary(ingests: list[StepRun], days: int) -> StepRun:
    """The window's daily ingests as one row: median wall time, highest peak, every failure."""
    failed = [s.detail for s in ingests if not s.ok]
    detail = f"{len(failed)} of {days} days failed: {failed[0]}" if failed else ""
    return StepRun(
        f"daily ingest ({days} days: median wall, max peak)",
        ingests[0].rows,
        statistics.median(s.wall_s for s in ingests),
        max(s.peak_mb for s in ingests),
        not failed,
        detail,
    )


def run_ingest_target(root: Path, rows: int) -> StepRun:
    """One day of ``rows`` rows landed and ingested alone: the daily-ingest target."""
    window = Window(root / "ingest", 3, rows, rows)
    _, day = window_days(1)
    window.land(day, rows, seed=1)
    print(f"\ndaily ingest of {rows:,} rows (landed in {window.run.land_s:.1f} s)")
    return window.step("daily ingest", "ingest", rows, day.isoformat())


# ---- the report -------------------------------------------------------------------------------------------------


def table(run: WindowRun) -> str:
    from ml_assets import markdown

    rows = [
        {
            "step": s.step,
            "rows": f"{s.rows:,}",
            "wall (s)": f"{s.wall_s:.1f}",
            "peak RSS (MB)": f"{s.peak_mb:,.0f}",
            "MB per million rows": f"{s.mb_per_million:,.0f}",
            "outcome": "ok" if s.ok else f"FAILED: {s.detail}",
        }
        for s in run.steps
    ]
    return markdown.table(rows, right=["rows", "wall (s)", "peak RSS (MB)", "MB per million rows"])


def verdict(passed: bool | None) -> str:
    return "n/a" if passed is None else "PASS" if passed else "FAIL"


def targets(runs: list[WindowRun], ingest: StepRun | None) -> list[str]:
    """One line per target of issue 25: PASS, FAIL or n/a, with the figures behind it."""
    lines = []
    for run in runs:
        over = [f"{s.step} {s.peak_mb:,.0f} MB" for s in run.steps if s.peak_mb >= TARGET_MB or not s.ok]
        lines.append(
            f"- every step under {TARGET_MB} MB, {run.days}-day window of {run.days * run.rows_per_day:,} rows: "
            f"{verdict(not over)}" + (f" (over or failed: {', '.join(over)})" if over else "")
        )
    if ingest is not None:
        lines.append(
            f"- daily ingest of {ingest.rows:,} rows under {TARGET_MB} MB: "
            f"{verdict(ingest.ok and ingest.peak_mb < TARGET_MB)} ({ingest.peak_mb:,.0f} MB, {ingest.wall_s:.0f} s"
            + ("" if ingest.ok else f"; FAILED: {ingest.detail}")
            + ")"
        )
    for run in runs:
        first, after = run.first("training_set (+ checks)"), run.first("training_set, the day after")
        if first is None or after is None:
            lines.append(f"- the day after runs as well as the first, {run.days}-day window: n/a (not reached)")
            continue
        good = after.ok and after.peak_mb <= first.peak_mb * DAY_AFTER_SLACK
        lines.append(
            f"- the day after runs as well as the first, {run.days}-day window: {verdict(good)} "
            f"(first {first.peak_mb:,.0f} MB {first.wall_s:.0f} s, the day after {after.peak_mb:,.0f} MB "
            f"{after.wall_s:.0f} s{'' if after.ok else ', FAILED'})"
        )
    lines += time_growth(runs)
    return lines


def time_growth(runs: list[WindowRun]) -> list[str]:
    """Between consecutive windows, each step's wall-time ratio against the rows ratio."""
    if len(runs) < 2:
        return ["- time grows no faster than the rows: n/a (one window)"]
    lines = []
    for small, large in itertools.pairwise(runs):
        rows_ratio = (large.days * large.rows_per_day) / (small.days * small.rows_per_day)
        ratios = {
            s.step: s.wall_s / b.wall_s
            for s in large.steps
            if (b := small.first(s.step)) is not None
            and s.ok
            and b.ok
            and b.wall_s > 0
            and not s.step.startswith("daily ingest")
        }
        worst = max(ratios.values(), default=None)
        shown = ", ".join(f"{k} x{v:.2f}" for k, v in ratios.items())
        lines.append(
            f"- time grows no faster than the rows, {small.days} -> {large.days} days (rows x{rows_ratio:.2f}): "
            f"{verdict(None if worst is None else worst <= rows_ratio * TIME_SLACK)} ({shown or 'no step to compare'})"
        )
    return lines


def report(runs: list[WindowRun], ingest: StepRun | None, budget: SearchBudget) -> str:
    out = []
    for run in runs:
        out += [
            f"\n### {run.days}-day window, {run.rows_per_day:,} rows a day "
            f"({run.days * run.rows_per_day:,} rows; landed in {run.land_s:.0f} s)\n",
            table(run),
        ]
    out += [
        f"\ncandidate search: {budget.trials} trial(s), max_seconds {budget.max_seconds:g}, 2 ranks; "
        "peak RSS is summed over each step's process tree, sampled every 0.1 s\n",
        "### targets (measured, not enforced)\n",
        *targets(runs, ingest),
    ]
    return "\n".join(out)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--days", type=int, nargs="+", default=[3, 10, 30], help="window lengths to measure")
    parser.add_argument("--rows-per-day", type=float, default=1e6, help="synthetic rows landed per day")
    parser.add_argument(
        "--ingest-rows", type=float, default=1e7, help="rows of the separate daily-ingest day (0: skip it)"
    )
    parser.add_argument("--trials", type=int, default=2, help="candidate search: networks trained")
    parser.add_argument("--search-seconds", type=float, default=30.0, help="candidate search: max_seconds")
    parser.add_argument("--root", type=Path, help="where the windows' homes go (default: a temp dir, removed)")
    parser.add_argument("--json", type=Path, help="also write the measurements as JSON here")
    parser.add_argument("--step", nargs="+", help=argparse.SUPPRESS)  # the step process: run, print the outcome
    parser.add_argument("--partition", nargs="*", default=[], help=argparse.SUPPRESS)
    parser.add_argument("--config", default="{}", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.step:
        print(json.dumps(asdict(run_steps(args.step, args.partition, json.loads(args.config)))), flush=True)
        return 0
    if min(args.days) < 3:
        parser.error("--days: a training window has at least 3 days")
    budget = SearchBudget(args.trials, args.search_seconds)
    root = args.root or Path(tempfile.mkdtemp(prefix="ml_assets_scale_"))
    try:
        runs = [run_window(root, d, int(args.rows_per_day), budget) for d in args.days]
        ingest = run_ingest_target(root, int(args.ingest_rows)) if args.ingest_rows else None
    finally:
        if args.root is None:
            shutil.rmtree(root, ignore_errors=True)
    print(report(runs, ingest, budget))
    if args.json:
        args.json.write_text(json.dumps({"windows": [asdict(r) for r in runs], "ingest": ingest and asdict(ingest)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
