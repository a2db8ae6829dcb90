"""Model gates: the thresholds a candidate must meet to become champion, and the pure decision for each gate.

The thresholds are the spec's typed ``gates:`` section (``GateThresholds`` in ``ml_assets.dataset``, every field
with a default that suits a binary tabular classifier). Each gate returns a ``GateOutcome`` carrying the observed
value, the threshold, the comparison and a one-line description, which the blocking asset checks and
``champion_model`` both use, so the UI, the check and the promotion decision can never disagree; ``gate_table``
renders them for the UI (``model_evaluation``'s preview, ``champion_model``'s decision).

A gate that finds nothing to judge (no sensitive column, no slice or group large enough) does not pass: it fails,
saying it could not judge and why, unless the spec lists it under ``gates.may_skip``; then it is skipped, and its
check result is not emitted, so the UI shows it as not executed, never as passed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from ml_assets import markdown
from ml_assets.dataset import DatasetSpec, GateThresholds
from ml_assets.model.evaluation import Evaluation

__all__ = ["GATE_NAMES", "GateOutcome", "GateThresholds", "evaluate_gates", "failed_gates", "gate_table"]

BEATS_BASELINE = "beats_baseline"
BLESSED_AGAINST_CHAMPION = "blessed_against_champion"
SLICE_QUALITY = "slice_quality"
FAIRNESS = "fairness"
LATENCY_BUDGET = "latency_budget"
NUMERICALLY_STABLE = "numerically_stable"
PREDICTS_BOTH_CLASSES = "predicts_both_classes"
PLAUSIBLE_SCORE = "plausible_score"
# The ML Test Score's blocking check on model_evaluation (ml_assets.monitoring.ml_test_score): named here, below
# both, so promotion can hold to it across runs without the model layer importing monitoring.
READINESS_CHECK = "readiness"

GATE_NAMES = (
    BEATS_BASELINE,
    BLESSED_AGAINST_CHAMPION,
    SLICE_QUALITY,
    FAIRNESS,
    LATENCY_BUDGET,
    NUMERICALLY_STABLE,
    PREDICTS_BOTH_CLASSES,
    PLAUSIBLE_SCORE,
)
SKIP_SETTING = "gates.may_skip"


def thresholds_for(spec: DatasetSpec) -> GateThresholds:
    """The spec's gate thresholds (typed and validated when the spec loads)."""
    return spec.gates


@dataclass(frozen=True)
class GateOutcome:
    """One gate's verdict with what was observed, the bar, how they were compared, and a one-line description.

    ``judged`` is False when the gate found nothing to judge: it then fails (``passed`` False), unless ``skipped``
    (the spec allows it), which blocks nothing and is not a pass either.
    """

    name: str
    passed: bool
    observed: float | str
    threshold: float | str
    comparison: str
    description: str
    details: dict[str, Any] = field(default_factory=dict)
    judged: bool = True
    skipped: bool = False

    def __post_init__(self) -> None:
        # one line, whatever a slice or category name holds: the UI lists check results line by line
        object.__setattr__(self, "description", " ".join(str(self.description).split()))
        if self.skipped and (self.passed or self.judged):
            raise ValueError(f"gate {self.name}: only a gate that could not judge is skipped, never a pass")

    @property
    def blocks(self) -> bool:
        """Whether this outcome stops the promotion: a failure, or a gate that could not judge and may not skip."""
        return not self.passed and not self.skipped

    @property
    def verdict(self) -> str:
        if self.skipped:
            return "skipped (could not judge)"
        if not self.judged:
            return "FAIL (could not judge)"
        return "pass" if self.passed else "FAIL"

    def metadata(self) -> dict[str, Any]:
        """Flat metadata for an AssetCheckResult: observed, threshold, comparison, then the details."""
        return {"observed": self.observed, "threshold": self.threshold, "comparison": self.comparison} | {
            k: v for k, v in self.details.items() if v is not None
        }


def could_not_judge(
    name: str,
    th: GateThresholds,
    why: str,
    threshold: float | str,
    comparison: str,
    details: dict[str, Any] | None = None,
) -> GateOutcome:
    """The outcome of a gate with nothing to judge: a failure naming why, or a skip where the spec allows it."""
    skip = name in th.may_skip
    return GateOutcome(
        name,
        False,
        "not judged",
        threshold,
        comparison,
        f"could not judge: {why}; "
        + (
            f"skipped, as the spec allows ({SKIP_SETTING})"
            if skip
            else f"counts as failed (list it under {SKIP_SETTING} to allow a skip)"
        ),
        (details or {}) | {"not_judged": why},
        judged=False,
        skipped=skip,
    )


def _fmt(x: float) -> str:
    return "nan" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.4f}"


def _at_least(value: float, bound: float, higher_is_better: bool) -> bool:
    """``value`` is at least as good as ``bound``; NaN never passes."""
    if math.isnan(value) or math.isnan(bound):
        return False
    return value >= bound if higher_is_better else value <= bound


def beats_baseline(ev: Evaluation, th: GateThresholds) -> GateOutcome:
    """The candidate's primary metric at least the baseline's plus ``baseline_margin``; with no margin (the default),
    less what the test rows cannot tell from noise: ``baseline_noise`` standard errors of the paired gap
    (``Evaluation.baseline_gap_se``).

    Why the allowance: a network chosen over the logistic family by more than noise on validation then trailed the
    baseline on test by 0.0003 of ROC AUC on 53 positives (ISLP's Default): blocked, and nothing served."""
    m, hib = th.primary_metric, th.higher_is_better
    cand, base = ev.candidate.metrics[m], ev.baseline.metrics[m]
    se = ev.baseline_gap_se or 0.0
    # a margin asks for a real gain: then no deficit is tolerated; without one, none beyond the test rows' noise
    noise = th.baseline_noise * se if th.baseline_margin == 0 else 0.0
    bound = base + th.baseline_margin - noise if hib else base - th.baseline_margin + noise
    ok = _at_least(cand, bound, hib)
    op = ">=" if hib else "<="
    behind = (base - cand) if hib else (cand - base)
    said = f"candidate {m} {_fmt(cand)} {'meets' if ok else 'misses'} baseline {_fmt(base)} with margin "
    said += str(th.baseline_margin)
    if noise > 0:
        said += f", less {th.baseline_noise:g} standard error of the gap on the test rows ({se:.4f})"
    said += f" (needs {op} {_fmt(bound)})"
    if ok and behind > 0:
        said += f": {behind:.4f} behind, which these test rows cannot tell from noise"
    return GateOutcome(
        BEATS_BASELINE,
        ok,
        cand,
        bound,
        f"candidate {m} {op} baseline {m} {'+' if hib else '-'} margin {'-' if hib else '+'} noise",
        said,
        {
            "baseline": base,
            "margin": th.baseline_margin,
            "gap_standard_error": ev.baseline_gap_se,
            "noise_allowed": noise,
            "baseline_tag": ev.baseline.tag,
        },
    )


def blessed_against_champion(ev: Evaluation, th: GateThresholds) -> GateOutcome:
    """TFX blessing: the absolute floor (GenericValueThreshold) and, when a champion serves, no regression
    beyond the tolerance (GenericChangeThreshold, absolute change); with no champion the floor alone decides."""
    m, hib = th.primary_metric, th.higher_is_better
    cand = ev.candidate.metrics[m]
    floor_ok = _at_least(cand, th.absolute_floor, hib)
    if ev.champion is None:
        bound, change_ok, champ = th.absolute_floor, True, None
        why = "no champion yet: judged on the absolute floor alone"
    else:
        champ = ev.champion.metrics[m]
        allowed = champ - th.champion_tolerance if hib else champ + th.champion_tolerance
        change_ok = _at_least(cand, allowed, hib)
        bound = max(th.absolute_floor, allowed) if hib else min(th.absolute_floor, allowed)
        why = f"champion {ev.champion.tag} {m} {_fmt(champ)}, tolerance {th.champion_tolerance}"
    op = ">=" if hib else "<="
    ok = floor_ok and change_ok
    problems = [
        *([] if floor_ok else [f"{_fmt(cand)} misses the floor {th.absolute_floor}"]),
        *([] if change_ok else [f"{_fmt(cand)} regresses beyond tolerance from champion {_fmt(champ)}"]),
    ]
    return GateOutcome(
        BLESSED_AGAINST_CHAMPION,
        ok,
        cand,
        bound,
        f"candidate {m} {op} floor and {op} champion {'-' if hib else '+'} tolerance",
        f"candidate {m} {_fmt(cand)}; {why}" + ("" if ok else f"; {'; '.join(problems)}"),
        {
            "floor": th.absolute_floor,
            "champion_value": champ,
            "champion_tag": ev.champion.tag if ev.champion else "none",
            "tolerance": th.champion_tolerance,
            "floor_passed": floor_ok,
            "change_passed": change_ok,
        },
    )


def slice_quality(ev: Evaluation, th: GateThresholds) -> GateOutcome:
    m, hib = th.primary_metric, th.higher_is_better
    judged = [s for s in ev.candidate.slices if s.size >= th.slice_min_size and not math.isnan(s.metrics[m])]
    skipped = [
        f"{s.name} ({s.size} rows)" if s.size < th.slice_min_size else f"{s.name} (undefined {m})"
        for s in ev.candidate.slices
        if s not in judged
    ]
    op = ">=" if hib else "<="
    comparison = f"every slice with >= {th.slice_min_size} rows: {m} {op} floor"
    if not ev.candidate.slices:
        why = "the spec names no sensitive column or band to slice by"
        return could_not_judge(SLICE_QUALITY, th, why, th.slice_floor, comparison)
    if not judged:
        why = f"no slice has {th.slice_min_size}+ rows with a defined {m} ({', '.join(skipped)})"
        return could_not_judge(
            SLICE_QUALITY, th, why, th.slice_floor, comparison, {"skipped_slices": ", ".join(skipped)}
        )
    worst = min(judged, key=lambda s: s.metrics[m] if hib else -s.metrics[m])
    failing = [s for s in judged if not _at_least(s.metrics[m], th.slice_floor, hib)]
    ok = not failing
    return GateOutcome(
        SLICE_QUALITY,
        ok,
        worst.metrics[m],
        th.slice_floor,
        comparison,
        f"worst slice {worst.name} ({worst.size} rows) {m} {_fmt(worst.metrics[m])}"
        + ("" if ok else f"; below the floor {th.slice_floor}: " + ", ".join(s.name for s in failing)),
        {
            "worst_slice": worst.name,
            "worst_slice_rows": worst.size,
            "failing_slices": ", ".join(s.name for s in failing) or "none",
            "slices_judged": len(judged),
            "skipped_slices": ", ".join(skipped) or "none",
        },
    )


def fairness(ev: Evaluation, th: GateThresholds) -> GateOutcome:
    """Demographic parity and equalized odds gaps under their limits for every sensitive attribute with two groups
    large enough to judge; it could not judge when the spec names no sensitive attribute or none has two."""
    threshold = f"DP <= {th.max_demographic_parity_difference}, EO <= {th.max_equalized_odds_difference}"
    comparison = (
        "per sensitive attribute: demographic parity difference <= limit and equalized odds difference <= limit"
    )
    assessed = [g for g in ev.candidate.fairness if g.assessable]
    failing = [
        g
        for g in assessed
        if not g.demographic_parity_difference <= th.max_demographic_parity_difference
        or not g.equalized_odds_difference <= th.max_equalized_odds_difference
    ]
    observed = "; ".join(
        f"{g.attribute}: DP {g.demographic_parity_difference:.3f}, EO {g.equalized_odds_difference:.3f}"
        for g in assessed
    )
    details: dict[str, Any] = {}
    for g in ev.candidate.fairness:
        if g.assessable:
            details[f"{g.attribute}_demographic_parity_difference"] = g.demographic_parity_difference
            details[f"{g.attribute}_equalized_odds_difference"] = g.equalized_odds_difference
        else:  # no gap to report: say why, naming each group and its size, never a bare NaN
            details[f"{g.attribute}_not_judged"] = g.not_judged_reason()
        if g.excluded:
            details[f"{g.attribute}_excluded_groups"] = g.excluded_text()
    not_judged = [g.attribute for g in ev.candidate.fairness if not g.assessable]
    if not ev.candidate.fairness:
        why = "the spec names no sensitive column (nor a sensitive band): there is no group to compare"
        return could_not_judge(FAIRNESS, th, why, threshold, comparison)
    if not assessed:
        why = "no sensitive attribute has two groups large enough to compare: " + "; ".join(
            f"{g.attribute}: {g.not_judged_reason()}" for g in ev.candidate.fairness
        )
        return could_not_judge(
            FAIRNESS, th, why, threshold, comparison, details | {"attributes_not_judged": ", ".join(not_judged)}
        )
    predicted = ev.candidate.metrics.get("positive_rate", math.nan)
    if predicted in (0.0, 1.0):  # one label for every row: parity holds by construction, and says nothing
        details["note"] = (
            f"the candidate predicts {'the positive' if predicted else 'the negative'} label for every test row "
            f"at its threshold {ev.candidate.threshold:g}: the gaps are 0 by construction, not evidence of fairness"
        )
    ok = not failing
    unjudged = f"; not judged: {', '.join(not_judged)} (fewer than two groups to compare)" if not_judged else ""
    return GateOutcome(
        FAIRNESS,
        ok,
        observed,
        threshold,
        comparison,
        (
            f"fairness gaps within limits ({observed}){unjudged}"
            if ok
            else "gaps over the limit for " + ", ".join(g.attribute for g in failing) + f" ({observed}; limits "
            f"{threshold}){unjudged}"
        ),
        details
        | {
            "failing_attributes": ", ".join(g.attribute for g in failing) or "none",
            "attributes_not_judged": ", ".join(not_judged) or "none",
        },
    )


def latency_budget(ev: Evaluation, th: GateThresholds) -> GateOutcome:
    lat = ev.candidate.latency
    if lat is None:
        return GateOutcome(
            LATENCY_BUDGET,
            False,
            "not measured",
            th.max_p99_ms,
            "p99 <= budget",
            "could not judge: latency was not measured; counts as failed",
            judged=False,
        )
    p99_ok, tput_ok = lat.p99_ms <= th.max_p99_ms, lat.rows_per_s >= th.min_rows_per_s
    ok = p99_ok and tput_ok
    return GateOutcome(
        LATENCY_BUDGET,
        ok,
        f"p99 {lat.p99_ms:.2f} ms, {lat.rows_per_s:,.0f} rows/s",
        f"p99 <= {th.max_p99_ms} ms, >= {th.min_rows_per_s:,.0f} rows/s",
        "single-row p99 <= budget and 1,000-row batch rows/s >= budget",
        f"one row p50 {lat.p50_ms:.2f} ms / p99 {lat.p99_ms:.2f} ms of CPU over {lat.single_calls} calls (wall p99 "
        f"{lat.p99_wall_ms:.2f} ms on this machine, not judged); {lat.rows_per_s:,.0f} rows per CPU second on "
        f"{lat.batch_rows} rows"
        + ("" if p99_ok else f"; p99 over {th.max_p99_ms} ms")
        + ("" if tput_ok else f"; throughput under {th.min_rows_per_s:,.0f} rows/s"),
        {"p50_ms": lat.p50_ms, "p99_ms": lat.p99_ms, "rows_per_s": lat.rows_per_s, "p99_wall_ms": lat.p99_wall_ms},
    )


def numerically_stable(ev: Evaluation, th: GateThresholds) -> GateOutcome:
    st = ev.candidate.stability
    if st is None:
        return GateOutcome(
            NUMERICALLY_STABLE,
            False,
            "not measured",
            0,
            "==",
            "could not judge: edge inputs were not scored; counts as failed",
            judged=False,
        )
    bad = st.nonfinite + st.out_of_range
    return GateOutcome(
        NUMERICALLY_STABLE,
        st.passed,
        bad,
        0,
        "edge rows with a NaN, infinite or out-of-[0, 1] probability == 0",
        (
            f"all {st.rows} edge rows gave finite probabilities"
            if st.passed
            else (st.error or f"{bad} of {st.rows} edge rows failed: {', '.join(st.failing_cases)}")
        ),
        {"edge_rows": st.rows, "failing_cases": ", ".join(st.failing_cases) or "none", "error": st.error},
    )


def predicts_both_classes(ev: Evaluation, th: GateThresholds) -> GateOutcome:
    """Not a degenerate model: at its decision threshold the candidate predicts each class for at least
    ``min_prediction_ratio`` of the share of test rows that truly hold it. A model that answers one class for nearly
    every row can still look fine on accuracy (rare positives) and on parity (no gap when nobody is positive)."""
    actual = ev.test_positives / ev.test_rows if ev.test_rows else math.nan
    predicted = ev.candidate.metrics.get("positive_rate", math.nan)
    ratio = th.min_prediction_ratio
    need_pos, need_neg = ratio * actual, ratio * (1 - actual)
    comparison = "predicted positive rate >= ratio x actual positive rate, and the same for negatives"
    threshold = f"positive >= {need_pos:.2%}, negative >= {need_neg:.2%} of rows"
    if math.isnan(actual) or math.isnan(predicted):
        return GateOutcome(
            PREDICTS_BOTH_CLASSES,
            False,
            "not measured",
            threshold,
            comparison,
            "could not judge: the test rows or the candidate's predicted positive rate are missing; counts as failed",
            judged=False,
        )
    ok = predicted >= need_pos and 1 - predicted >= need_neg
    at = f"at its threshold {ev.candidate.threshold:.4g}"
    if ok:
        text = f"candidate predicts positive for {predicted:.2%} of test rows {at} (actual {actual:.2%})"
    else:
        one = "negative" if predicted < need_pos else "positive"
        text = (
            f"degenerate model: the candidate predicts {one} for {max(predicted, 1 - predicted):.2%} of test rows "
            f"{at}, while the test split holds {actual:.2%} positives (each class must be predicted for at least "
            f"{ratio:g} x its actual share)"
        )
        if (one == "positive") == (actual > 0.5):  # the majority for nearly every row: maybe the policy, not the model
            text += (
                f"; the threshold is the spec's decision policy's choice on validation, and {one} is the majority "
                "class: unless the policy is already balanced, decision.policy balanced (recall + specificity) does "
                "not favour it"
            )
    return GateOutcome(
        PREDICTS_BOTH_CLASSES,
        ok,
        predicted,
        threshold,
        comparison,
        text,
        {"actual_positive_rate": actual, "decision_threshold": ev.candidate.threshold, "ratio": ratio},
    )


def plausible_score(ev: Evaluation, th: GateThresholds) -> GateOutcome:
    """Too good to be true: a candidate test ROC AUC above ``too_good`` blocks promotion until the spec
    acknowledges it (``acknowledged_too_good``) naming every feature that carries the score."""
    auc = ev.candidate.metrics.get("roc_auc", math.nan)
    comparison = "candidate test ROC AUC <= too_good, or acknowledged in the spec for the features carrying it"
    if math.isnan(auc):
        return GateOutcome(
            PLAUSIBLE_SCORE,
            False,
            "not measured",
            th.too_good,
            comparison,
            "could not judge: the candidate's test ROC AUC is undefined; counts as failed",
            judged=False,
        )
    if auc <= th.too_good:
        return GateOutcome(
            PLAUSIBLE_SCORE, True, auc, th.too_good, comparison, f"test ROC AUC {_fmt(auc)} <= {th.too_good}"
        )
    carriers = ev.candidate.carriers
    named = [c.feature for c in carriers] if carriers else []
    if carriers:
        carried = "carried by " + ", ".join(
            f"{c.feature!r} (AUC drop {c.auc_drop:.3f} when shuffled)" for c in carriers
        )
    elif carriers is None:
        carried = "the features carrying it were not measured"
    else:  # shuffling any one feature costs next to nothing: copies of the same signal stand in for each other
        carried = "no single feature carries it (the score survives shuffling any one: redundant features)"
    details: dict[str, Any] = {"carrying_features": ", ".join(named) or "none found"}
    ack = th.acknowledged_too_good
    if ack is not None and named and set(named) <= set(ack.features):
        return GateOutcome(
            PLAUSIBLE_SCORE,
            True,
            auc,
            th.too_good,
            comparison,
            f"test ROC AUC {_fmt(auc)} > {th.too_good}, {carried}: acknowledged in the spec ({ack.reason})",
            details | {"acknowledged_features": ", ".join(ack.features), "acknowledged_reason": ack.reason},
        )
    if not named:
        why = "if it is real, raise gates.too_good above it (no feature to acknowledge was found)"
    elif ack is not None:
        why = f"the spec acknowledges only {', '.join(ack.features)}"
    else:
        why = (
            "if it is real, acknowledge it in the spec: gates.acknowledged_too_good: "
            f"{{reason: ..., features: [{', '.join(named)}]}}"
        )
    return GateOutcome(
        PLAUSIBLE_SCORE,
        False,
        auc,
        th.too_good,
        comparison,
        f"too good to be true: test ROC AUC {_fmt(auc)} > {th.too_good}, {carried}; a score this high usually means "
        f"a leak; {why}",
        details,
    )


GATES = (
    beats_baseline,
    blessed_against_champion,
    slice_quality,
    fairness,
    latency_budget,
    numerically_stable,
    predicts_both_classes,
    plausible_score,
)


def evaluate_gates(ev: Evaluation, th: GateThresholds) -> list[GateOutcome]:
    """Every gate's outcome, in GATE_NAMES order."""
    return [gate(ev, th) for gate in GATES]


def failed_gates(outcomes: list[GateOutcome]) -> list[str]:
    """The gates that block promotion: failures and gates that could not judge without leave to skip."""
    return [o.name for o in outcomes if o.blocks]


def skipped_gates(outcomes: list[GateOutcome]) -> list[str]:
    return [o.name for o in outcomes if o.skipped]


def gate_table(outcomes: list[GateOutcome]) -> str:
    """Markdown table of every gate: verdict, observed value, threshold and comparison."""
    return markdown.table(
        [
            {
                "gate": o.name,
                "verdict": o.verdict,
                "observed": o.observed,
                "threshold": o.threshold,
                "comparison": o.comparison,
            }
            for o in outcomes
        ]
    )
