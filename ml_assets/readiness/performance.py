"""``performance_regression``: the candidate's computing performance against the champion's, measured the same
way in the same run (The ML Test Score, monitoring-6: no dramatic or slow-leak regressions in serving latency,
throughput or RAM usage).

``model_evaluation``'s latency gate holds the candidate to an absolute budget; a slow leak stays under any budget
until it does not. Here both models are loaded from the store and timed on the same test rows in alternating
rounds (so a busy machine slows both alike), and the ``no_regression`` check warns when the candidate is slower,
has less throughput or needs more memory than the champion beyond a tolerance.
"""

import statistics
import sys
import tracemalloc
from dataclasses import dataclass

import pandas as pd
from dagster import (
    AssetCheckResult,
    AssetCheckSeverity,
    AssetCheckSpec,
    AssetExecutionContext,
    AssetOut,
    AssetsDefinition,
    MaterializeResult,
    MetadataValue,
    multi_asset,
)

from ml_assets import markdown
from ml_assets.automation import on_upstream_update
from ml_assets.data.approval import READ_NOT_REACTED, TRAINING_SET_DEP, TrainingSetRef, load_approved
from ml_assets.dataset import DatasetSpec
from ml_assets.model.evaluation import Evaluation, ProbabilityModel, measure_latency, model_size
from ml_assets.model.evaluation_asset import evaluation_sample
from ml_assets.model.refs import load_stored
from ml_assets.versioning import code_version
from resources.model_store import ModelStore

CHECK = "no_regression"
ROUNDS = 3


@dataclass(frozen=True)
class Tolerance:
    """How much worse than the champion the candidate may be before it is a regression (shared CPUs are noisy)."""

    latency: float = 1.5  # candidate p99 <= champion p99 x this
    throughput: float = 0.67  # candidate rows/s >= champion rows/s x this
    memory: float = 1.5  # candidate bytes (model files, peak of a batch predict) <= champion x this


@dataclass(frozen=True)
class Footprint:
    p99_ms: float
    rows_per_s: float
    model_bytes: int | None
    predict_peak_bytes: int


def predict_peak_bytes(model: ProbabilityModel, frame: pd.DataFrame, rows: int = 1000) -> int:
    """Peak Python-tracked allocation (numpy and pandas report theirs) of one ``rows``-row predict_proba."""
    batch = frame.sample(rows, replace=len(frame) < rows, random_state=0)
    tracemalloc.start()
    try:
        model.predict_proba(batch)
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def measure_pair(
    candidate: ProbabilityModel, champion: ProbabilityModel, frame: pd.DataFrame, rounds: int = ROUNDS
) -> tuple[Footprint, Footprint]:
    """Both models measured the same way on the same rows, in alternating rounds; the median of each figure."""
    timings: dict[str, list] = {"candidate": [], "champion": []}
    for _ in range(rounds):
        for role, model in (("champion", champion), ("candidate", candidate)):
            timings[role].append(measure_latency(model, frame, single_calls=100, batch_repeats=3))

    def footprint(role: str, model: ProbabilityModel) -> Footprint:
        runs = timings[role]
        size = model_size(model)
        return Footprint(
            p99_ms=statistics.median(r.p99_ms for r in runs),
            rows_per_s=statistics.median(r.rows_per_s for r in runs),
            model_bytes=size.bytes,
            predict_peak_bytes=predict_peak_bytes(model, frame),
        )

    return footprint("candidate", candidate), footprint("champion", champion)


def regressions(candidate: Footprint, champion: Footprint, tolerance: Tolerance = Tolerance()) -> list[str]:
    """Each figure where the candidate is worse than the champion beyond the tolerance, in words."""
    found = []
    if candidate.p99_ms > champion.p99_ms * tolerance.latency:
        found.append(f"p99 {candidate.p99_ms:.3f} ms > champion {champion.p99_ms:.3f} ms x {tolerance.latency}")
    if candidate.rows_per_s < champion.rows_per_s * tolerance.throughput:
        found.append(
            f"throughput {candidate.rows_per_s:,.0f} rows/s < champion {champion.rows_per_s:,.0f} x {tolerance.throughput}"
        )
    if (
        candidate.model_bytes
        and champion.model_bytes
        and candidate.model_bytes > champion.model_bytes * tolerance.memory
    ):
        found.append(f"model {candidate.model_bytes:,} B > champion {champion.model_bytes:,} B x {tolerance.memory}")
    if candidate.predict_peak_bytes > champion.predict_peak_bytes * tolerance.memory:
        found.append(
            f"predict peak {candidate.predict_peak_bytes:,} B > champion {champion.predict_peak_bytes:,} B x {tolerance.memory}"
        )
    return found


def footprint_table(candidate: Footprint, champion: Footprint) -> str:
    fields = ("p99_ms", "rows_per_s", "model_bytes", "predict_peak_bytes")
    return markdown.table(
        [{"figure": f, "candidate": getattr(candidate, f), "champion": getattr(champion, f)} for f in fields],
        digits=3,
    )


def build_performance_regression(spec: DatasetSpec) -> AssetsDefinition:
    """``performance_regression`` of the evaluated candidate against the champion it was judged against."""

    @multi_asset(  # subsettable, so a check with nothing to compare emits no result (skipped, never passed)
        name="performance_regression",
        outs={
            "performance_regression": AssetOut(
                group_name="model",
                automation_condition=on_upstream_update(ignore=(*READ_NOT_REACTED, "approved_training_set")),
                code_version=code_version(spec, sys.modules[__name__], uses=("columns",)),
                description="The candidate's latency, throughput and memory against the serving champion's, "
                "measured the same way in alternating rounds on the same test rows (The ML Test Score: no computing "
                "regression).",
            )
        },
        deps=[TRAINING_SET_DEP],
        check_specs=[
            AssetCheckSpec(
                CHECK,
                asset="performance_regression",
                description="the candidate's p99, throughput and memory are no worse than the champion's beyond a "
                "tolerance, measured the same way in the same run (warns)",
            )
        ],
        can_subset=True,
    )
    def performance_regression(
        context: AssetExecutionContext,
        model_evaluation: Evaluation,
        approved_training_set: TrainingSetRef,
        model_store: ModelStore,
    ) -> MaterializeResult:
        candidate_tag = model_evaluation.candidate_ref.tag
        champion_ref = model_evaluation.champion_ref
        if champion_ref is None or champion_ref.tag == candidate_tag:
            why = "no other champion to compare with (first promotion): nothing to judge"
            context.log.warning(f"{CHECK} not executed: {why}")
            return MaterializeResult(
                asset_key="performance_regression",
                metadata={"candidate_tag": candidate_tag, "champion_tag": "none", "not_judged": why},
            )
        # whole test rows to time both models on: a bounded sample (every test row of a window no larger)
        rows = evaluation_sample(spec, load_approved(context, approved_training_set, "performance_regression"))
        candidate, champion = measure_pair(
            load_stored(model_store, candidate_tag), load_stored(model_store, champion_ref.tag), rows
        )
        found = regressions(candidate, champion)
        return MaterializeResult(
            asset_key="performance_regression",
            metadata={
                "candidate_tag": candidate_tag,
                "champion_tag": champion_ref.tag,
                "sample_rows": len(rows),
                "footprint": MetadataValue.md(footprint_table(candidate, champion)),
                "candidate_p99_ms": candidate.p99_ms,
                "champion_p99_ms": champion.p99_ms,
                "candidate_rows_per_s": candidate.rows_per_s,
                "champion_rows_per_s": champion.rows_per_s,
            },
            check_results=[
                AssetCheckResult(
                    check_name=CHECK,
                    passed=not found,
                    severity=AssetCheckSeverity.WARN,
                    description="; ".join(found) or f"{candidate_tag} is no worse than {champion_ref.tag}",
                    metadata={"candidate_tag": candidate_tag, "champion_tag": champion_ref.tag},
                )
            ],
        )

    return performance_regression
