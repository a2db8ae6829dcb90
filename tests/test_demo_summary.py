"""The demo's summary says why: each blocking check's reason (its figure and column) once, a failed step's own
error instead of Dagster's wrapper, no stack trace for either, and a bug's traceback once. Small real jobs run
in-process through the demo's own runner."""

from __future__ import annotations

import logging

import dagster as dg
import pytest

from ml_assets.demo import SkippedGateNotice, Summary, run_partitioned, run_unpartitioned

DAY = "2026-03-02"
DAILY = dg.DailyPartitionsDefinition(start_date="2026-03-01", end_date="2026-03-04")
REASON = "FAILED age_range on column 'age': 3 of 400 values (0.75%) out of range, e.g. ['150']. Rule: 17 <= age <= 100"


def definitions(compute) -> dg.Definitions:
    @dg.asset(
        name="raw_data",
        partitions_def=DAILY,
        check_specs=[dg.AssetCheckSpec("age_range", asset="raw_data", blocking=True)],
    )
    def raw_data():
        yield from compute()

    @dg.asset(name="model", deps=[])
    def model():
        yield from compute()

    return dg.Definitions(
        assets=[raw_data, model],
        jobs=[
            dg.define_asset_job("ingest_job", selection=["raw_data"], partitions_def=DAILY),
            dg.define_asset_job("model_job", selection=["model"]),
        ],
    )


def failed_check():
    yield dg.Output(1)
    yield dg.AssetCheckResult(check_name="age_range", passed=False, description=REASON)


def test_a_failed_blocking_check_is_reported_once_with_its_reason_and_no_stack_trace(
    capfd: pytest.CaptureFixture,
) -> None:
    summary = Summary()
    good = run_partitioned(
        definitions(failed_check), dg.DagsterInstance.ephemeral(), "ingest_job", [DAY], "raw_data", summary
    )
    assert good == []
    report = summary.report()
    assert report.count(REASON) == 1 and f"raw_data.age_range [{DAY}]: {REASON}" in report
    printed = capfd.readouterr()
    assert "Stack Trace" not in printed.out + printed.err and "Traceback" not in printed.out + printed.err
    assert "BLOCKED" in printed.out and REASON not in printed.out  # the progress line names it; the reason is below


def test_a_failed_step_reports_the_error_it_raised_and_only_a_bug_keeps_its_traceback() -> None:
    def failure():
        raise dg.Failure(description="training process group failed: rank 1 exited 1.\nFirst traceback, rank 1: ...")
        yield  # a generator, as the assets are

    def bug():
        raise KeyError("income")
        yield

    instance = dg.DagsterInstance.ephemeral()
    explained, broken = Summary(), Summary()
    run_unpartitioned(definitions(failure), instance, "model_job", ["model"], explained)
    run_unpartitioned(definitions(bug), instance, "model_job", ["model"], broken)
    (refused,) = explained.blocking_failures
    assert refused.line() == "model_job step model: training process group failed: rank 1 exited 1."
    assert refused.traceback == "First traceback, rank 1: ..."
    (crashed,) = broken.blocking_failures
    assert crashed.line() == "model_job step model: KeyError: 'income'"
    assert "Stack Trace" in crashed.traceback and "in bug" in crashed.traceback
    assert broken.report().count("KeyError: 'income'") == 2  # the reason line, and once above its traceback
    for summary in (explained, broken):  # the asset's own row: it ran and failed, it was not "not run"
        assert ("  model", "-", "FAILED", "") in summary.rows


def test_gates_skipped_by_may_skip_are_named_never_counted_as_passed() -> None:
    from ml_assets.demo import gates_line
    from ml_assets.model.gates import FAIRNESS, GATE_NAMES, SLICE_QUALITY

    def evaluation(name: str, passed: bool = True, severity=dg.AssetCheckSeverity.ERROR) -> dg.AssetCheckEvaluation:
        key = dg.AssetKey("model_evaluation")
        return dg.AssetCheckEvaluation(asset_key=key, check_name=name, passed=passed, severity=severity)

    every = [evaluation(g) for g in GATE_NAMES]
    assert gates_line(every) == "gates: all passed"
    judged = [e for e in every if e.check_name not in (SLICE_QUALITY, FAIRNESS)]
    assert gates_line(judged) == "gates: all judged passed; not judged (gates.may_skip): slice_quality, fairness"
    failed = [evaluation("beats_baseline", passed=False), *judged[1:]]
    assert gates_line(failed).startswith("gates: FAILED beats_baseline; not judged (gates.may_skip): slice_quality")
    # a failed warning (psych's msq: gap_to_reference) blocked nothing and the model served: it is no failed gate
    warned = [*every, evaluation("gap_to_reference", passed=False, severity=dg.AssetCheckSeverity.WARN)]
    assert gates_line(warned) == "gates: all passed; warnings (not blocking): gap_to_reference"


def test_dagsters_no_result_warning_is_dropped_only_for_gates_the_spec_lets_skip() -> None:
    notice = SkippedGateNotice(["fairness"])

    def record(check: str) -> logging.LogRecord:
        text = f"Blocking asset check 'model_evaluation:{check}' emitted no result in step 'model_gates'; ..."
        return logging.LogRecord("dagster", logging.WARNING, __file__, 1, text, None, None)

    assert not notice.filter(record("fairness")) and notice.filter(record("beats_baseline"))
