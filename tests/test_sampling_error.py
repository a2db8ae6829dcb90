"""Honest alarms: estimated and realized quality carry their sampling error (3 standard errors from the spread of the
metric across reference chunks of the day's size, as NannyML reports it), and estimated_performance /
realized_performance fail only when the whole band lies below the bar."""

from __future__ import annotations

import math

import numpy as np
import pytest

from ml_assets.dataset import DatasetSpec
from ml_assets.model.gates import thresholds_for
from ml_assets.monitoring.performance import rank_roc_auc, sampling_error
from ml_assets.monitoring.report import TagReport
from ml_assets.monitoring.verdicts import estimated_performance, realized_performance


def population(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Calibrated scores of a fair model: y ~ Bernoulli(p)."""
    rng = np.random.default_rng(seed)
    p = 1 / (1 + np.exp(-rng.normal(-1.0, 1.5, n)))
    return (rng.random(n) < p).astype(np.int64), p


def spread(metric: str, rows: int, draws: int = 200) -> float:
    """3 standard deviations of the metric over independent samples of ``rows`` rows: the truth to match."""
    y, p = population(100_000, seed=1)
    rng = np.random.default_rng(2)
    values = []
    for _ in range(draws):
        i = rng.choice(len(y), rows, replace=False)
        values.append(rank_roc_auc(y[i], p[i]) if metric == "roc_auc" else float(np.mean((p[i] >= 0.5) == (y[i] == 1))))
    return 3 * float(np.std(values, ddof=1))


@pytest.mark.parametrize("metric", ["roc_auc", "accuracy"])
@pytest.mark.parametrize(("reference_rows", "rows"), [(20_000, 400), (6_000, 3_000)])
def test_the_sampling_error_matches_the_spread_of_the_metric_on_samples_of_that_size(
    metric: str, reference_rows: int, rows: int
) -> None:
    """Chunks of the day's size when the reference holds enough of them; else six smaller ones, scaled by the square
    root of the sizes (6,000 reference rows for a 3,000-row day)."""
    y, p = population(reference_rows, seed=0)
    band = sampling_error(metric, y, p, 0.5, rows)
    truth = spread(metric, rows)
    assert truth * 0.7 < band < truth * 1.4, (band, truth)
    assert sampling_error(metric, y, p, 0.5, rows * 4) < band, "more rows, less sampling error"


def test_rank_roc_auc_is_roc_auc() -> None:
    from sklearn.metrics import roc_auc_score

    y, p = population(3000, seed=3)
    p = np.round(p, 2)  # ties count half
    assert math.isclose(rank_roc_auc(y, p), roc_auc_score(y, p), abs_tol=1e-12)
    assert math.isnan(rank_roc_auc(np.ones(5, dtype=np.int64), p[:5]))
    assert math.isnan(sampling_error("roc_auc", y[:10], p[:10], 0.5, 5)), "too few reference rows to say"


def report(value: float, band: float, labeled: int = 2000) -> TagReport:
    return TagReport(
        model_tag="m:1",
        rows=5000,
        labeled_rows=labeled,
        input_psi={},
        prediction_psi=0.0,
        estimated={"roc_auc": value, "accuracy": 0.85},
        reference={"roc_auc": 0.90, "accuracy": 0.85},
        realized={"roc_auc": value, "accuracy": 0.85},
        estimated_sampling_error={"roc_auc": band, "accuracy": 0.01},
        realized_sampling_error={"roc_auc": band, "accuracy": 0.01},
    )


def test_a_drop_within_sampling_error_of_the_bar_is_no_alarm_and_one_beyond_it_is(adult_spec: DatasetSpec) -> None:
    gates = thresholds_for(adult_spec)
    bar = 0.90 - adult_spec.monitoring.performance_drop
    for judge in (estimated_performance, realized_performance):
        inside = judge(adult_spec, gates, report(bar - 0.01, band=0.02))
        assert inside.passed and "below the bar but within sampling error of it" in inside.description
        assert inside.metadata["band_upper"] == pytest.approx(bar + 0.01) and inside.metadata["sampling_error"] == 0.02
        outside = judge(adult_spec, gates, report(bar - 0.03, band=0.02))
        assert outside.passed is False and "+/- 0.0200" in outside.description
        unknown = judge(adult_spec, gates, report(bar - 0.001, band=math.nan))
        assert unknown.passed is False, "no band from the reference: the bar alone judges"
