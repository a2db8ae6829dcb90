"""The monitoring checks' verdicts on a day's report: warnings that request retraining or a rollback, never a gate.

Thresholds come from the spec's ``monitoring:`` section (drift, performance drop, rollback drop, staleness) and its
model gates (primary metric, fairness limits, smallest judged group), so live traffic is held to the bars the
model was promoted on.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from ml_assets.dataset import DatasetSpec
from ml_assets.model.gates import GateThresholds
from ml_assets.monitoring.report import TagReport

INPUT_DRIFT = "input_drift"
PREDICTION_DRIFT = "prediction_drift"
ESTIMATED_PERFORMANCE = "estimated_performance"
REALIZED_PERFORMANCE = "realized_performance"
FAIRNESS = "live_fairness"
STALENESS = "staleness"
CHAMPION_REGRESSION = "champion_regression"
CHECKS = (
    INPUT_DRIFT,
    PREDICTION_DRIFT,
    ESTIMATED_PERFORMANCE,
    REALIZED_PERFORMANCE,
    FAIRNESS,
    STALENESS,
    CHAMPION_REGRESSION,
)
RETRAIN_CAUSES = (INPUT_DRIFT, PREDICTION_DRIFT, ESTIMATED_PERFORMANCE, REALIZED_PERFORMANCE, FAIRNESS, STALENESS)
DESCRIPTIONS = {
    INPUT_DRIFT: "PSI of every served feature against the serving model's own training rows under the limit",
    PREDICTION_DRIFT: "PSI of the served probabilities against the model's predictions on its test split under the limit",
    ESTIMATED_PERFORMANCE: "CBPE-estimated primary metric (before labels) no further below the model's evaluation than "
    "allowed, beyond its sampling error (3 standard errors for the day's rows, from reference chunks of that size)",
    REALIZED_PERFORMANCE: "realized primary metric on labeled traffic no further below the model's evaluation than "
    "allowed, beyond its sampling error (3 standard errors for the labeled rows, from reference chunks of that size)",
    FAIRNESS: "demographic parity and equalized odds gaps on labeled traffic within the fairness gate's limits",
    STALENESS: "the serving model and its newest training day are younger than the spec's limits",
    CHAMPION_REGRESSION: "the champion realizes no worse than the previous champion, shadow-scored on the same rows",
}


@dataclass(frozen=True)
class Verdict:
    """One check's verdict: ``passed`` is None when the check could not judge (too few rows, no labels, nothing to
    compare with): the asset then emits no result for it, so Dagster records it as skipped, never as a pass, and
    ``description`` says why."""

    name: str
    passed: bool | None
    description: str
    metadata: dict[str, Any] = field(default_factory=dict)

    @property
    def judged(self) -> bool:
        return self.passed is not None


def _fmt(x: float | None) -> str:
    return "-" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.4f}"


def _metric(gates: GateThresholds) -> str:
    """The primary metric, as far as it can be estimated without labels (ROC AUC or accuracy)."""
    return gates.primary_metric if gates.primary_metric in ("roc_auc", "accuracy") else "roc_auc"


def _labeled_enough(spec: DatasetSpec, r: TagReport) -> bool:
    """Whether enough of the day's rows carry labels to judge realized quality at all."""
    return r.labeled_rows >= spec.monitoring.min_labeled_rows


def _performance_bar(spec: DatasetSpec, gates: GateThresholds, r: TagReport) -> float:
    """The lowest estimated or realized primary metric allowed: the model's evaluation less the allowed drop."""
    return r.reference[_metric(gates)] - spec.monitoring.performance_drop


def _not_judged(name: str, spec: DatasetSpec, r: TagReport) -> Verdict:
    why = f"not judged: {r.labeled_rows} labeled rows < {spec.monitoring.min_labeled_rows}"
    return Verdict(name, None, why, {"labeled_rows": r.labeled_rows})


def _too_few_served(name: str, spec: DatasetSpec, r: TagReport) -> Verdict | None:
    if r.rows >= spec.monitoring.min_served_rows:
        return None
    why = f"not judged: {r.rows} served rows < {spec.monitoring.min_served_rows}"
    return Verdict(name, None, why, {"served_rows": r.rows})


def input_drift(spec: DatasetSpec, gates: GateThresholds, r: TagReport) -> Verdict:
    """Every served feature against the model's own training rows: PSI under the spec's drift limit."""
    if (few := _too_few_served(INPUT_DRIFT, spec, r)) is not None:
        return few
    limit = spec.monitoring.drift_psi
    if not r.input_psi:
        return Verdict(INPUT_DRIFT, None, "not judged: the model's training set has no train rows to compare with")
    worst, worst_psi = r.max_input_psi
    drifted = {k: round(v, 4) for k, v in r.input_psi.items() if v >= limit}
    return Verdict(
        INPUT_DRIFT,
        not drifted,
        f"{len(drifted)} of {len(r.input_psi)} features drifted (PSI >= {limit}): {drifted}"
        if drifted
        else f"no feature drifted; largest PSI {worst} {worst_psi:.3f} < {limit}",
        {
            "max_psi": worst_psi,
            "max_psi_feature": worst,
            "limit": limit,
            "drifted": ", ".join(drifted) or "none",
        },
    )


def prediction_drift(spec: DatasetSpec, gates: GateThresholds, r: TagReport) -> Verdict:
    """The served probabilities against the model's predictions on its test split: PSI under the drift limit."""
    if (few := _too_few_served(PREDICTION_DRIFT, spec, r)) is not None:
        return few
    limit = spec.monitoring.drift_psi
    if math.isnan(r.prediction_psi):
        return Verdict(PREDICTION_DRIFT, None, "not judged: no prediction of the model on its test split to compare")
    ok = r.prediction_psi < limit
    return Verdict(
        PREDICTION_DRIFT,
        ok,
        f"prediction PSI {r.prediction_psi:.3f} {'<' if ok else '>='} {limit}",
        {"psi": r.prediction_psi, "limit": limit},
    )


def _band(errors: dict[str, float], metric: str) -> float:
    """The sampling error of ``metric`` (0 when the reference could not give one: the bar alone then judges)."""
    value = errors.get(metric, math.nan)
    return 0.0 if math.isnan(value) else value


def _quality(
    name: str, kind: str, spec: DatasetSpec, gates: GateThresholds, r: TagReport, value: float, band: float, rows: int
) -> Verdict:
    """``value`` (``kind``: estimated or realized) against the bar, failing only when even the top of its sampling
    error band, ``value + band``, is below it: a drop sampling alone explains is no alarm (NannyML's honest alarms)."""
    metric = _metric(gates)
    bar = _performance_bar(spec, gates, r)
    ok = value + band >= bar
    verdict = "within" if value >= bar else "below the bar but within sampling error of it" if ok else "below"
    return Verdict(
        name,
        ok,
        f"{kind} {metric} {_fmt(value)} +/- {_fmt(band)} (sampling error of {rows} rows) vs evaluation "
        f"{_fmt(r.reference[metric])}: {verdict} (needs >= {_fmt(bar)})",
        {
            kind: value,
            "sampling_error": band,
            "band_lower": value - band,
            "band_upper": value + band,
            "rows": rows,
            "evaluation": r.reference[metric],
            "needs_at_least": bar,
        },
    )


def estimated_performance(spec: DatasetSpec, gates: GateThresholds, r: TagReport) -> Verdict:
    """CBPE's estimate of the primary metric before labels land (not judged while it cannot be estimated); fails
    only when the estimate's sampling error band lies wholly below the bar."""
    if (few := _too_few_served(ESTIMATED_PERFORMANCE, spec, r)) is not None:
        return few
    metric = _metric(gates)
    est = r.estimated[metric]
    if math.isnan(est):
        return Verdict(ESTIMATED_PERFORMANCE, None, f"not judged: {metric} cannot be estimated on these rows")
    found = _quality(
        ESTIMATED_PERFORMANCE, "estimated", spec, gates, r, est, _band(r.estimated_sampling_error, metric), r.rows
    )
    found.metadata["method"] = "CBPE"
    return found


def realized_performance(spec: DatasetSpec, gates: GateThresholds, r: TagReport) -> Verdict:
    """The primary metric on labeled traffic, once enough rows carry labels; fails only when its sampling error
    band lies wholly below the bar."""
    if not _labeled_enough(spec, r):
        return _not_judged(REALIZED_PERFORMANCE, spec, r)
    assert r.realized is not None
    metric = _metric(gates)
    real = r.realized[metric]
    if math.isnan(real):
        why = f"not judged: {metric} is undefined on the {r.labeled_rows} labeled rows (one class only?)"
        return Verdict(REALIZED_PERFORMANCE, None, why, {"labeled_rows": r.labeled_rows})
    band = _band(r.realized_sampling_error, metric)
    return _quality(REALIZED_PERFORMANCE, "realized", spec, gates, r, real, band, r.labeled_rows)


def live_fairness(spec: DatasetSpec, gates: GateThresholds, r: TagReport) -> Verdict:
    """Demographic parity and equalized odds gaps on labeled traffic, held to the fairness gate's limits."""
    if not _labeled_enough(spec, r):
        return _not_judged(FAIRNESS, spec, r)
    judged = [g for g in r.fairness if g.assessable]
    excluded = {g.attribute: g.excluded for g in r.fairness if g.excluded}
    if not judged:
        why = "not judged: no sensitive attribute has two groups of judged size among the labeled rows"
        return Verdict(FAIRNESS, None, why, {"excluded_groups": str(excluded) if excluded else "none"})
    over = [
        g.attribute
        for g in judged
        if g.demographic_parity_difference > gates.max_demographic_parity_difference
        or g.equalized_odds_difference > gates.max_equalized_odds_difference
    ]
    gaps = {
        g.attribute: f"DP {g.demographic_parity_difference:.3f}, EO {g.equalized_odds_difference:.3f}" for g in judged
    }
    return Verdict(
        FAIRNESS,
        not over,
        (f"gaps over the limits for {', '.join(over)}: {gaps}" if over else f"gaps within limits: {gaps}"),
        {
            "limits": f"DP <= {gates.max_demographic_parity_difference}, EO <= {gates.max_equalized_odds_difference}",
            "excluded_groups": str(excluded) if excluded else "none",
            **{f"{g.attribute}_dp": g.demographic_parity_difference for g in judged},
            **{f"{g.attribute}_eo": g.equalized_odds_difference for g in judged},
        },
    )


def staleness(spec: DatasetSpec, gates: GateThresholds, r: TagReport) -> Verdict:
    """The serving model's age and its newest training day's age against the spec's limits."""
    max_age_h = spec.retraining.max_model_age_hours
    max_data_days = spec.monitoring.max_training_data_age_days
    old = []
    if r.model_age_hours > max_age_h:
        old.append(f"model {r.model_age_hours:.0f} h old > {max_age_h:g} h")
    if r.training_data_age_days > max_data_days:
        old.append(f"newest training day {r.training_data_age_days:.1f} days old > {max_data_days:g}")
    return Verdict(
        STALENESS,
        not old,
        "; ".join(old)
        or f"model {r.model_age_hours:.1f} h old, newest training day {r.training_data_age_days:.1f} days old",
        {"model_age_hours": r.model_age_hours, "training_data_age_days": r.training_data_age_days},
    )


def champion_regression(spec: DatasetSpec, gates: GateThresholds, r: TagReport) -> Verdict:
    """The champion against the previous champion, shadow-scored on the same labeled rows: a drop beyond the
    spec's ``rollback_drop`` asks for a rollback."""
    if r.previous_realized is None or not _labeled_enough(spec, r):
        why = (
            "not judged: no previous champion to compare with"
            if r.previous_tag is None
            else f"not judged: {r.labeled_rows} labeled rows < {spec.monitoring.min_labeled_rows}"
        )
        return Verdict(CHAMPION_REGRESSION, None, why, {"previous_champion": r.previous_tag or "none"})
    assert r.realized is not None
    metric = _metric(gates)
    drop = spec.monitoring.rollback_drop
    cur, prev = r.realized[metric], r.previous_realized[metric]
    if math.isnan(cur) or math.isnan(prev):
        why = f"not judged: {metric} is undefined on the {r.labeled_rows} labeled rows"
        return Verdict(CHAMPION_REGRESSION, None, why, {"previous_champion": r.previous_tag or "none"})
    ok = cur >= prev - drop
    return Verdict(
        CHAMPION_REGRESSION,
        ok,
        f"champion {r.model_tag} realizes {metric} {_fmt(cur)}, previous champion {r.previous_tag} "
        f"{_fmt(prev)} on the same {r.labeled_rows} rows (rollback below {_fmt(prev - drop)})",
        {
            "champion": cur,
            "previous": prev,
            "previous_champion": r.previous_tag,
            "rollback_drop": drop,
        },
    )


VERDICTS = (
    input_drift,
    prediction_drift,
    estimated_performance,
    realized_performance,
    live_fairness,
    staleness,
    champion_regression,
)


def verdicts(spec: DatasetSpec, gates: GateThresholds, r: TagReport) -> list[Verdict]:
    """Every monitoring check's verdict on one tag's report, in CHECKS order."""
    return [verdict(spec, gates, r) for verdict in VERDICTS]


def failed_first(found: list[Verdict]) -> list[Verdict]:
    """Failed verdicts first, then passed, then not judged (each group in CHECKS order): what to read first."""
    rank = {False: 0, True: 1, None: 2}
    return sorted(found, key=lambda v: rank[v.passed])
