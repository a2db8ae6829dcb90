"""Gates that hold whoever launches: a blocking check that failed in one run stops its consumers in later runs.

Real landing files from the simulator, the real Definitions and their jobs (the ones the UI launches) on a real
instance; the data checks really run and really fail. A separate run of ``model_job`` after a failed training_set
check refuses at ``approved_training_set``, naming the window and the check, and the champion keeps its tag; a
separate run of ``features`` after a failed raw_data check refuses the same way. No training process starts.
"""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path

import pytest
from dagster import AssetKey, DagsterInstance, materialize

from ml_assets.data.assets import build_data_assets
from ml_assets.dataset import DatasetSpec
from ml_assets.datasets.simulator import Corruption, DriftConfig, simulate
from ml_assets.definitions import INGEST_JOB, MODEL_JOB, TRAINING_SET_JOB, build_definitions
from ml_assets.environments import local_resources
from ml_assets.model.registry import current_champion_tag
from tests.conftest import GREAT_EXPECTATIONS, IN_PROCESS, narrow, three_day_window
from tests.standins import materialize_stand_in

pytestmark = [*IN_PROCESS, GREAT_EXPECTATIONS]  # in process; validates with Great Expectations (conftest.py)

DAYS = [date(2026, 3, 1) + timedelta(days=i) for i in range(3)]


@pytest.fixture
def spec(adult_spec: DatasetSpec) -> DatasetSpec:
    return narrow(three_day_window(adult_spec, DAYS[0]))


def step_failure(result, step: str) -> str:
    for event in result.all_events:
        if event.is_step_failure and event.step_key == step:
            return event.step_failure_data.error.message  # type: ignore[union-attr]
    raise AssertionError(
        f"step {step} did not fail; failures: {[e.step_key for e in result.all_events if e.is_step_failure]}"
    )


def materialized(result) -> set[str]:
    return {
        e.event_specific_data.materialization.asset_key.to_user_string()
        for e in result.get_asset_materialization_events()
    }  # type: ignore[union-attr]


def test_model_job_after_a_failed_training_set_check_refuses_and_the_champion_stays(
    ml_home: Path, spec: DatasetSpec
) -> None:
    # the newest day (the test split) lands with 90% positives: class_balance fails, a blocking ERROR check
    simulate(
        spec, ml_home / "landing", DAYS[0], DAYS[-1], rows_per_day=400, drift=DriftConfig(DAYS[-1], label_shift=0.9)
    )
    defs = build_definitions(spec, env="local")
    instance = DagsterInstance.ephemeral()
    for day in DAYS:
        assert (
            defs.resolve_job_def(INGEST_JOB)
            .execute_in_process(partition_key=day.isoformat(), instance=instance)
            .success
        )
    cut = defs.resolve_job_def(TRAINING_SET_JOB).execute_in_process(
        partition_key=DAYS[-1].isoformat(), instance=instance, raise_on_error=False
    )
    assert "training_set" in materialized(cut)
    failed = {e.check_name for e in cut.get_asset_check_evaluations() if not e.passed}
    assert "class_balance" in failed

    champion = "adult-classifier:serving"  # promoted earlier (its champion_model materialization is the record)
    materialize_stand_in(defs, instance, "champion_model", metadata={"model_tag": champion})

    later = defs.resolve_job_def(MODEL_JOB).execute_in_process(instance=instance, raise_on_error=False)
    assert not later.success
    message = step_failure(later, "approved_training_set")
    assert "training_set[2026-03-03]" in message and "class_balance" in message
    assert materialized(later) == set(), "nothing trained, evaluated or promoted on rejected data"
    assert current_champion_tag(instance) == champion


def test_features_in_a_later_run_refuses_a_day_whose_raw_checks_failed(ml_home: Path, spec: DatasetSpec) -> None:
    day = DAYS[0]
    simulate(
        spec, ml_home / "landing", day, day, rows_per_day=300, corruptions=[Corruption("out_of_range", day, "age")]
    )
    instance = DagsterInstance.ephemeral()
    data = build_data_assets(spec)
    resources = local_resources(spec)
    first = materialize(
        [data.raw_data, data.features], partition_key=day.isoformat(), instance=instance, resources=resources,
        raise_on_error=False,
    )  # fmt: skip
    assert materialized(first) == {"raw_data"}, "in its own run the blocking check skips features"
    later = materialize(
        [data.raw_data, data.features],
        selection=[AssetKey("features")],
        partition_key=day.isoformat(),
        instance=instance,
        resources=resources,
        raise_on_error=False,
    )
    message = step_failure(later, "features")
    assert "raw_data[2026-03-01]" in message and "age_in_range" in message
    assert materialized(later) == set()
