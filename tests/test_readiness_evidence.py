"""The ML Test Score's new evidence on constructed cases where each must fire: a useless random feature is
flagged by permutation importance; a changed dependency fails its check and alerts; a slower or hungrier candidate fails the
performance comparison with the champion; a champion realizing far below its offline figure fails agreement."""

from __future__ import annotations

import time
from datetime import date

import numpy as np
import pandas as pd
from dagster import (
    AssetCheckEvaluation,
    AssetCheckSeverity,
    AssetMaterialization,
    DagsterInstance,
    MetadataValue,
    materialize,
)
from sklearn.linear_model import LogisticRegression

from ml_assets.readiness.dependencies import ASSET, build_dependency_versions, resolved_versions, version_changes
from ml_assets.readiness.evidence import not_judged
from ml_assets.readiness.feature_importance import permutation_importance
from ml_assets.readiness.offline_online import ServedDay, agreement, build_offline_online_agreement, rank_correlation
from ml_assets.readiness.performance import Footprint, measure_pair, regressions
from ml_assets.readiness.staleness import AgedScore, staleness_curve
from resources.alerts import Alerts
from tests.conftest import in_process


def test_permutation_importance_flags_a_random_feature_and_keeps_the_informative_ones() -> None:
    rng = np.random.default_rng(0)
    n = 4000
    frame = pd.DataFrame({"signal": rng.normal(size=n), "weak": rng.normal(size=n), "random": rng.normal(size=n)})
    logit = 2.0 * frame["signal"] + 0.5 * frame["weak"]
    y = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(int).to_numpy()
    train, valid = slice(0, n // 2), slice(n // 2, n)
    model = LogisticRegression().fit(frame.iloc[train], y[train])  # the random column gets a small weight

    def predict(f: pd.DataFrame) -> np.ndarray:
        return model.predict_proba(f)[:, 1]

    base, found = permutation_importance(predict, frame.iloc[valid].reset_index(drop=True), y[valid], list(frame))
    by_name = {f.feature: f for f in found}
    assert base > 0.75
    assert [f.feature for f in found] == ["signal", "weak", "random"], "sorted by importance"
    assert by_name["random"].useless and not by_name["signal"].useless and not by_name["weak"].useless
    assert by_name["signal"].importance > 5 * by_name["signal"].noise


@in_process
def test_a_dependency_change_fails_the_check_and_raises_an_alert(tmp_path, adult_spec) -> None:
    instance = DagsterInstance.ephemeral()
    alerts = Alerts(log_path=str(tmp_path / "alerts.jsonl"))
    recorder = build_dependency_versions(adult_spec)

    def record() -> AssetCheckEvaluation:
        result = materialize([recorder], instance=instance, resources={"alerts": alerts})
        assert result.success
        return result.get_asset_check_evaluations()[0]

    first, second = record(), record()
    assert first.passed and first.description == "first record of the environment"
    assert second.passed and second.description == "no dependency changed since the last record"
    assert alerts.read() == []

    # the environment recorded before had another torch and a package that is gone now
    current = resolved_versions()
    older = {**current, "torch": "0.0.1", "left-pad": "1.0"}
    instance.report_runless_asset_event(AssetMaterialization(ASSET, metadata={"versions": MetadataValue.json(older)}))
    changed = record()
    assert not changed.passed and changed.severity is AssetCheckSeverity.WARN
    assert f"torch 0.0.1 -> {current['torch']}" in changed.description
    assert "removed left-pad 1.0" in changed.description
    [alert] = alerts.read()
    assert alert["kind"] == "dependency_change" and f"torch 0.0.1 -> {current['torch']}" in alert["changes"]
    assert version_changes(current, current) == []


class Scorer:
    """A real (if tiny) probability model: a logistic function of one column, optionally slowed per call."""

    threshold, kind = 0.5, "test"

    def __init__(self, delay_s: float = 0.0, copies: int = 1) -> None:
        self.delay_s, self.copies = delay_s, copies

    def predict_proba(self, frame: pd.DataFrame) -> np.ndarray:
        if self.delay_s:
            time.sleep(self.delay_s)
        x = np.tile(frame["x"].to_numpy(dtype=np.float64), (self.copies, 1))  # copies: working memory per row
        return (1 / (1 + np.exp(-x))).mean(axis=0)


def test_a_slower_candidate_fails_the_performance_comparison_and_an_equal_one_passes() -> None:
    frame = pd.DataFrame({"x": np.random.default_rng(0).normal(size=2000)})
    champion = Scorer()
    slower, champ = measure_pair(Scorer(delay_s=0.003), champion, frame, rounds=1)
    found = regressions(slower, champ)
    assert any(f.startswith("p99 ") for f in found) and any(f.startswith("throughput ") for f in found)
    hungrier, champ = measure_pair(Scorer(copies=20), champion, frame, rounds=1)
    assert any(f.startswith("predict peak ") for f in regressions(hungrier, champ))
    twin = Footprint(p99_ms=1.0, rows_per_s=1e5, model_bytes=1000, predict_peak_bytes=10_000)
    assert regressions(twin, twin) == []
    bigger = Footprint(p99_ms=1.0, rows_per_s=1e5, model_bytes=2000, predict_peak_bytes=10_000)
    assert regressions(bigger, twin) == ["model 2,000 B > champion 1,000 B x 1.5"]


def monitored_day(
    instance: DagsterInstance, day: str, tag: str, offline: float, realized: float | None, labeled: int = 500
) -> None:
    """What a model_monitoring materialization of ``day`` records about the model that served it."""
    meta = {"main_model_tag": tag, "evaluation_roc_auc": offline, "labeled_rows": labeled}
    if realized is not None:
        meta["realized_roc_auc"] = realized
    instance.report_runless_asset_event(AssetMaterialization("model_monitoring", partition=day, metadata=meta))


@in_process
def test_offline_and_online_figures_that_diverge_fail_the_agreement_check(adult_spec) -> None:
    instance = DagsterInstance.ephemeral()
    tag = "adult-classifier:v1"
    instance.report_runless_asset_event(AssetMaterialization("champion_model", metadata={"model_tag": tag}))
    judge = build_offline_online_agreement(adult_spec)  # tolerance: monitoring.performance_drop (0.05)

    def verdict() -> AssetCheckEvaluation:
        result = materialize([judge], instance=instance)
        assert result.success
        return result.get_asset_check_evaluations()[0]

    monitored_day(instance, "2026-03-01", tag, offline=0.90, realized=None)  # labels have not landed yet
    waiting = verdict()
    assert not waiting.passed and waiting.metadata["judged"].value is False
    assert not_judged(waiting), "the score counts it as not run, not as failed"

    monitored_day(instance, "2026-03-02", tag, offline=0.90, realized=0.60, labeled=50)
    few = verdict()  # 50 labeled rows < monitoring.min_labeled_rows (200): no verdict on them, and it says why
    assert not few.passed and not_judged(few) and "50 labeled rows" in few.description
    assert few.description.startswith("not judged: ") and "min_labeled_rows 200" in few.description

    monitored_day(instance, "2026-03-02", tag, offline=0.90, realized=0.89)
    monitored_day(instance, "2026-03-03", tag, offline=0.90, realized=0.87)
    agreeing = verdict()
    assert agreeing.passed and "gap -0.0200 within 0.05" in agreeing.description

    monitored_day(instance, "2026-03-04", tag, offline=0.90, realized=0.70)
    monitored_day(instance, "2026-03-05", tag, offline=0.90, realized=0.72)
    diverging = verdict()
    assert not diverging.passed and "beyond 0.05" in diverging.description
    assert not not_judged(diverging)


def test_offline_online_rank_correlation_across_champions() -> None:
    days = [ServedDay(f"2026-03-0{i}", f"m:{i}", offline=0.8 + i / 100, realized=0.7 + i / 100, labeled_rows=100)
            for i in range(1, 5)]  # fmt: skip
    assert rank_correlation(days) == 1.0
    assert rank_correlation(days[:2]) is None
    found = agreement(days, "m:2", tolerance=0.05)
    assert found is not None and round(found.gap, 6) == -0.1 and not found.agree


def test_a_staleness_curve_steeper_than_the_age_policy_allows_fires() -> None:
    def aged(age: float, auc: float) -> AgedScore:
        return AgedScore(f"m:{age}", date(2026, 3, 1), age, auc)

    assert staleness_curve([aged(0, 0.90)]) is None, "one age: no curve"
    decaying = staleness_curve([aged(0, 0.90), aged(3, 0.87), aged(6, 0.84)])
    assert decaying is not None and round(decaying.slope_per_day, 6) == -0.01
    assert round(decaying.days_to_lose(0.05), 6) == 5.0  # under the default 168 h (7 days): retrain sooner
    flat = staleness_curve([aged(0, 0.90), aged(6, 0.90)])
    assert flat is not None and flat.days_to_lose(0.05) is None
