"""``model_evaluation`` and its blocking gates, for one dataset spec.

The asset scores the candidate, the baseline and the serving champion (if any) on the newest days of the
training set (its test split), each at its own decision threshold (chosen on validation when it was trained), and
records everything a person needs to judge them in the UI. The gates are a ``@multi_asset_check`` of blocking
checks on it: a failed gate fails the check step, and Dagster then skips ``champion_model`` (and everything after
it) in the same run, so the champion keeps serving. Every result carries a one-line description, failed ones
first. A gate that could not judge fails, unless the spec lets it be skipped (``gates.may_skip``): then its result
is not emitted at all, so Dagster records the check as skipped (the UI shows it as not executed, never as passed),
and the reason is logged and kept in the evaluation's metadata (``gates_not_judged``).
"""

import sys
import time
from typing import Any

import numpy as np
import pandas as pd
from dagster import (
    AssetCheckExecutionContext,
    AssetCheckResult,
    AssetCheckSeverity,
    AssetCheckSpec,
    AssetExecutionContext,
    AssetIn,
    DagsterInstance,
    Failure,
    MetadataValue,
    Output,
    asset,
    multi_asset_check,
)

from ml_assets import inline, markdown
from ml_assets.automation import on_upstream_update, with_its_asset
from ml_assets.data import leakage
from ml_assets.data.approval import READ_NOT_REACTED, TRAINING_SET_DEP, TrainingSetRef, load_approved
from ml_assets.data.splits import SPLIT
from ml_assets.data.window import TrainingWindow, split_counts
from ml_assets.dataset import DatasetSpec
from ml_assets.model import evaluation as evaluation_module
from ml_assets.model import gates as gates_module
from ml_assets.model import paired_bootstrap
from ml_assets.model.bundle import ModelRef
from ml_assets.model.evaluation import (
    METRIC_NAMES,
    Evaluation,
    ModelScores,
    ProbabilityModel,
    comparison_table,
    score_model,
    slice_table,
)
from ml_assets.model.gates import (
    GATE_NAMES,
    GateOutcome,
    GateThresholds,
    evaluate_gates,
    gate_table,
    thresholds_for,
)
from ml_assets.model.plots import calibration_plot, roc_plot
from ml_assets.model.reference import fitted_reference, gap_table, metric_gaps, slice_gaps
from ml_assets.model.refs import load_stored, stored_ref
from ml_assets.model.registry import current_champion_tag
from ml_assets.model.window_reads import FIT_SAMPLE_ROWS, JUDGE_SAMPLE_ROWS, ScoredSplit, labeled_sample, score_split
from ml_assets.versioning import code_version
from resources.model_store import ModelStore

GATE_DESCRIPTIONS = {
    "beats_baseline": "candidate's primary metric >= the baseline's + a margin",
    "blessed_against_champion": "TFX blessing: primary metric >= an absolute floor and no worse than the serving "
    "champion by more than a tolerance (floor alone when there is no champion)",
    "slice_quality": "every slice of a sensitive attribute or band with enough rows meets a floor",
    "fairness": "demographic parity and equalized odds differences under their limits per sensitive attribute",
    "latency_budget": "in-process p99 of a one-row predict_proba and 1,000-row throughput within budget",
    "numerically_stable": "finite probabilities in [0, 1] for extreme, unseen and missing inputs",
    "predicts_both_classes": "not degenerate: at its decision threshold the candidate predicts each class for a "
    "share of the test rows near the share that truly holds it",
    "plausible_score": "not too good to be true: test ROC AUC at most a limit, or acknowledged in the spec naming "
    "the features that carry it",
}


def evaluation_rows(spec: DatasetSpec, training_set: pd.DataFrame) -> pd.DataFrame:
    """The labeled rows of the newest days of a training_set frame, as production would see them next."""
    if SPLIT not in training_set.columns:
        raise Failure(description=f"training_set has no {SPLIT!r} column; columns: {list(training_set.columns)}")
    test = training_set[training_set[SPLIT].astype("string") == "test"]
    test = spec.labeled(test).reset_index(drop=True)  # unlabeled rows cannot be judged
    judgeable(test[spec.label_column].to_numpy(dtype=np.int64))
    return test


def judgeable(y: np.ndarray) -> None:
    """Refuse test labels that cannot judge a model: none at all, or a single class (AUC is undefined)."""
    if len(y) == 0:
        raise Failure(description="training_set has no labeled rows in its test split: nothing to evaluate on")
    labels = {int(v) for v in np.unique(y)}
    if labels != {0, 1}:
        raise Failure(description=f"the test split holds only label(s) {sorted(labels)}: AUC is undefined")


def evaluation_sample(spec: DatasetSpec, window: TrainingWindow, rows: int = JUDGE_SAMPLE_ROWS) -> pd.DataFrame:
    """Up to ``rows`` labeled test rows of the window, whole (every one on a window no larger), refused as
    ``evaluation_rows`` refuses them: for what needs the features of real rows (latency, footprints)."""
    sample = labeled_sample(window, "test", rows)
    judgeable(sample[spec.label_column].to_numpy(dtype=np.int64))
    return sample


def comparable_champion(instance: DagsterInstance, candidate: ModelRef) -> str | None:
    """The serving champion's tag, when it is a version of the candidate's model: a champion of another model name
    (another dataset) is no comparison."""
    tag = current_champion_tag(instance)
    if tag is not None and not tag.startswith(f"{candidate.name}:"):
        return None
    return tag


def score_models(
    context: AssetExecutionContext,
    spec: DatasetSpec,
    thresholds: GateThresholds,
    refs: dict[str, ModelRef],
    models: dict[str, ProbabilityModel],
    test: ScoredSplit,
    sample: pd.DataFrame,
    model_store: ModelStore,
) -> dict[str, ModelScores]:
    """Each role's model (candidate, baseline, champion; ``models`` by role) judged on every test row from its probabilities scored
    batch by batch (``test``); only the candidate's latency, size and stability are measured, on whole rows of a
    bounded ``sample`` of the test split."""
    scored = {}
    frame = test.frame(spec.label_column)
    for role, ref in refs.items():
        scored[role] = score_model(
            models[role],
            ref.tag,
            spec,
            frame,
            min_group_size=thresholds.slice_min_size,
            operational=role == "candidate",
            saved_path=model_store.path(ref.tag) if role == "candidate" else None,
            probabilities=test.probabilities[role],
            explain_above=thresholds.too_good if role == "candidate" else None,
            sample=sample,
        )
        context.log.info(
            f"{role} {ref.tag}: {thresholds.primary_metric} {scored[role].metrics[thresholds.primary_metric]:.4f}"
        )
    return scored


def baseline_gap_se(y: np.ndarray, probabilities: dict[str, np.ndarray], metric: str) -> float | None:
    """The standard error of the candidate's ``metric`` gap to the baseline on the test rows (``beats_baseline``
    tolerates a deficit within ``gates.baseline_noise`` of them); None for a metric without a bootstrap."""
    if metric not in paired_bootstrap.METRICS:
        return None
    pair = {"baseline": probabilities["baseline"], "candidate": probabilities["candidate"]}
    return paired_bootstrap.gap_standard_errors(y, pair, "baseline", metric)["candidate"]


def evaluation_metadata(
    ev: Evaluation,
    thresholds: GateThresholds,
    y: np.ndarray,
    curves: dict[str, np.ndarray],
    unlabeled_test: int,
    partition: str,
) -> dict[str, Any]:
    """What the UI shows of an evaluation: the comparison, the candidate's slices, a preview of the gates, ROC and
    calibration of every model (``curves``: probabilities by label), and the figures it plots across runs."""
    cand = ev.candidate
    m = thresholds.primary_metric
    outcomes = evaluate_gates(ev, thresholds)
    # first what a person reads at a glance, each short enough for the UI to render in place (ml_assets.inline):
    # the gates, failed first; the ROC curves; the models side by side. The detailed PNGs follow, behind a click.
    metadata: dict[str, Any] = {
        "gates": MetadataValue.md(
            inline.table(
                [
                    {"gate": o.name, "verdict": o.verdict, "observed": o.observed, "bar": o.threshold}
                    for o in blocking_first(outcomes)
                ],
                ["gate", "verdict", "observed", "bar"],
            )
        ),
        "roc_chart": MetadataValue.md(inline.roc_chart("ROC", roc_points(y, curves))),
        "comparison": MetadataValue.md(comparison_table(ev)),
        "slices": MetadataValue.md(slice_table(cand, m, thresholds.slice_min_size)),
        "gates_preview": MetadataValue.md(gate_table(outcomes)),
        "gates_not_judged": "; ".join(f"{o.name}: {o.description}" for o in outcomes if not o.judged) or "none",
        "candidate_decision_threshold": cand.threshold,
        "candidate_predicted_positive_rate": cand.metrics["positive_rate"],
        "test_positive_rate": ev.test_positives / ev.test_rows if ev.test_rows else float("nan"),
        "roc": MetadataValue.md(roc_plot(y, curves)),
        "calibration": MetadataValue.md(calibration_plot(y, curves)),
        "candidate_tag": ev.candidate_ref.tag,
        "baseline_tag": ev.baseline_ref.tag,
        "champion_tag": ev.champion_ref.tag if ev.champion_ref is not None else "none",
        "test_rows": ev.test_rows,
        "unlabeled_test_rows_left_out": unlabeled_test,
        "window_end": ev.window_end or "unknown",
        "training_set_partition": partition,
    }
    roles = {**ev.scored(), **({"reference": ev.reference} if ev.reference is not None else {})}
    for role, scores in roles.items():  # every figure as a number, so the UI plots it across evaluations
        metadata |= {f"{role}_{name}": scores.metrics[name] for name in METRIC_NAMES}
    for gap in cand.fairness:
        metadata[f"candidate_demographic_parity_difference_{gap.attribute}"] = gap.demographic_parity_difference
        metadata[f"candidate_equalized_odds_difference_{gap.attribute}"] = gap.equalized_odds_difference
    if ev.reference is not None:
        metadata["gap_to_reference"] = MetadataValue.md(gap_table(cand, ev.reference))
        metadata[f"reference_gap_{m}"] = metric_gaps(cand, ev.reference)[m]
        per_slice = slice_gaps(cand, ev.reference, m)
        if per_slice:
            metadata["gap_to_reference_by_slice"] = MetadataValue.md(
                markdown.table(
                    [{"slice": k, f"{m} gap": v} for k, v in sorted(per_slice.items(), key=lambda kv: -kv[1])],
                    ["slice", f"{m} gap"],
                    right=[f"{m} gap"],
                )
            )
    if cand.latency is not None:
        metadata |= {"p99_ms": cand.latency.p99_ms, "rows_per_s": cand.latency.rows_per_s}
    if cand.size is not None and cand.size.bytes is not None:
        metadata["model_bytes"] = cand.size.bytes
    return metadata


REFERENCE_CHECK = "gap_to_reference"
IN_PLACE_CURVES = ("candidate", "baseline", "reference")  # the in-place ROC's lines (the PNG has every model)


def roc_points(y: np.ndarray, curves: dict[str, np.ndarray]) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """(false positive rates, true positive rates) of the candidate, baseline and reference curves, by role."""
    from sklearn.metrics import roc_curve

    out = {}
    for label, p in curves.items():
        role = label.split(" ")[0]
        if role in IN_PLACE_CURVES and len(np.unique(y)) == 2:
            fpr, tpr, _ = roc_curve(y, p)
            out[role] = (fpr, tpr)
    return out


def reference_outcome(ev: Evaluation, thresholds: GateThresholds) -> tuple[bool | None, str, dict[str, Any]]:
    """The gap check's verdict (None: no reference could be fitted, nothing to judge), its one line, its figures."""
    m = thresholds.primary_metric
    if ev.reference is None:
        return None, "no trees reference could be fitted on this window (see the run log): nothing to compare", {}
    gap = metric_gaps(ev.candidate, ev.reference)[m]
    figures = {f"candidate_{m}": ev.candidate.metrics[m], f"reference_{m}": ev.reference.metrics[m], "gap": gap}
    verdict = "within" if gap <= thresholds.reference_gap else "beyond"
    line = (
        f"candidate {m} {ev.candidate.metrics[m]:.4f} vs trees reference {ev.reference.metrics[m]:.4f}: "
        f"{gap:+.4f} behind, {verdict} the {thresholds.reference_gap} the spec allows"
    )
    return gap <= thresholds.reference_gap, line, figures


def gate_check_specs() -> list[AssetCheckSpec]:
    """One blocking check on ``model_evaluation`` per gate: a failure skips ``champion_model`` in the same run."""
    return [
        AssetCheckSpec(
            name,
            asset="model_evaluation",
            blocking=True,
            description=GATE_DESCRIPTIONS[name],
            automation_condition=with_its_asset(),
        )
        for name in GATE_NAMES
    ] + [
        AssetCheckSpec(
            REFERENCE_CHECK,
            asset="model_evaluation",
            blocking=False,
            description="the candidate's primary metric within gates.reference_gap of a gradient-boosted trees "
            "reference fitted on the same splits (a warning: the reference is never served)",
            automation_condition=with_its_asset(),
        )
    ]


def build_model_evaluation(spec: DatasetSpec):
    """``model_evaluation`` and the ``model_gates`` blocking checks for one dataset spec."""
    thresholds = thresholds_for(spec)

    @asset(
        name="model_evaluation",
        group_name="model",
        deps=[TRAINING_SET_DEP],
        automation_condition=on_upstream_update(ignore=(*READ_NOT_REACTED, "approved_training_set")),
        code_version=code_version(
            spec,
            sys.modules[__name__],
            evaluation_module,
            gates_module,
            leakage,
            uses=("columns", "bands", "positive_label", "gates"),
        ),
        description="Candidate vs baseline vs serving champion on the test split (newest days): metrics, "
        "slices, fairness gaps, latency, size and edge-input stability.",
    )
    def model_evaluation(
        context: AssetExecutionContext,
        approved_training_set: TrainingSetRef,
        candidate_model: ModelRef,
        baseline_model: ModelRef,
        model_store: ModelStore,
    ) -> Output[Evaluation]:
        window = load_approved(context, approved_training_set, "model_evaluation")
        champion_tag = comparable_champion(context.instance, candidate_model)
        refs = {"candidate": candidate_model, "baseline": baseline_model}
        if champion_tag is not None:
            refs["champion"] = stored_ref(model_store, champion_tag)
        models: dict[str, ProbabilityModel] = {role: load_stored(model_store, ref.tag) for role, ref in refs.items()}
        ref_model, fit_seconds = None, 0.0
        try:  # on bounded samples of the train and validation splits (every row of a window no larger)
            started = time.perf_counter()
            ref_model = fitted_reference(
                spec,
                labeled_sample(window, "train", FIT_SAMPLE_ROWS),
                labeled_sample(window, "validation", FIT_SAMPLE_ROWS),
            )
            fit_seconds = time.perf_counter() - started
            models["reference"] = ref_model
        except Exception as e:  # the reference only informs: no window, library or data problem may block the gates
            context.log.warning(f"no trees reference for this window: {type(e).__name__}: {e}")
        # every labeled test row scored by every model batch by batch: labels, probabilities and slice columns kept
        test = score_split(spec, window.split("test"), models, keep=[*spec.slice_columns, *spec.fairness_columns])
        judgeable(test.y)
        sample = labeled_sample(window, "test", JUDGE_SAMPLE_ROWS)
        scored = score_models(context, spec, thresholds, refs, models, test, sample, model_store)
        reference = None
        if ref_model is not None:
            reference = score_model(
                ref_model,
                "gbdt reference",
                spec,
                test.frame(spec.label_column),
                min_group_size=thresholds.slice_min_size,
                operational=False,
                probabilities=test.probabilities["reference"],
            )
            context.log.info(f"trees reference: {thresholds.primary_metric} {reference.metrics[thresholds.primary_metric]:.4f}"
                             f" ({ref_model.best_iteration} rounds, {fit_seconds:.1f} s)")  # fmt: skip
        y = test.y
        counts = split_counts(window)["test"]
        unlabeled_test = counts.rows - counts.labeled
        window_end = str(window.window_end)
        ev = Evaluation(
            spec_name=spec.name,
            primary_metric=thresholds.primary_metric,
            test_rows=test.rows,
            test_positives=int(y.sum()),
            window_end=window_end,
            candidate=scored["candidate"],
            baseline=scored["baseline"],
            champion=scored.get("champion"),
            candidate_ref=candidate_model,
            baseline_ref=baseline_model,
            champion_ref=refs.get("champion"),
            thresholds=thresholds.model_dump(),
            reference=reference,
            baseline_gap_se=baseline_gap_se(y, test.probabilities, thresholds.primary_metric),
        )
        kinds = {role: ref.kind for role, ref in refs.items()} | {"reference": "gbdt, not served"}
        curves = {f"{role} ({kinds[role]})": p for role, p in test.probabilities.items()}
        metadata = evaluation_metadata(ev, thresholds, y, curves, unlabeled_test, approved_training_set.partition_key)
        metadata["sample_rows"] = len(sample)  # whole test rows for latency, stability and carriers
        if reference is not None:
            metadata["reference_fit_seconds"] = round(fit_seconds, 2)
        return Output(ev, metadata=metadata)

    @multi_asset_check(
        name="model_gates",
        specs=gate_check_specs(),
        ins={"model_evaluation": AssetIn("model_evaluation")},
        can_subset=True,  # its check outputs are optional: a skipped gate emits no result, and the step succeeds
    )
    def model_gates(context: AssetCheckExecutionContext, model_evaluation: Evaluation):
        selected = {key.name for key in context.selected_asset_check_keys}
        results = []
        for outcome in blocking_first(evaluate_gates(model_evaluation, thresholds)):
            if outcome.name not in selected:
                continue
            if outcome.skipped:  # not emitted: Dagster records the check as skipped, never as passed
                context.log.warning(f"gate {outcome.name} not executed: {outcome.description}")
                continue
            results.append(
                AssetCheckResult(
                    asset_key="model_evaluation",
                    check_name=outcome.name,
                    passed=outcome.passed,
                    severity=AssetCheckSeverity.ERROR,
                    description=outcome.description,
                    metadata=outcome.metadata() | {"candidate_tag": model_evaluation.candidate.tag},
                )
            )
        if REFERENCE_CHECK in selected:
            passed, line, figures = reference_outcome(model_evaluation, thresholds)
            if passed is None:  # could not judge: not emitted, so the UI shows it as not executed, never passed
                context.log.warning(f"{REFERENCE_CHECK} not executed: {line}")
            else:
                results.append(
                    AssetCheckResult(
                        asset_key="model_evaluation",
                        check_name=REFERENCE_CHECK,
                        passed=passed,
                        severity=AssetCheckSeverity.WARN,
                        description=line,
                        metadata=figures,
                    )
                )
        # failed first (what blocks before what warns), then the passes
        yield from sorted(results, key=lambda r: (r.passed, r.severity != AssetCheckSeverity.ERROR))

    return model_evaluation, model_gates


def blocking_first(outcomes: list[GateOutcome]) -> list[GateOutcome]:
    """Outcomes in the order a person should read them: what blocks the promotion first, then the rest."""
    return sorted(outcomes, key=lambda o: not o.blocks)
