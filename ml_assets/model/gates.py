"""Model gates: the thresholds a candidate must meet to become champion, and the pure decision for each gate.

One ``GateThresholds`` object holds every bar with defaults that suit a binary tabular classifier; a dataset spec
may override any of them under an optional ``gates:`` mapping. Each gate returns a ``GateOutcome`` carrying the
observed value, the threshold and the comparison, which the blocking asset checks and ``champion_model`` both use,
so the UI, the check and the promotion decision can never disagree; ``gate_table`` renders them for the UI
(``model_evaluation``'s preview, ``champion_model``'s decision).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ml_assets import markdown
from ml_assets.dataset import DatasetSpec
from ml_assets.model.evaluation import LOWER_IS_BETTER, Evaluation

PrimaryMetric = Literal["roc_auc", "pr_auc", "accuracy", "f1", "log_loss", "brier", "ece"]

BEATS_BASELINE = "beats_baseline"
BLESSED_AGAINST_CHAMPION = "blessed_against_champion"
SLICE_QUALITY = "slice_quality"
FAIRNESS = "fairness"
LATENCY_BUDGET = "latency_budget"
NUMERICALLY_STABLE = "numerically_stable"
GATE_NAMES = (
    BEATS_BASELINE,
    BLESSED_AGAINST_CHAMPION,
    SLICE_QUALITY,
    FAIRNESS,
    LATENCY_BUDGET,
    NUMERICALLY_STABLE,
)


class GateThresholds(BaseModel):
    """Every bar a candidate must clear. Defaults fit a binary tabular classifier judged by ROC AUC.

    The fairness limits are deliberately not tighter than the data allows: in UCI Adult the base rate of the
    positive label differs by about 0.2 between sexes, so a calibrated model shows a demographic parity gap of
    that size; a model that learned to ignore one group's positives shows equalized-odds gaps above 0.5.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    primary_metric: PrimaryMetric = "roc_auc"
    baseline_margin: float = Field(0.0, ge=0.0, description="candidate must beat the baseline by this much")
    absolute_floor: float = Field(
        0.70, description="TFX GenericValueThreshold: the primary metric's bound (a ceiling if lower is better)"
    )
    champion_tolerance: float = Field(
        0.01, ge=0.0, description="TFX GenericChangeThreshold: how much worse than the champion is tolerated"
    )
    slice_min_size: int = Field(200, ge=1, description="slices and fairness groups smaller than this are not judged")
    slice_floor: float = Field(0.65, description="primary metric every judged slice must reach")
    max_demographic_parity_difference: float = Field(0.25, ge=0.0, le=1.0)
    max_equalized_odds_difference: float = Field(0.30, ge=0.0, le=1.0)
    max_p99_ms: float = Field(
        100.0, gt=0.0, description="p99 latency of one-row predict_proba, in-process (leaves room for HTTP)"
    )
    min_rows_per_s: float = Field(1000.0, gt=0.0, description="throughput of a 1,000-row batch")

    @property
    def higher_is_better(self) -> bool:
        return self.primary_metric not in LOWER_IS_BETTER


class GateConfigError(ValueError):
    """A dataset spec's ``gates:`` mapping that does not describe valid thresholds."""


def thresholds_for(spec: DatasetSpec) -> GateThresholds:
    """The spec's thresholds: defaults overridden by its optional ``gates:`` mapping."""
    try:
        return GateThresholds.model_validate(spec.gates)
    except ValidationError as e:
        where = spec.path or "(in memory)"
        raise GateConfigError(f"dataset spec {spec.name!r} at {where}: invalid 'gates' mapping:\n{e}") from e


@dataclass(frozen=True)
class GateOutcome:
    """One gate's verdict with what was observed, the bar, and how they were compared."""

    name: str
    passed: bool
    observed: float | str
    threshold: float | str
    comparison: str
    description: str
    details: dict[str, Any] = field(default_factory=dict)

    def metadata(self) -> dict[str, Any]:
        """Flat metadata for an AssetCheckResult: observed, threshold, comparison, then the details."""
        return {"observed": self.observed, "threshold": self.threshold, "comparison": self.comparison} | {
            k: v for k, v in self.details.items() if v is not None
        }


def _fmt(x: float) -> str:
    return "nan" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.4f}"


def _at_least(value: float, bound: float, higher_is_better: bool) -> bool:
    """``value`` is at least as good as ``bound``; NaN never passes."""
    if math.isnan(value) or math.isnan(bound):
        return False
    return value >= bound if higher_is_better else value <= bound


def beats_baseline(ev: Evaluation, th: GateThresholds) -> GateOutcome:
    m = th.primary_metric
    cand, base = ev.candidate.metrics[m], ev.baseline.metrics[m]
    bound = base + th.baseline_margin if th.higher_is_better else base - th.baseline_margin
    ok = _at_least(cand, bound, th.higher_is_better)
    op = ">=" if th.higher_is_better else "<="
    return GateOutcome(
        BEATS_BASELINE,
        ok,
        cand,
        bound,
        f"candidate {m} {op} baseline {m} {'+' if th.higher_is_better else '-'} margin",
        f"candidate {m} {_fmt(cand)} {'meets' if ok else 'misses'} baseline {_fmt(base)} with margin "
        f"{th.baseline_margin} (needs {op} {_fmt(bound)})",
        {"baseline": base, "margin": th.baseline_margin, "baseline_tag": ev.baseline.tag},
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
    if not judged:
        return GateOutcome(
            SLICE_QUALITY,
            True,
            "no slice judged",
            th.slice_floor,
            f"every slice with >= {th.slice_min_size} rows: {m} {op} floor",
            f"no slice has {th.slice_min_size}+ rows with a defined {m}; nothing to judge",
            {"skipped_slices": ", ".join(skipped)},
        )
    worst = min(judged, key=lambda s: s.metrics[m] if hib else -s.metrics[m])
    failing = [s for s in judged if not _at_least(s.metrics[m], th.slice_floor, hib)]
    ok = not failing
    return GateOutcome(
        SLICE_QUALITY,
        ok,
        worst.metrics[m],
        th.slice_floor,
        f"every slice with >= {th.slice_min_size} rows: {m} {op} floor",
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
    predicted = ev.candidate.metrics.get("positive_rate", math.nan)
    if predicted in (0.0, 1.0):  # one label for every row: parity holds by construction, and says nothing
        details["note"] = (
            f"the candidate predicts {'the positive' if predicted else 'the negative'} label for every test row "
            f"at its threshold {ev.candidate.threshold:g}: the gaps are 0 by construction, not evidence of fairness"
        )
    ok = not failing
    return GateOutcome(
        FAIRNESS,
        ok,
        observed or "no sensitive attribute with two judged groups",
        f"DP <= {th.max_demographic_parity_difference}, EO <= {th.max_equalized_odds_difference}",
        "per sensitive attribute: demographic parity difference <= limit and equalized odds difference <= limit",
        (
            "fairness gaps within limits"
            if ok
            else "gaps over the limit for " + ", ".join(g.attribute for g in failing) + f" ({observed})"
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
            LATENCY_BUDGET, False, "not measured", th.max_p99_ms, "p99 <= budget", "latency was not measured"
        )
    p99_ok, tput_ok = lat.p99_ms <= th.max_p99_ms, lat.rows_per_s >= th.min_rows_per_s
    ok = p99_ok and tput_ok
    return GateOutcome(
        LATENCY_BUDGET,
        ok,
        f"p99 {lat.p99_ms:.2f} ms, {lat.rows_per_s:,.0f} rows/s",
        f"p99 <= {th.max_p99_ms} ms, >= {th.min_rows_per_s:,.0f} rows/s",
        "single-row p99 <= budget and 1,000-row batch rows/s >= budget",
        f"one row p50 {lat.p50_ms:.2f} ms / p99 {lat.p99_ms:.2f} ms over {lat.single_calls} calls; "
        f"{lat.rows_per_s:,.0f} rows/s on {lat.batch_rows} rows"
        + ("" if p99_ok else f"; p99 over {th.max_p99_ms} ms")
        + ("" if tput_ok else f"; throughput under {th.min_rows_per_s:,.0f} rows/s"),
        {"p50_ms": lat.p50_ms, "p99_ms": lat.p99_ms, "rows_per_s": lat.rows_per_s},
    )


def numerically_stable(ev: Evaluation, th: GateThresholds) -> GateOutcome:
    st = ev.candidate.stability
    if st is None:
        return GateOutcome(NUMERICALLY_STABLE, False, "not measured", 0, "==", "edge inputs were not scored")
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


GATES = (beats_baseline, blessed_against_champion, slice_quality, fairness, latency_budget, numerically_stable)


def evaluate_gates(ev: Evaluation, th: GateThresholds) -> list[GateOutcome]:
    """Every gate's outcome, in GATE_NAMES order."""
    return [gate(ev, th) for gate in GATES]


def failed_gates(outcomes: list[GateOutcome]) -> list[str]:
    return [o.name for o in outcomes if not o.passed]


def gate_table(outcomes: list[GateOutcome]) -> str:
    """Markdown table of every gate: verdict, observed value, threshold and comparison."""
    return markdown.table(
        [
            {
                "gate": o.name,
                "verdict": "pass" if o.passed else "FAIL",
                "observed": o.observed,
                "threshold": o.threshold,
                "comparison": o.comparison,
            }
            for o in outcomes
        ]
    )
