"""``batch_predictions``: a day of real features scored in-process through the service's code path.

Materialized in-process with the real DuckDB IO manager and model store; ``features`` and ``champion_model``
are stand-in assets that return a real featurized day and a real fitted model. No deployment runs here, so
the online/offline check must fail (as a warning) and say why; ``tests/test_deployer.py`` runs it against a
served model, where it passes.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from dagster import AssetKey, DagsterInstance, asset, materialize
from dagster_duckdb_pandas import DuckDBPandasIOManager

from ml_assets.dataset import DatasetSpec
from ml_assets.datasets.samples import demo_training_set
from ml_assets.model.bundle import ModelRef
from ml_assets.model.refs import load_stored
from ml_assets.partitions import LANDING_DAY, daily_partitions
from ml_assets.serving.batch import build_batch_predictions
from ml_assets.serving.schema import request_schemas
from ml_assets.serving.scoring import Scorer
from resources.bento_deployer import LocalBentoDeployer
from resources.model_store import ModelLineage, ModelStore
from resources.process_tree import free_port
from tests.conftest import in_process
from tests.serving_support import fit_logistic

DAY = "2026-01-05"


def run(
    spec: DatasetSpec,
    home: Path,
    frame: pd.DataFrame,
    model_tag: str,
    deployer: LocalBentoDeployer | None = None,
    bentoml_home: Path | None = None,
    day: str = DAY,
):
    """Materialize ``batch_predictions`` (and its check) for ``day``; ``deployer`` serves the model the check
    calls."""
    bentoml_home = bentoml_home or home / "bentoml"
    daily = daily_partitions(spec)

    @asset(name="features", partitions_def=daily, io_manager_key="warehouse_io_manager",
           metadata={"partition_expr": LANDING_DAY})  # fmt: skip
    def features() -> pd.DataFrame:
        return frame

    @asset(name="champion_model")
    def champion_model() -> ModelRef:
        return ModelRef(tag=model_tag, name="adult-baseline", kind="logistic", metrics={}, training_set_version="t")

    resources = {
        "warehouse_io_manager": DuckDBPandasIOManager(database=str(home / "w.duckdb"), schema="ml"),
        "model_store": ModelStore(home=str(bentoml_home)),
        "bento_deployer": deployer
        or LocalBentoDeployer(home=str(home), bentoml_home=str(bentoml_home), port=free_port()),
    }
    return materialize(
        [features, champion_model, *build_batch_predictions(spec)],
        partition_key=day,
        resources=resources,
        instance=DagsterInstance.ephemeral(),
        raise_on_error=False,
    )


def features_day(spec: DatasetSpec, rows: int = 300) -> pd.DataFrame:
    """``rows`` real featurized Adult rows landed on DAY."""
    frame = demo_training_set(spec, rows, window_end=date(2026, 1, 10)).drop(columns=["split"])
    frame[LANDING_DAY] = pd.Timestamp(DAY)  # as raw_data stamps it
    return frame


@pytest.fixture
def day(adult_spec: DatasetSpec, tmp_path: Path) -> tuple[pd.DataFrame, str]:
    model = fit_logistic(adult_spec, demo_training_set(adult_spec, 800, window_end=date(2026, 1, 10)))
    tag = ModelStore(home=str(tmp_path / "bentoml")).save(model, "adult-baseline", ModelLineage())
    return features_day(adult_spec), tag


@in_process
def test_scores_equal_the_online_path_and_the_check_says_why_it_cannot_compare(adult_spec, tmp_path, day):
    frame, tag = day
    result = run(adult_spec, tmp_path, frame, tag)
    assert result.success
    out = result.output_for_node("batch_predictions")
    assert list(out.columns) == [adult_spec.id.name, LANDING_DAY, "probability", "label", "model_tag"]
    assert out[adult_spec.id.name].tolist() == frame[adult_spec.id.name].tolist()
    model = load_stored(ModelStore(home=str(tmp_path / "bentoml")), tag)
    names = [c.name for c in adult_spec.feature_columns]
    records = frame[names].astype(object).where(frame[names].notna(), None).to_dict("records")
    online = Scorer(adult_spec, model, tag, log=None).score(
        [request_schemas(adult_spec).record_adapter.validate_python(r) for r in records]
    )
    np.testing.assert_array_equal(out["probability"].to_numpy(), [p["probability"] for p in online])
    assert out["label"].tolist() == [p["label"] for p in online] and set(out["model_tag"]) == {tag}
    meta = result.asset_materializations_for_node("batch_predictions")[0].metadata
    assert meta["dagster/row_count"].value == 300 and meta["model_tag"].value == tag
    (check,) = result.get_asset_check_evaluations()
    assert check.asset_key == AssetKey("batch_predictions") and not check.passed
    assert "did not answer" in check.metadata["error"].value  # no model is served in this test
    assert check.description.startswith("the served model at http") and "\n" not in check.description


@in_process
def test_a_day_with_nothing_to_score_records_no_passed_check(adult_spec, tmp_path, day):
    """No features on the day: nothing is scored, so the check compares nothing. It records no result (Dagster shows
    it as skipped), never a pass, and the reason is on the materialization."""
    frame, tag = day
    assert run(adult_spec, tmp_path, frame, tag).success  # another day with rows: the warehouse tables exist
    result = run(adult_spec, tmp_path, frame.iloc[:0], tag, day="2026-01-06")
    assert result.success
    assert result.get_asset_check_evaluations() == []
    meta = result.asset_materializations_for_node("batch_predictions")[0].metadata
    assert meta["dagster/row_count"].value == 0
    assert "online_offline_equality: no row to score" in meta["not_judged"].value


@in_process
def test_a_day_that_breaks_the_serving_rules_fails_naming_column_and_rule(adult_spec, tmp_path, day):
    frame, tag = day
    frame = frame.copy()
    frame.loc[frame.index[7], "education"] = "x" * 40
    result = run(adult_spec, tmp_path, frame, tag)
    assert not result.success
    failure = next(e for e in result.all_events if e.event_type_value == "STEP_FAILURE")
    text = str(failure.event_specific_data.error)
    assert "education" in text and "string_too_long" in text and "first at row 7" in text


def test_the_check_sample_needs_the_batch_to_hold_the_days_rows(adult_spec, day):
    """A check run on a day the batch has not scored (or scored from other features) fails with a reason, it does
    not raise."""
    from ml_assets.serving.batch import check_sample

    frame, tag = day
    scored = frame[[adult_spec.id.name]].assign(probability=0.5, label=0, model_tag=tag)
    picked = check_sample(adult_spec, frame, scored)
    assert picked is not None and picked[2] == tag and picked[1] == [0.5] * len(picked[0])
    assert check_sample(adult_spec, frame, scored.iloc[:0]) is None
    lowest = frame[adult_spec.id.name].min()  # the sample takes the lowest ids first
    assert check_sample(adult_spec, frame, scored[scored[adult_spec.id.name] != lowest]) is None
