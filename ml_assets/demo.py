"""The headless demo: land the demo data, then materialize the graph through the Definitions' own jobs.

It uses the same jobs a user launches from the Dagster UI, on the instance under DAGSTER_HOME, so after a demo
``ml-assets up`` (or ``dagster dev``) shows every materialization and check result it produced. It records the
landing observations of the days it lands, exactly as the landing sensor would, so switching the sensor on
afterwards re-ingests nothing that was ingested with the same files.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from dagster import (
    AssetCheckEvaluation,
    AssetCheckSeverity,
    AssetKey,
    DagsterInstance,
    Definitions,
    ExecuteInProcessResult,
)

from ml_assets.dataset import DatasetSpec, load_default_spec
from ml_assets.partitions import day_range, last_complete_day
from ml_assets.settings import environment, paths

# The demo reports every failure itself, each once, with its reason: Dagster's console would print each failed step
# again with its stack trace (a failed blocking check is a failed step too).
QUIET = {"loggers": {"console": {"config": {"log_level": "CRITICAL"}}}}
# Errors the pipeline raises about the data or the configuration it was given: their message is the whole reason.
# Any other error is a bug: its traceback is printed once, after the summary.
EXPLAINED = frozenset(
    {
        "Failure",
        "WarehouseError",
        "SpecError",
        "TrainerConfigError",
        "DeploymentError",
        "ImageError",
        "BentoBuildError",
        "ModelNotFoundError",
        "SettingError",
    }
)
CHECKS_FAILED = "DagsterAssetCheckFailedError"  # a step stopped by its failed blocking checks: they are listed


class ErrorInfo(Protocol):
    """What a step failure records of an exception (Dagster's serializable error info)."""

    message: str
    cls_name: str | None
    cause: ErrorInfo | None

    def to_string(self) -> str: ...


@dataclass(frozen=True)
class Blocked:
    """A blocking failure: what failed, why (the figure and the column, in one line), and a bug's traceback."""

    what: str
    reason: str
    traceback: str = ""

    def line(self) -> str:
        return f"{self.what}: {self.reason}"


def one_line(text: str) -> str:
    return " ".join(part.strip() for part in text.splitlines() if part.strip())


def step_failure(error: ErrorInfo) -> tuple[str, str]:
    """The reason of a failed step in one line (the error the asset raised, not Dagster's wrapper), and the
    traceback when it is a bug rather than one of the pipeline's EXPLAINED errors."""
    inner = error
    while inner.cause is not None and inner.cls_name and inner.cls_name.startswith("DagsterExecution"):
        inner = inner.cause
    message = inner.message.strip()
    head, _, rest = message.partition(": ")
    if rest and head.rsplit(".", 1)[-1] == inner.cls_name:  # "dagster._core.definitions.events.Failure: ..."
        message = rest
    first, _, more = message.partition("\n")
    if inner.cls_name in EXPLAINED:
        return (first if inner.cls_name == "Failure" else f"{inner.cls_name}: {first}"), more.strip()
    return f"{inner.cls_name}: {first}", inner.to_string()


@dataclass
class Summary:
    """What the demo did, for the closing table and the exit code."""

    rows: list[tuple[str, str, str, str]] = field(default_factory=list)  # step, partition, status, detail
    blocking_failures: list[Blocked] = field(default_factory=list)

    def block(self, failure: Blocked) -> None:
        if failure not in self.blocking_failures:
            self.blocking_failures.append(failure)

    def report(self) -> str:
        """Each blocking failure once with its reason; then the details (a training's rank traceback, a bug's
        traceback) of those that have any."""
        out = ["blocking failures:", *(f"  {f.line()}" for f in self.blocking_failures)]
        for f in self.blocking_failures:
            if f.traceback:
                out += ["", f"{f.what}:", f.traceback.rstrip()]
        return "\n".join(out)

    def add(self, step: str, partition: str, status: str, detail: str = "") -> None:
        self.rows.append((step, partition, status, detail))
        print(f"  {step:<14} {partition:<11} {status:<7} {detail}", flush=True)

    def table(self) -> str:
        widths = [max(len(r[i]) for r in [*self.rows, ("step", "partition", "status", "detail")]) for i in range(4)]
        line = "  ".join
        out = [line(h.ljust(w) for h, w in zip(("step", "partition", "status", "detail"), widths, strict=True))]
        out += [line(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in self.rows]
        return "\n".join(out)


def check_outcome(result: ExecuteInProcessResult) -> tuple[int, list[str], list[str]]:
    """(passed count, names of failed warnings, names of failed ERROR checks) of a run."""
    passed = 0
    warned: list[str] = []
    blocking: list[str] = []
    for ev in result.get_asset_check_evaluations():
        name = f"{ev.asset_key.to_user_string()}.{ev.check_name}"
        if ev.passed:
            passed += 1
        elif ev.severity == AssetCheckSeverity.ERROR:
            blocking.append(name)
        else:
            warned.append(name)
    return passed, warned, blocking


def blocked_by(result: ExecuteInProcessResult, partition: str, job: str) -> list[Blocked]:
    """Every failed ERROR check of a run with its description, and every failed step that is not just its checks
    failing, with the reason the step raised."""
    where = f" [{partition}]" if partition != "-" else ""
    out = [
        Blocked(f"{ev.asset_key.to_user_string()}.{ev.check_name}{where}", one_line(ev.description or "failed"))
        for ev in result.get_asset_check_evaluations()
        if not ev.passed and ev.severity == AssetCheckSeverity.ERROR
    ]
    for event in result.all_events:
        error = event.step_failure_data.error if event.is_step_failure else None  # type: ignore[union-attr]
        if error is None or error.cls_name == CHECKS_FAILED:
            continue
        reason, trace = step_failure(error)
        out.append(Blocked(f"{job}{where} step {event.step_key}", reason, trace))
    return out


def describe_checks(passed: int, warned: list[str], blocking: list[str]) -> str:
    text = f"checks {passed} passed / {len(warned) + len(blocking)} failed"
    return text + (f" (warnings: {', '.join(warned)})" if warned else "")


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
        result = defs.resolve_job_def(job).execute_in_process(
            partition_key=day, instance=instance, raise_on_error=False, run_config=QUIET
        )
        passed, warned, blocking = check_outcome(result)
        detail = f"{rows_of(result, asset)}, {describe_checks(passed, warned, blocking)}"
        detail += f", {time.perf_counter() - started:.1f}s"
        failures = blocked_by(result, day, job)
        for failure in failures:
            summary.block(failure)
        if blocking:
            summary.add(job, day, "BLOCKED", f"{detail}; blocking: {', '.join(blocking)}")
        elif not result.success:
            reason = failures[0].reason if failures else "run failed"
            summary.add(job, day, "FAILED", reason[:160])
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


def observe_landing(instance: DagsterInstance, days: Iterable[str]) -> None:
    """Record each landed day of landing_files as the landing sensor does when files land."""
    from resources.landing import LandingZone
    from sensors.folder_sensors import day_events

    where = paths()
    landing = LandingZone(root=str(where.landing), quarantine_root=str(where.quarantine))
    for day in days:
        if landing.files(day):
            for event in day_events(landing, day, landing.fingerprint(day)):
                instance.report_runless_asset_event(event)


def materialized(result: ExecuteInProcessResult) -> set[str]:
    """Names of the assets a run materialized."""
    return {
        ev.event_specific_data.materialization.asset_key.to_user_string()  # type: ignore[union-attr]
        for ev in result.get_asset_materialization_events()
    }


def run_unpartitioned(
    defs: Definitions, instance: DagsterInstance, job: str, assets: Iterable[str], summary: Summary
) -> ExecuteInProcessResult:
    """Run an unpartitioned job once; record each asset's outcome and any failed blocking check."""
    started = time.perf_counter()
    result = defs.resolve_job_def(job).execute_in_process(instance=instance, raise_on_error=False, run_config=QUIET)
    passed, warned, blocking = check_outcome(result)
    done = materialized(result)
    detail = f"{describe_checks(passed, warned, blocking)}, {time.perf_counter() - started:.0f}s"
    summary.add(job, "-", "ok" if result.success else "FAILED", detail)
    failed = {event.step_key for event in result.all_events if event.is_step_failure}
    for asset in assets:  # an @asset's step is named after it: a step that raised is FAILED, never "not run"
        summary.add(f"  {asset}", "-", "ok" if asset in done else "FAILED" if asset in failed else "not run", "")
    for failure in blocked_by(result, "-", job):
        summary.block(failure)
    return result


DAGSTER_PLAN_LOGGER = "dagster._core.execution.plan.active"


class SkippedGateNotice(logging.Filter):
    """Drops Dagster's stderr warning that a blocking check "emitted no result ... will proceed without gating on
    it" for the gates the spec's ``gates.may_skip`` lists: they emit none by design when they cannot judge, and the
    summary names them as not judged. On the demo's console the raw line read as if the gate had been bypassed.
    Any other check that emits no result is still warned of."""

    def __init__(self, may_skip: Sequence[str]) -> None:
        super().__init__()
        self.skipped = tuple(f":{gate}'" for gate in may_skip)

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        return not (message.startswith("Blocking asset check") and any(s in message for s in self.skipped))


def run_demo(days: int | None = None, seed: int = 0, stages: str = "all") -> int:
    from ml_assets.definitions import (
        INGEST_JOB,
        MODEL_ASSETS,
        MODEL_JOB,
        SERVING_ASSETS,
        SERVING_JOB,
        TRAINING_SET_JOB,
        build_definitions,
    )

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
    logging.getLogger(DAGSTER_PLAN_LOGGER).addFilter(SkippedGateNotice(spec.gates.may_skip))
    observe_landing(instance, day_keys)
    summary = Summary()
    started = time.perf_counter()
    data_ok = True
    if "data" in wanted:
        print("\n[data] validating and featurizing each day, then the training set", flush=True)
        good = run_partitioned(defs, instance, INGEST_JOB, day_keys, "features", summary)
        window_end = day_keys[-1]
        if set(day_keys[-spec.training.window_days :]) <= set(good):
            data_ok = bool(run_partitioned(defs, instance, TRAINING_SET_JOB, [window_end], "training_set", summary))
        else:
            data_ok = False
            summary.add(TRAINING_SET_JOB, window_end, "SKIPPED", "a day of its window failed ingestion")
    promoted = False
    if "model" in wanted and data_ok and environment() == "prod":
        promoted = prod_model_stage(defs, instance, summary)
    elif "model" in wanted and data_ok:
        print("\n[model] baseline, candidate (DeepSpeed search vs logistic), evaluation gates, promotion", flush=True)
        result = run_unpartitioned(defs, instance, MODEL_JOB, MODEL_ASSETS, summary)
        print_evaluation(result)
        promoted = "champion_model" in materialized(result)
    serve = "serving" in wanted and data_ok and ("model" not in wanted or promoted)
    if serve and "model" not in wanted and environment() == "prod":
        serve = has_champion(instance, summary)
    if serve:
        print("\n[serving] bento build and blue/green deployment", flush=True)
        result = run_unpartitioned(defs, instance, SERVING_JOB, SERVING_ASSETS, summary)
        if result.success:
            print_served(result)
    print(f"\nsummary ({time.perf_counter() - started:.0f}s):\n{summary.table()}")
    if summary.blocking_failures:
        print("\n" + summary.report())
        return 1
    print("\nall blocking checks passed. Explore it in the UI, with the graph keeping itself fresh: ml-assets up")
    return 0


def prod_model_stage(defs: Definitions, instance: DagsterInstance, summary: Summary) -> bool:
    """prod trains nothing (its champion comes from qa by promotion): it approves its newest window, the rows the
    deployment validates on, and says whether a promoted champion is there to serve."""
    from ml_assets.model.registry import current_champion_tag

    print("\n[model] prod: approve the newest window; the champion comes from qa (ml-assets promote)", flush=True)
    approve = defs.resolve_implicit_global_asset_job_def().get_subset(
        asset_selection={AssetKey("approved_training_set")}
    )
    result = approve.execute_in_process(instance=instance, raise_on_error=False, run_config=QUIET)
    summary.add("approved_training_set", "-", "ok" if result.success else "FAILED", "")
    for failure in blocked_by(result, "-", "approved_training_set"):
        summary.block(failure)
    champion = current_champion_tag(instance)
    print(f"  champion: {champion or 'none yet: ml-assets promote champion --from qa --to prod'}", flush=True)
    return result.success and champion is not None


def has_champion(instance: DagsterInstance, summary: Summary) -> bool:
    """Whether prod has a champion to serve (one promoted from qa); the summary says how to get one otherwise."""
    from ml_assets.model.registry import current_champion_tag

    if current_champion_tag(instance) is not None:
        return True
    summary.add("serving_job", "-", "SKIPPED", "no champion yet: ml-assets promote champion --from qa --to prod")
    return False


def print_evaluation(result: ExecuteInProcessResult) -> None:
    from ml_assets.model.evaluation import comparison_table

    try:
        evaluation = result.output_for_node("model_evaluation")
    except Exception:  # the evaluation step did not run (training failed): the failure is in the summary
        return
    print("\n" + comparison_table(evaluation))
    print("\n" + gates_line(result.get_asset_check_evaluations()))


def gates_line(evaluations: Sequence[AssetCheckEvaluation]) -> str:
    """The gates' verdict in one line: what failed, or that all judged gates passed, which were not judged
    (skipped by ``gates.may_skip``: no result, so never to be read as passed), and which warning checks failed (a
    failed warning blocks nothing: the candidate was promoted all the same, so it is no failed gate)."""
    from ml_assets.model.gates import GATE_NAMES, SKIP_SETTING

    failed = [e.check_name for e in evaluations if not e.passed and e.severity != AssetCheckSeverity.WARN]
    warned = [e.check_name for e in evaluations if not e.passed and e.severity == AssetCheckSeverity.WARN]
    judged = {e.check_name for e in evaluations}
    skipped = [g for g in GATE_NAMES if g not in judged]
    verdict = f"FAILED {', '.join(failed)}" if failed else "all judged passed" if skipped else "all passed"
    return (
        f"gates: {verdict}"
        + (f"; not judged ({SKIP_SETTING}): {', '.join(skipped)}" if skipped else "")
        + (f"; warnings (not blocking): {', '.join(warned)}" if warned else "")
    )


def print_served(result: ExecuteInProcessResult) -> None:
    from ml_assets.serving.client import demo_report

    info = result.output_for_node("deployment")
    print("\n" + demo_report(info.url, info.records, stop_hint="ml-assets stop"))
