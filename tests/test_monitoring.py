"""Monitoring figures on constructed data with known answers, and the log and label readers on real files.

- CBPE: on calibrated synthetic scores the estimated ROC AUC and accuracy match the realized ones.
- Drift: served rows drawn like the training rows show no drift; a shifted feature shows a large PSI.
- Fairness: a model that never predicts the positive label for one group shows the gap fairlearn computes.
- The prediction log reader keeps complete lines only, counts bad ones, and the frame keeps one row per request.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from ml_assets.dataset import DatasetSpec
from ml_assets.datasets.samples import demo_training_set
from ml_assets.model.gates import thresholds_for
from ml_assets.monitoring.assets import label_frame, log_frame, log_inputs
from ml_assets.monitoring.performance import estimate, expected_roc_auc, fit_calibration
from ml_assets.monitoring.report import LABEL, PROBABILITY, join_labels, tag_report
from ml_assets.monitoring.verdicts import verdicts
from resources.prediction_logs import PredictionLogFiles
from tests.serving_support import fit_logistic


def _drawn(rng: np.random.Generator, a: float, b: float, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Calibrated scores and labels drawn from them: a row scored p is positive with probability p."""
    p = rng.beta(a, b, n)
    return p, (rng.random(n) < p).astype(int)


@pytest.mark.parametrize("a,b", [(2.0, 5.0), (0.5, 0.5), (5.0, 1.5)])
def test_the_estimate_matches_realized_quality_on_calibrated_scores(a: float, b: float) -> None:
    """``estimate`` (what monitoring reports before labels land) against what the labels then show."""
    rng = np.random.default_rng(0)
    reference_p, reference_y = _drawn(rng, a, b, 20_000)
    p, y = _drawn(rng, a, b, 40_000)
    assert expected_roc_auc(p) == pytest.approx(roc_auc_score(y, p), abs=0.01)
    got = estimate(p, fit_calibration(reference_p, reference_y), 0.5)
    assert got["roc_auc"] == pytest.approx(roc_auc_score(y, p), abs=0.01)
    assert got["accuracy"] == pytest.approx(((p >= 0.5) == y).mean(), abs=0.01)
    assert got["positive_rate"] == pytest.approx(y.mean(), abs=0.01)


def test_the_estimate_calibrates_overconfident_scores_first() -> None:
    rng = np.random.default_rng(1)
    truth, y = _drawn(rng, 2, 2, 40_000)
    overconfident = np.clip(truth * 1.6 - 0.3, 0, 1)
    reference, live = slice(0, 20_000), slice(20_000, None)
    calibration = fit_calibration(overconfident[reference], y[reference])
    realized = ((overconfident[live] >= 0.5) == y[live]).mean()
    assert estimate(overconfident[live], calibration, 0.5)["accuracy"] == pytest.approx(realized, abs=0.02)
    trusted_raw = np.mean(np.where(overconfident[live] >= 0.5, overconfident[live], 1 - overconfident[live]))
    assert abs(trusted_raw - realized) > 0.05  # what the estimate would say without calibrating


@pytest.fixture(scope="module")
def world(adult_spec: DatasetSpec):
    """A real fitted baseline, its own training set, and served rows drawn from later real Adult records."""
    reference = demo_training_set(adult_spec, 6000, seed=1)
    model = fit_logistic(adult_spec, reference)
    served = demo_training_set(adult_spec, 3000, seed=2)
    served = served[served["split"] == "train"].reset_index(drop=True)
    served[PROBABILITY] = model.predict_proba(served)
    return reference, model, served


def test_report_on_traffic_like_the_training_data(adult_spec: DatasetSpec, world) -> None:
    reference, model, served = world
    labeled = served.assign(**{LABEL: served[adult_spec.label_column].astype(float)})
    r = tag_report(adult_spec, "m:1", labeled, model, reference, previous=("m:0", model), min_group_size=50)
    assert max(r.input_psi.values()) < 0.1 and r.prediction_psi < 0.1
    assert r.realized["roc_auc"] == pytest.approx(r.reference["roc_auc"], abs=0.04)
    assert r.estimated["roc_auc"] == pytest.approx(r.realized["roc_auc"], abs=0.04)
    assert r.previous_realized == r.realized, "the same model shadow-scored on the same rows"
    names = {v.name: v.passed for v in verdicts(adult_spec, thresholds_for(adult_spec), r)}
    assert names == dict.fromkeys(names, True) | {"staleness": True}


def test_a_shifted_feature_drifts_and_a_biased_model_shows_its_gap(adult_spec: DatasetSpec, world) -> None:
    reference, model, served = world
    shifted = served.copy()
    shifted["age"] = shifted["age"] + 25
    shifted[PROBABILITY] = model.predict_proba(shifted)
    women = (shifted["sex"] == "Female").to_numpy()
    shifted.loc[women, PROBABILITY] = 0.01  # never positive for women
    shifted[LABEL] = shifted[adult_spec.label_column].astype(float)
    r = tag_report(adult_spec, "m:2", shifted, model, reference, min_group_size=50)
    assert r.input_psi["age"] > 1.0 and max(v for k, v in r.input_psi.items() if k != "age") < 0.1
    sex = next(g for g in r.fairness if g.attribute == "sex")
    yhat = (shifted[PROBABILITY] >= model.threshold).to_numpy()
    men_rate = yhat[~women].mean()
    assert sex.demographic_parity_difference == pytest.approx(men_rate, abs=1e-9)
    failed = {v.name for v in verdicts(adult_spec, thresholds_for(adult_spec), r) if v.passed is False}
    assert {"input_drift", "live_fairness"} <= failed


def test_prediction_log_reader_and_frame(tmp_path: Path, adult_spec: DatasetSpec, world) -> None:
    _, _, served = world
    day = "2026-03-01"
    folder = tmp_path / "log" / day
    folder.mkdir(parents=True)
    names = [c.name for c in adult_spec.feature_columns] + ["record_id", "sex", "race"]
    lines = []
    for i, row in served.head(5).iterrows():
        inputs = {
            n: (None if pd.isna(row[n]) else (row[n].item() if hasattr(row[n], "item") else row[n])) for n in names
        }
        lines.append(json.dumps({"request_id": f"r{i}", "time": "2026-03-01T10:00:00+00:00", "model_tag": "m:1",
                                 "inputs": inputs, "probability": 0.25, "label": 0}))  # fmt: skip
    lines.append(lines[0])  # a retried write of the same request
    (folder / "111.jsonl").write_text("\n".join(lines) + "\n" + "{not json}\n" + '{"request_id": "torn", "ti')
    table, read = PredictionLogFiles(root=str(tmp_path / "log")).read_day(day, log_inputs(adult_spec))
    assert (read.lines, read.bad_lines) == (6, 1) and read.partial_bytes > 0
    frame, duplicates = log_frame(adult_spec, table)
    assert duplicates == 1 and len(frame) == 5
    assert frame["age"].dtype == "Int64" and str(frame["sex"].dtype).startswith("string")
    assert frame["served_at"].iloc[0] == pd.Timestamp("2026-03-01 10:00:00")


def test_labels_join_on_record_id_then_request_id(adult_spec: DatasetSpec) -> None:
    landed = pd.DataFrame({"record_id": ["7", "8", "9", "9"], "income": [">50K", "<=50K", "bogus", ">50K"]})
    labels, problems = label_frame(adult_spec, landed, ["a.csv"])
    assert problems == {"unknown_label_values": 1, "missing_labels": 0}
    by_request = pd.DataFrame({"key": ["req-3"], "key_kind": ["request_id"], "label": [1]})
    served = pd.DataFrame({"record_id": [7, 8, 10, None], "request_id": ["a", "b", "c", "req-3"]})
    both = pd.concat([labels, by_request], ignore_index=True)
    joined = join_labels(adult_spec, served, both)
    assert joined.iloc[0] == 1.0 and joined.iloc[1] == 0.0 and np.isnan(joined.iloc[2]) and joined.iloc[3] == 1.0


def test_staleness_uses_the_spec_limits(adult_spec: DatasetSpec, world) -> None:
    reference, model, served = world
    r = tag_report(adult_spec, "m:3", served, model, reference, model_age_hours=1000.0, training_data_age_days=2.0)
    staleness = next(v for v in verdicts(adult_spec, thresholds_for(adult_spec), r) if v.name == "staleness")
    assert not staleness.passed and "1000 h old > 168 h" in staleness.description


def test_simulate_labels_lands_each_replay_once_after_its_lag(ml_home: Path, adult_spec: DatasetSpec, capsys) -> None:
    from ml_assets.cli import main
    from ml_assets.datasets.traffic import GROUND_TRUTH

    served = pd.Timestamp("2026-03-01")
    replay = ml_home / "traffic" / "1772323200000000"
    replay.mkdir(parents=True)
    truth = pd.DataFrame({"record_id": ["7", "8"], "income": [">50K", "<=50K"], "served_on": [served, served]})
    truth.to_parquet(replay / GROUND_TRUTH, index=False)

    assert main(["simulate", "--labels", "2"]) == 0
    [landed] = (ml_home / "labels" / "2026-03-03").glob("*.parquet")
    assert pd.read_parquet(landed).to_dict("list") == {"record_id": ["7", "8"], "income": [">50K", "<=50K"]}
    assert main(["simulate", "--labels", "2"]) == 0  # landed once: nothing new
    assert "no traffic replay without landed labels" in capsys.readouterr().out
    assert main(["simulate", "--labels", "1", "--next"]) == 2
    assert "--labels: lands labels only: leave out --next" in capsys.readouterr().err


def test_traffic_drift_ramps_over_the_days(adult_spec: DatasetSpec) -> None:
    """`ml-assets traffic --shift age=2 --drift-from D --drift-ramp-days 4`: each later day's rows drift further."""
    from datetime import date, timedelta

    from ml_assets.cli import build_parser
    from ml_assets.datasets.simulator import SimulationError
    from ml_assets.datasets.traffic import day_rows
    from ml_assets.datasets.traffic_cli import traffic_drift

    start = date(2026, 3, 2)
    ages = []
    for offset in range(-1, 4):
        day = start + timedelta(days=offset)
        args = build_parser().parse_args(["traffic", "--day", day.isoformat(), "--shift", "age=2",
                                          "--drift-from", start.isoformat(), "--drift-ramp-days", "4"])  # fmt: skip
        drift = traffic_drift(args)
        ages.append(day_rows(adult_spec, day, 2000, drift, seed=0, first_id=1)["age"].mean())
    assert ages == sorted(ages) and ages[-1] - ages[0] > 15, f"mean age by day: {ages}"
    with pytest.raises(SimulationError, match="need a drift"):
        traffic_drift(build_parser().parse_args(["traffic", "--day", "2026-03-02", "--drift-ramp-days", "4"]))


def test_a_few_hundred_served_rows_are_not_judged_for_drift(adult_spec: DatasetSpec, world) -> None:
    """PSI over ~200 rows of categories with dozens of levels is noise (the demo's smoke queries once read as three
    drifted features): below ``monitoring.min_served_rows`` drift and the estimate are not judged, and say so."""
    reference, model, served = world
    few = served.head(205)
    r = tag_report(adult_spec, "m:4", few, model, reference)
    judged = {v.name: v for v in verdicts(adult_spec, thresholds_for(adult_spec), r)}
    for name in ("input_drift", "prediction_drift", "estimated_performance"):
        assert judged[name].passed is None and "205 served rows < 1000" in judged[name].description
    assert judged["staleness"].judged, "the model's age needs no served rows"
    from ml_assets.monitoring.verdicts import failed_first

    ordered = failed_first(list(judged.values()))
    ranks = [{False: 0, True: 1, None: 2}[v.passed] for v in ordered]
    assert ranks == sorted(ranks), "failed first, then passed, then not judged"
