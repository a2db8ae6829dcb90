"""The ML Test Score on a real instance: ``ml_test_score`` scores the real Definitions from the check results the
instance holds (stand-in runs write exactly the events real runs would), a failing check lowers the right test,
and the blocking ``readiness`` check refuses a promotion below ``readiness.min_score``, naming the tests; the
latter on real fitted models, the real model_evaluation, gates and champion_model (tests/test_gates_e2e.py's
pipeline)."""

from __future__ import annotations

import pytest
from dagster import (
    AssetCheckKey,
    AssetCheckSpec,
    AssetKey,
    AssetMaterialization,
    AssetOut,
    DagsterInstance,
    Definitions,
    MaterializeResult,
    materialize,
    multi_asset,
)

from ml_assets.dataset import DatasetSpec, GateThresholds, Readiness
from ml_assets.definitions import build_definitions
from ml_assets.model.gates import GATE_NAMES
from ml_assets.monitoring.ml_test_score import READINESS, build_readiness_check, compute_score
from ml_assets.readiness.evidence import GraphFacts, GraphFactsSource, Lineage, find_evidence, resolve_lineage
from ml_assets.readiness.feature_importance import build_feature_importance
from ml_assets.readiness.performance import build_performance_regression
from ml_assets.readiness.rubric import Evidence, EvidenceStatus, ItemStatus, Section, all_refs
from ml_assets.readiness.staleness import build_staleness_impact
from tests.conftest import IN_PROCESS, narrow, pinned, three_day_window
from tests.standins import materialize_stand_in
from tests.test_automation import DAYS as AUTOMATION_DAYS
from tests.test_automation import Graph
from tests.test_gates_e2e import (  # noqa: F401  (module fixtures: the real training set and fitted models)
    CI_GATES,
    Pipeline,
    check_metadata,
    failure_message,
    materialized,
    models,
    training_set,
    window_end,
)

pytestmark = IN_PROCESS  # the asset graph in process (conftest.py)

TAG = "adult-classifier:v1"


def checks(result) -> dict[str, bool]:
    """The blocking checks' verdicts: the gates and readiness (gap_to_reference, a warning, is left out)."""
    names = {*GATE_NAMES, READINESS}
    return {e.check_name: e.passed for e in result.get_asset_check_evaluations() if e.check_name in names}


DAY = "2026-01-20"


def materialize_score(defs, instance: DagsterInstance) -> dict:
    result = defs.resolve_implicit_global_asset_job_def().execute_in_process(
        instance=instance, asset_selection=[AssetKey("ml_test_score")]
    )
    assert result.success
    return {k: v.value for k, v in result.asset_materializations_for_node("ml_test_score")[0].metadata.items()}


def test_the_score_is_computed_from_the_instances_check_results(ml_home, adult_spec: DatasetSpec) -> None:
    defs = build_definitions(adult_spec, env="local")
    instance = DagsterInstance.ephemeral()
    for asset, partition in (("raw_data", DAY), ("features", DAY), ("training_set", DAY)):
        materialize_stand_in(defs, instance, asset, partition)
    materialize_stand_in(
        defs,
        instance,
        "candidate_model",
        metadata={"model_tag": TAG, "search": "3 trials", "training_set_partition": DAY},
    )
    materialize_stand_in(defs, instance, "model_evaluation", metadata={"candidate_tag": TAG})
    materialize_stand_in(defs, instance, "champion_model", metadata={"model_tag": TAG})

    meta = materialize_score(defs, instance)
    sections = {s: meta[f"{s.value}_score"] for s in Section}
    assert meta["final_score"] == min(sections.values())
    assert meta["champion_tag"] == TAG
    assert meta["tests"].count("\n") == 28 + 1  # header, rule, 28 rows
    facts = GraphFacts.of(defs.get_repository_def())
    result = compute_score(instance, facts, resolve_lineage(instance, TAG, adult_spec.training.window_days))
    status = {t.test.id: t.status for t in result.tests}
    assert status["data-1"] is ItemStatus.AUTOMATED  # raw_data's schema checks passed
    assert status["model-3"] is ItemStatus.AUTOMATED  # the candidate recorded its search
    assert status["model-7"] is ItemStatus.AUTOMATED  # the fairness gate passed
    assert status["infrastructure-7"] is ItemStatus.AUTOMATED  # rollback job defined, retrain sensor running
    assert status["infrastructure-6"] is ItemStatus.NOT_RUN  # deployment's canary check never ran
    assert status["monitoring-1"] is ItemStatus.NOT_RUN  # dependency_versions is defined, not yet recorded
    assert status["data-6"] is ItemStatus.MANUAL  # attested in ml_assets/readiness/attestations.yaml
    assert "deployment.health (not run" in meta["missing_points"]

    # a later evaluation of the same model fails its fairness gate: model-7 loses its point, nothing else moves
    materialize_stand_in(defs, instance, "model_evaluation", failed=("fairness",), metadata={"candidate_tag": TAG})
    again = materialize_score(defs, instance)
    assert again["model_score"] == meta["model_score"] - 1
    assert {s: again[f"{s.value}_score"] for s in Section if s is not Section.MODEL} == {
        s: v for s, v in sections.items() if s is not Section.MODEL
    }
    assert "model_evaluation.fairness (failed" in again["missing_points"]

    # evidence is the champion's lineage's: another candidate's failing evaluation, and a raw_data day outside the
    # champion's training window failing its schema checks, move nothing
    other = "adult-classifier:v2"
    materialize_stand_in(
        defs, instance, "model_evaluation", failed=("slice_quality",), metadata={"candidate_tag": other}
    )
    materialize_stand_in(defs, instance, "raw_data", "2026-01-25", failed=("unexpected_columns",))
    assert materialize_score(defs, instance)["final_score"] == again["final_score"]
    lineage = resolve_lineage(instance, TAG, adult_spec.training.window_days)
    assert DAY in lineage.partitions and "2026-01-25" not in lineage.partitions and len(lineage.runs) == 4
    assert status_of(instance, facts, lineage)["model-6"] is ItemStatus.AUTOMATED
    assert status_of(instance, facts, resolve_lineage(instance, other, 10))["model-6"] is ItemStatus.FAILING
    # a day of the champion's own window failing counts
    materialize_stand_in(defs, instance, "raw_data", DAY, failed=("unexpected_columns",))
    assert status_of(instance, facts, lineage)["data-1"] is ItemStatus.FAILING


def materialize_without_check_results(instance: DagsterInstance, asset: str, metadata: dict) -> dict[str, str]:
    """``asset`` materialized as a subsettable multi-asset that plans its checks and emits no result for them (as
    performance_regression does with nothing to compare): the checks' execution status afterwards."""
    names = ["no_regression"]

    @multi_asset(
        name=asset,
        outs={asset: AssetOut()},
        check_specs=[AssetCheckSpec(n, asset=asset) for n in names],
        can_subset=True,
    )
    def stand_in():
        yield MaterializeResult(asset_key=asset, metadata=metadata)

    assert materialize([stand_in], instance=instance).success
    return {
        n: instance.event_log_storage.get_asset_check_execution_history(AssetCheckKey(AssetKey(asset), n), limit=1)[
            0
        ].status.value
        for n in names
    }


def status_of(instance: DagsterInstance, facts: GraphFacts, lineage: Lineage) -> dict[str, ItemStatus]:
    return {t.test.id: t.status for t in compute_score(instance, facts, lineage).tests}


def test_a_skipped_check_execution_counts_not_run_and_hides_older_results(adult_spec: DatasetSpec) -> None:
    """A check that was planned in a run and produced no result (Dagster shows it skipped) is not a pass, even when
    an older run of the same model passed it."""
    defs = build_definitions(adult_spec, env="local")
    instance = DagsterInstance.ephemeral()
    materialize_stand_in(defs, instance, "champion_model", metadata={"model_tag": TAG})
    facts = GraphFacts.of(defs.get_repository_def())
    [ref] = [r for r in all_refs() if r.name == "performance_regression.no_regression"]
    lineage = resolve_lineage(instance, TAG, adult_spec.training.window_days)

    def judged() -> Evidence:
        return find_evidence(instance, facts, [ref], lineage)[ref]

    materialize_stand_in(defs, instance, "performance_regression", metadata={"candidate_tag": TAG})
    assert judged().status is EvidenceStatus.PASSED
    why = "no other champion to compare with (first promotion): nothing to judge"
    skipped = materialize_without_check_results(
        instance, "performance_regression", {"candidate_tag": TAG, "not_judged": why}
    )
    assert skipped == {"no_regression": "PLANNED"}, "stored as planned; the UI shows it skipped (its run ended)"
    found = judged()
    assert found.status is EvidenceStatus.NOT_RUN and found.detail.startswith(f"skipped: {why} (run ")


class GatedPipeline(Pipeline):
    """test_gates_e2e's pipeline with the readiness gate in the run, at ``min_score``."""

    def __init__(self, *args, min_score: float) -> None:
        super().__init__(*args)
        graph = GraphFactsSource()
        strict = self.spec.model_copy(update={"readiness": Readiness(min_score=min_score)})
        self.readiness = build_readiness_check(strict, graph)
        graph.bind(Definitions(assets=self.assets(), asset_checks=[self.readiness], resources=self.resources))

    def assets(self) -> list:
        return [*self.training_set, self.approved, *self.upstream, self.evaluation, self.gates, self.champion]

    def materialize(self, selection: list[str], run_config: dict | None = None):
        return materialize(
            [*self.assets(), self.readiness],
            selection=selection,
            resources=self.resources,
            instance=self.instance,
            run_config=run_config,
            raise_on_error=False,
        )  # fmt: skip


@pytest.fixture(scope="module")
def spec(adult_spec: DatasetSpec) -> DatasetSpec:
    return pinned(adult_spec, gates=GateThresholds(**CI_GATES))


def test_a_candidate_is_promoted_when_ready_and_refused_below_min_score(tmp_path, monkeypatch, spec, request) -> None:
    real = [request.getfixturevalue(name) for name in ("training_set", "window_end", "models")]
    for home in ("a", "b"):
        (tmp_path / home).mkdir()
    ready = GatedPipeline(tmp_path / "a", monkeypatch, spec, *real, min_score=1.0)
    promoted = ready.run(ready.save("good"))
    assert promoted.success, checks(promoted)
    assert checks(promoted) == dict.fromkeys((*GATE_NAMES, READINESS), True)
    assert "champion_model" in materialized(promoted)
    assert check_metadata(promoted, READINESS)["final_score"] >= 1.0
    # the champion's feature importance on the window's validation rows, with the same real model and store
    importance = materialize(
        [*ready.assets(), build_feature_importance(spec)],
        selection=["feature_importance"],
        resources=ready.resources,
        instance=ready.instance,
    )
    meta = importance.asset_materializations_for_node("feature_importance")[0].metadata
    assert meta["model_tag"].value == ready.champions()[0] and meta["validation_rows"].value > 100
    assert meta["importance_relationship"].value > 0.0  # the strongest single feature of Adult matters
    [verdict] = importance.get_asset_check_evaluations()
    assert verdict.check_name == "no_useless_features"
    # a second candidate, evaluated against that champion, is timed against it in one run
    first = ready.champions()[0]
    assert ready.run(ready.save("good_v2")).success
    timed = materialize(
        [*ready.assets(), build_performance_regression(spec)],
        selection=["performance_regression"],
        resources=ready.resources,
        instance=ready.instance,
    )
    meta = timed.asset_materializations_for_node("performance_regression")[0].metadata
    assert meta["champion_tag"].value == first and meta["candidate_p99_ms"].value > 0
    assert meta["champion_rows_per_s"].value > 0
    [verdict] = timed.get_asset_check_evaluations()
    assert verdict.check_name == "no_regression"  # two logistic models: passes unless the machine is very noisy
    # two champions, but their candidate runs here record no training window: no curve, and it says so
    curve = materialize(
        [*ready.assets(), build_staleness_impact(spec)],
        selection=["staleness_impact"],
        resources=ready.resources,
        instance=ready.instance,
    )
    [verdict] = curve.get_asset_check_evaluations()
    assert verdict.metadata["judged"].value is False and "no curve yet" in verdict.description

    strict = GatedPipeline(tmp_path / "b", monkeypatch, spec, *real, min_score=2.0)
    refused = strict.run(strict.save("good"))
    verdicts = checks(refused)
    assert verdicts[READINESS] is False and all(verdicts[g] for g in GATE_NAMES), "only readiness fails"
    assert "champion_model" not in materialized(refused) and strict.champions() == []
    ev = next(e for e in refused.get_asset_check_evaluations() if e.check_name == READINESS)
    assert ev.description.startswith("The ML Test Score 1.0 is below readiness.min_score 2.0")
    assert "monitoring-1 (Dependency changes result in notification): missing" in ev.description
    assert "infrastructure-6" in ev.description and "model-5" not in ev.description
    # the gate holds across runs: champion_model launched on its own afterwards refuses too
    alone = strict.materialize(["champion_model"])
    assert not alone.success and strict.champions() == []
    assert "readiness failed for the latest model_evaluation" in failure_message(alone)


def test_automation_refreshes_the_score_when_the_champion_or_its_checks_change(adult_spec: DatasetSpec) -> None:
    graph = Graph(narrow(three_day_window(adult_spec, AUTOMATION_DAYS[0])))
    graph.tick()
    graph.materialize("model_evaluation", failed=("fairness",))
    assert "ml_test_score" not in graph.tick(), "no champion (none promoted): nothing to score"
    graph.materialize("model_evaluation")
    assert {"champion_model", "ml_test_score"} <= set(graph.tick()), "scored in the promotion's own run"
    for asset in ("champion_model", "ml_test_score"):
        graph.materialize(asset)
    assert "ml_test_score" not in graph.tick(), "once per change"
    graph.materialize("deployment", failed=("health",))  # the champion's canary check has a new result
    assert "ml_test_score" in graph.tick()


def test_the_training_set_counts_as_the_very_materialization_the_candidate_read(adult_spec: DatasetSpec) -> None:
    """A training window re-cut after the candidate trained (new rows, new checks) is not the champion's data: its
    checks count only for the materialization the candidate read (Dagster's input event pointer)."""
    defs = build_definitions(adult_spec, env="local")
    instance = DagsterInstance.ephemeral()
    facts = GraphFacts.of(defs.get_repository_def())
    materialize_stand_in(defs, instance, "training_set", DAY)
    read = instance.fetch_materializations(AssetKey("training_set"), limit=1).records[0].storage_id
    materialize_stand_in(defs, instance, "training_set", DAY, failed=("single_feature_leakage",))  # a later re-cut
    for tag, pointer in ((TAG, read), ("adult-classifier:v2", read + 10_000)):
        instance.report_runless_asset_event(
            AssetMaterialization(
                "candidate_model",
                metadata={"model_tag": tag, "training_set_partition": DAY},
                tags={"dagster/input_event_pointer/training_set": str(pointer)},
            )
        )
    lineage = resolve_lineage(instance, TAG, adult_spec.training.window_days)
    assert lineage.inputs["training_set"] == read
    assert status_of(instance, facts, lineage)["data-4"] is ItemStatus.AUTOMATED
    newest = instance.fetch_materializations(AssetKey("training_set"), limit=1).records[0].storage_id
    instance.report_runless_asset_event(
        AssetMaterialization(
            "candidate_model",
            metadata={"model_tag": "adult-classifier:v3", "training_set_partition": DAY},
            tags={"dagster/input_event_pointer/training_set": str(newest)},
        )
    )
    later = resolve_lineage(instance, "adult-classifier:v3", adult_spec.training.window_days)
    assert status_of(instance, facts, later)["data-4"] is ItemStatus.FAILING
