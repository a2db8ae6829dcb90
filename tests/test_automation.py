"""Declarative automation of the real graph, evaluated tick by tick with Dagster's own evaluator.

The Definitions are the real ones (spec with a three-day training window). What happens between ticks is written to
a real ephemeral instance by real runs of stand-ins: an asset of the same key and partitioning whose checks carry
the real check names and pass or fail as the test says, so every event (planned and evaluated checks included) is
what a run of the real asset writes, without the cost of running it. Landings are observations, as the sensor
reports them.
"""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from dagster import DagsterInstance, Definitions, RunRequest, evaluate_automation_conditions
from dagster._core.definitions.automation_tick_evaluation_context import build_run_requests
from dagster._core.definitions.partitions.context import partition_loading_context

from ml_assets.data.landing import LANDING_FILES
from ml_assets.dataset import DatasetSpec, Retraining
from ml_assets.definitions import build_definitions
from ml_assets.event_log import DATA_VERSION_TAG
from sensors.automation import build_automation_sensor
from tests.conftest import IN_PROCESS, narrow, three_day_window
from tests.standins import materialize_stand_in

pytestmark = IN_PROCESS  # the asset graph in process (conftest.py)

DAYS = [date(2026, 3, 1) + timedelta(days=i) for i in range(3)]
MODEL_CHAIN = {"baseline_model", "candidate_model", "model_evaluation", "champion_model", "bento", "deployment"}
MODEL_CHAIN |= {"performance_regression"}  # the candidate timed against the champion in the promotion's run
MODEL_CHAIN |= {"embedded_model"}  # the champion's ONNX export, beside its Bento


@pytest.fixture
def spec(adult_spec: DatasetSpec) -> DatasetSpec:
    return narrow(three_day_window(adult_spec, DAYS[0]))


_DEFINITIONS: dict[str, Definitions] = {}


def definitions(spec: DatasetSpec) -> Definitions:
    """The local Definitions of ``spec``, built once per spec in this module: the tests here evaluate conditions
    and write stand-in runs, neither of which touches a resource, so one build serves every test of a spec."""
    key = spec.model_dump_json()
    if key not in _DEFINITIONS:
        _DEFINITIONS[key] = build_definitions(spec, env="local")
    return _DEFINITIONS[key]


class Graph:
    """The real Definitions, an ephemeral instance and the evaluator's cursor between ticks."""

    def __init__(self, spec: DatasetSpec) -> None:
        self.defs = definitions(spec)
        self.instance = DagsterInstance.ephemeral()
        self.cursor = None

    def tick(self) -> dict[str, set[str | None]]:
        result = evaluate_automation_conditions(defs=self.defs, instance=self.instance, cursor=self.cursor)
        self.cursor = result.cursor
        keys = self.defs.get_repository_def().asset_graph.get_all_asset_keys()
        return {k.to_user_string(): set(p) for k in keys if (p := result.get_requested_partitions(k))}

    def tick_runs(self) -> list[RunRequest]:
        """The runs the daemon launches for one tick: the requests grouped into runs (and backfills) by Dagster's
        own ``build_run_requests``, with the automation sensor's settings. (The public evaluator returns only
        the requested partitions, and always as if backfills were off: private names, in this test only.)"""
        result = evaluate_automation_conditions(defs=self.defs, instance=self.instance, cursor=self.cursor)
        self.cursor = result.cursor
        sensor = build_automation_sensor()
        with partition_loading_context(new_ctx=result._partition_loading_context):
            return list(
                build_run_requests(
                    result._requested_subsets,
                    self.defs.resolve_asset_graph(),
                    sensor.run_tags,
                    emit_backfills=sensor.emit_backfills,
                )
            )

    def land(self, day: date, fingerprint: str) -> None:
        from dagster import AssetObservation

        self.instance.report_runless_asset_event(
            AssetObservation(LANDING_FILES, partition=day.isoformat(), tags={DATA_VERSION_TAG: fingerprint})
        )

    def materialize(self, asset: str, day: date | None = None, failed: tuple[str, ...] = ()) -> None:
        """A stand-in run of ``asset``: materialized, its checks passing except ``failed``."""
        materialize_stand_in(self.defs, self.instance, asset, day.isoformat() if day else None, failed)


def test_a_landed_day_is_ingested_and_featurized_in_one_tick(spec: DatasetSpec) -> None:
    graph = Graph(spec)
    assert graph.tick() == {}
    graph.land(DAYS[0], "v1")
    requested = graph.tick()
    assert requested == {"raw_data": {"2026-03-01"}, "features": {"2026-03-01"}}
    assert graph.tick() == {}, "a day is requested once per landing"
    graph.land(DAYS[0], "v1")
    assert graph.tick() == {}, "an observation with the same files is not a change"
    graph.land(DAYS[0], "v2")
    assert graph.tick() == {"raw_data": {"2026-03-01"}, "features": {"2026-03-01"}}


def test_days_landed_together_run_each_with_its_checks(spec: DatasetSpec) -> None:
    """Two days landed between ticks: one run per day, holding the asset and its checks. (With Dagster's default
    backfills the assets became one backfill and each multi-asset check a check-only run launched beside it, ahead
    of the asset: it failed and raised a false alert.)"""
    graph = Graph(spec)
    graph.tick()
    graph.land(DAYS[0], "v1")
    graph.land(DAYS[1], "v1")
    runs = graph.tick_runs()
    assert [r.partition_key for r in runs] == ["2026-03-01", "2026-03-02"]
    for run in runs:
        assets = {k.to_user_string() for k in run.asset_selection or ()}
        assert assets == {"raw_data", "features"}, f"every run materializes the assets it checks: {run}"
        checked = {k.asset_key.to_user_string() for k in run.asset_check_keys or ()}
        assert checked == assets, "each asset's checks ride in its own run"


def test_the_window_is_cut_once_every_day_passed_and_not_after_a_failed_day(spec: DatasetSpec) -> None:
    graph = Graph(spec)
    for day in DAYS[:2]:
        graph.materialize("raw_data", day)
        graph.materialize("features", day)
    assert graph.tick() == {}, "two of three days: no window yet"
    graph.materialize("raw_data", DAYS[2])
    graph.materialize("features", DAYS[2], failed=("label_not_null",))
    assert "training_set" not in graph.tick(), "a day of the window failed its blocking checks"
    graph.materialize("features", DAYS[2])
    assert graph.tick() == {"training_set": {"2026-03-03"}}


def test_a_blocking_raw_data_failure_stops_features_across_runs(spec: DatasetSpec) -> None:
    graph = Graph(spec)
    graph.tick()
    graph.materialize("raw_data", DAYS[0], failed=("age_in_range",))
    assert "features" not in graph.tick()


def test_a_new_window_is_approved_trained_gated_and_deployed_in_one_run(spec: DatasetSpec) -> None:
    graph = Graph(spec)
    graph.tick()
    graph.materialize("training_set", DAYS[2])
    assert graph.tick() == {n: {None} for n in {"approved_training_set", *MODEL_CHAIN}}, "one tick: one run"
    for asset in ("approved_training_set", "baseline_model", "candidate_model"):
        graph.materialize(asset)
    graph.materialize("model_evaluation", failed=("fairness",))
    assert graph.tick() == {}, "a failed gate: champion_model is not requested in a later run either"
    graph.materialize("model_evaluation")
    requested = {"champion_model": {None}, "bento": {None}, "deployment": {None}, "performance_regression": {None}}
    requested |= {"embedded_model": {None}}
    assert graph.tick() == requested | {"ml_test_score": {None}}, "the score follows the new evaluation's checks"


def test_a_window_that_failed_its_checks_is_refused_in_the_run_that_approves(spec: DatasetSpec) -> None:
    """Automation still requests the approval (it cannot tell the newest window from the others); the approval
    itself refuses (test_gates_across_runs) and everything after it is skipped in that run."""
    graph = Graph(spec)
    graph.tick()
    graph.materialize("training_set", DAYS[2], failed=("class_balance",))
    assert "approved_training_set" in graph.tick()


def test_retraining_only_on_request(spec: DatasetSpec) -> None:
    graph = Graph(spec.model_copy(update={"retraining": Retraining(trigger="on_request")}))
    graph.tick()
    graph.materialize("training_set", DAYS[2])
    assert graph.tick() == {"approved_training_set": {None}}, "models wait for the retrain sensor or a person"
    for asset in ("approved_training_set", "baseline_model"):
        graph.materialize(asset)
    assert graph.tick() == {}
    graph.materialize("candidate_model")  # the retrain sensor's run
    assert graph.tick() == {n: {None} for n in MODEL_CHAIN - {"baseline_model", "candidate_model"}}


def test_retraining_on_a_cron_waits_for_its_tick(spec: DatasetSpec) -> None:
    cron = Retraining(trigger="cron", cron="0 3 * * *")
    graph = Graph(spec.model_copy(update={"retraining": cron}))
    graph.tick()
    graph.materialize("training_set", DAYS[2])
    assert graph.tick() == {"approved_training_set": {None}}, "no cron tick has passed since the new training set"
