"""``rollback_champion`` as the launchpad offers it (an empty ``model_tag``) and ``ml-assets rollback``: the real job
of the real Definitions on an instance whose champions' history was written by stand-in promotions. It rolls back
to the previous champion or refuses in one line; it never promotes the latest candidate, blessed or not."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import bentoml.models  # noqa: F401  imported at collection, as the serving tests do: the import probes the C library once
import dagster as dg
import pytest

from ml_assets.dataset import DatasetSpec
from ml_assets.datasets.samples import demo_training_set
from ml_assets.definitions import build_definitions
from ml_assets.model.champion import ROLLBACK_JOB
from ml_assets.model.evaluation import Evaluation, score_model
from ml_assets.model.refs import stored_ref
from ml_assets.model.registry import champion_history, current_champion_tag
from resources.model_store import ModelLineage, ModelStore
from tests.conftest import IN_PROCESS
from tests.serving_support import fit_logistic
from tests.standins import materialize_stand_in

pytestmark = IN_PROCESS  # the asset graph in process (conftest.py)

NO_COMPUTE_LOGS = """\
telemetry:
  enabled: false
compute_logs:
  module: dagster._core.storage.noop_compute_log_manager
  class: NoOpComputeLogManager
"""
QUIET = {"loggers": {"console": {"config": {"log_level": "CRITICAL"}}}}


@pytest.fixture
def world(ml_home: Path, adult_spec: DatasetSpec):
    """Three stored models (two champions to be, and a candidate), a blessed-looking evaluation of the candidate in
    the IO manager's storage, and the candidate as the latest candidate_model."""
    window = demo_training_set(adult_spec, 600, window_end=date(2026, 1, 10))
    model = fit_logistic(adult_spec, window)
    store = ModelStore(home=str(ml_home / "bentoml"))
    a, b, candidate = (store.save(model, "adult-classifier", ModelLineage(code_version=str(i))) for i in range(3))
    test = window[window["split"] == "test"].reset_index(drop=True)
    scores = score_model(model, candidate, adult_spec, test, min_group_size=50, operational=False)
    defs = build_definitions(adult_spec, env="local")
    # the instance under ML_ASSETS_HOME, as `ml-assets rollback` opens it; without telemetry and without capturing
    # compute logs, which start processes (a `tail` per step; the fast tier starts none)
    (ml_home / "dagster" / "dagster.yaml").write_text(NO_COMPUTE_LOGS)
    instance = dg.DagsterInstance.get()

    @dg.asset(name="model_evaluation")
    def evaluation_stand_in() -> Evaluation:  # the candidate judged alone: what a blessing would promote
        return Evaluation(
            spec_name=adult_spec.name,
            primary_metric="roc_auc",
            test_rows=len(test),
            test_positives=int(test[adult_spec.label_column].sum()),
            window_end="2026-01-10",
            candidate=scores,
            baseline=scores,
            champion=None,
            candidate_ref=stored_ref(store, candidate),
            baseline_ref=stored_ref(store, candidate),
            champion_ref=None,
        )

    storage = dg.FilesystemIOManager(base_dir=str(ml_home / "storage"))
    assert dg.materialize([evaluation_stand_in], instance=instance, resources={"io_manager": storage}).success
    materialize_stand_in(defs, instance, "candidate_model", metadata={"model_tag": candidate})
    return defs, instance, (a, b, candidate)


def crown(defs: dg.Definitions, instance: dg.DagsterInstance, tag: str, previous: str) -> None:
    materialize_stand_in(
        defs,
        instance,
        "champion_model",
        metadata={"model_tag": tag, "previous_champion": previous, "action": "promote"},
    )


def rollback(defs: dg.Definitions, instance: dg.DagsterInstance) -> dg.ExecuteInProcessResult:
    """The job with its default config, as the launchpad pre-fills it."""
    job = defs.resolve_job_def(ROLLBACK_JOB)
    return job.execute_in_process(instance=instance, raise_on_error=False, run_config=QUIET)


def failure_text(result: dg.ExecuteInProcessResult) -> str:
    failure = next(e for e in result.all_events if e.is_step_failure)
    return str(failure.step_failure_data.error)


def test_rollback_with_the_default_config_refuses_then_rolls_back_never_the_candidate(world) -> None:
    defs, instance, (a, b, candidate) = world
    crown(defs, instance, a, "none")

    first = rollback(defs, instance)
    assert not first.success
    assert f"rollback refused: champion {a} has no previous champion to roll back to" in failure_text(first)
    assert current_champion_tag(instance) == a

    crown(defs, instance, b, a)
    second = rollback(defs, instance)
    assert second.success
    meta = second.asset_materializations_for_node("champion_model")[0].metadata
    assert meta["model_tag"].value == a and meta["action"].value == "rollback" and meta["previous_champion"].value == b
    assert current_champion_tag(instance) == a

    third = rollback(defs, instance)  # b was rolled back from: a has no previous champion to return to
    assert not third.success and "has no previous champion" in failure_text(third)
    assert candidate not in {t for t, _ in champion_history(instance)}, "a rollback never promotes the candidate"


def test_the_rollback_command_does_what_the_job_does(world, capsys) -> None:
    from ml_assets.cli import main

    capsys.readouterr()
    defs, instance, (a, b, candidate) = world
    assert main(["rollback"]) == 1
    assert (
        capsys.readouterr().err.strip()
        == "ml-assets rollback: rollback refused: there is no champion yet, so nothing to roll back"
    )
    crown(defs, instance, a, "none")
    crown(defs, instance, b, a)
    assert main(["rollback", candidate]) == 1
    assert f"rollback to {candidate} refused: it was never champion" in capsys.readouterr().err
    assert main(["rollback"]) == 0
    assert f"rollback requested from {b} to {a} (the previous champion)" in capsys.readouterr().out
    assert current_champion_tag(instance) == a
