"""In-process materializations of the data assets over simulated landing files, with their check results."""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path

import pandas as pd
import pytest
from dagster import AssetCheckSeverity, AssetKey, AssetSelection, DagsterInstance, materialize

from ml_assets.data.assets import build_data_assets
from ml_assets.dataset import DatasetSpec, TrainingWindow
from ml_assets.datasets.simulator import Corruption, simulate
from ml_assets.environments import local_resources
from tests.conftest import GREAT_EXPECTATIONS, IN_PROCESS, narrow

pytestmark = [*IN_PROCESS, GREAT_EXPECTATIONS]  # in process; validates with Great Expectations (conftest.py)

DAYS = [date(2026, 3, 1) + timedelta(days=i) for i in range(3)]


@pytest.fixture
def small_spec(adult_spec: DatasetSpec) -> DatasetSpec:
    """The Adult spec (``narrow``) with a three-day training window (train, validation and test one day each)."""
    return narrow(adult_spec).model_copy(
        update={"training": TrainingWindow(window_days=3, validation_days=1, test_days=1)}
    )


def _ingest(spec: DatasetSpec, day: date, instance: DagsterInstance, raw_only: bool = False):
    data = build_data_assets(spec)
    return materialize(
        [data.raw_data] if raw_only else [data.raw_data, data.features, data.features_checks],
        partition_key=day.isoformat(),
        instance=instance,
        resources=local_resources(spec),
        raise_on_error=False,
    )


def _failed_checks(result) -> dict[str, dict]:
    return {
        f"{e.asset_key.to_user_string()}.{e.check_name}": {k: v.value for k, v in e.metadata.items()}
        for e in result.get_asset_check_evaluations()
        if not e.passed and e.severity == AssetCheckSeverity.ERROR
    }


def _materialized(result, asset: str) -> bool:
    return any(
        ev.event_specific_data.materialization.asset_key == AssetKey(asset)
        for ev in result.get_asset_materialization_events()
    )


def _cut_window(spec: DatasetSpec, instance: DagsterInstance):
    return materialize(
        list(build_data_assets(spec)),
        selection=AssetSelection.assets("training_set") | AssetSelection.checks_for_assets("training_set"),
        partition_key=DAYS[-1].isoformat(),
        instance=instance,
        resources=local_resources(spec),
        raise_on_error=False,
    )


def test_clean_days_flow_to_a_time_split_training_set_once_every_day_is_in(
    ml_home: Path, small_spec: DatasetSpec
) -> None:
    simulate(small_spec, ml_home / "landing", DAYS[0], DAYS[-1], rows_per_day=600, files_per_day=2, fmt="csv")
    instance = DagsterInstance.ephemeral()
    for day in [*DAYS[1:], DAYS[0]]:
        result = _ingest(small_spec, day, instance)
        assert result.success
        assert _failed_checks(result) == {}, day
        assert _materialized(result, "features")
        evaluations = result.get_asset_check_evaluations()
        assert {e.asset_key for e in evaluations} == {AssetKey("raw_data"), AssetKey("features")}
        if day == DAYS[-1]:  # the window's first day is not ingested yet: the window is refused, naming it
            refused = _cut_window(small_spec, instance)
            assert not refused.success
            failure = next(e for e in refused.all_events if e.is_step_failure)
            assert DAYS[0].isoformat() in failure.step_failure_data.error.message
            assert "feature partitions missing" in failure.step_failure_data.error.message

    result = _cut_window(small_spec, instance)
    assert result.success
    assert _failed_checks(result) == {}
    training = result.output_for_node("training_set").frame()
    assert len(training) == 3 * 600
    by_split = training.groupby("split")["event_time"].agg(["min", "max", "count"])
    assert by_split["count"].to_dict() == {"test": 600, "train": 600, "validation": 600}
    assert by_split.loc["train", "max"] < by_split.loc["validation", "min"] <= by_split.loc["test", "min"]
    assert (training["window_end"] == pd.Timestamp(DAYS[-1])).all()
    assert training["record_id"].is_unique


def test_unparseable_file_is_quarantined_and_fails_the_partition(ml_home: Path, small_spec: DatasetSpec) -> None:
    day = DAYS[0]
    files = simulate(
        small_spec,
        ml_home / "landing",
        day,
        day,
        rows_per_day=300,
        files_per_day=2,
        corruptions=[Corruption("unparseable_file", day)],
    )
    result = _ingest(small_spec, day, DagsterInstance.ephemeral())
    assert not result.success
    message = next(e for e in result.all_events if e.is_step_failure).step_failure_data.error.message
    bad = files[-1]
    assert bad.name in message and "cannot be parsed" in message
    assert not bad.exists(), "the bad file left the landing zone"
    kept = ml_home / "quarantine" / day.isoformat() / bad.name
    assert kept.exists() and kept.stat().st_size > 0, "and was kept, not deleted"
    reason = kept.with_name(kept.name + ".reason.txt").read_text()
    assert "cannot be parsed" in reason and str(bad) in reason
    assert files[0].exists(), "the good file of the day stays in the landing zone"
    assert not _materialized(result, "features")

    rerun = _ingest(small_spec, day, DagsterInstance.ephemeral())  # the day's remaining good file now goes through
    assert rerun.success and _materialized(rerun, "features")


ROW_CORRUPTIONS = {
    # kind: (column to corrupt or None for the spec's default, the column a failed check must name)
    "wrong_type": ("age", "age"),
    "out_of_domain": ("workclass", "workclass"),
    "out_of_range": ("hours_per_week", "hours_per_week"),
    "null_burst": ("education", "education"),
    "duplicate_ids": (None, "record_id"),
    "missing_column": ("occupation", "occupation"),
    "bad_label": (None, "income"),
}


def _failed_naming(failed: dict[str, dict], column: str) -> list[str]:
    return [name for name, meta in failed.items() if column in name or column in str(meta)]


def test_each_corruption_fails_its_blocking_check_and_stops_features(ml_home: Path, small_spec: DatasetSpec) -> None:
    """One day carries every row-level corruption (each on its own column): each must fail its own rule."""
    day = DAYS[1]
    corruptions = [Corruption(kind, day, column=column) for kind, (column, _) in ROW_CORRUPTIONS.items()]
    simulate(small_spec, ml_home / "landing", day, day, rows_per_day=400, files_per_day=2, corruptions=corruptions)
    result = _ingest(small_spec, day, DagsterInstance.ephemeral())
    failed = _failed_checks(result)
    assert all(name.startswith("raw_data.") for name in failed)
    for kind, (_, named) in ROW_CORRUPTIONS.items():
        assert _failed_naming(failed, named), f"{kind}: no failed blocking check names {named!r}: {sorted(failed)}"
    assert "raw_data.age_type" in failed, "numbers that landed as text fail the type rule"
    untouched = [c for c in ("sex", "race", "capital_gain") if _failed_naming(failed, c)]
    assert untouched == [], "clean columns pass"
    assert _materialized(result, "raw_data"), "bad data is stored for inspection"
    assert not _materialized(result, "features"), "a blocking failure stops features for the partition"


def test_empty_file_fails_the_row_count_and_stops_features(ml_home: Path, small_spec: DatasetSpec) -> None:
    day = DAYS[2]
    simulate(small_spec, ml_home / "landing", day, day, rows_per_day=300, corruptions=[Corruption("empty_file", day)])
    result = _ingest(small_spec, day, DagsterInstance.ephemeral())
    failed = _failed_checks(result)
    assert "raw_data.row_count" in failed, sorted(failed)
    assert not _materialized(result, "features")


def test_a_half_day_fails_the_volume_rule_also_when_reingested_after_a_quarantine(
    ml_home: Path, small_spec: DatasetSpec
) -> None:
    """Earlier days' row counts come from the instance; a day that lost one of its two files to the quarantine
    is re-ingested with half its rows and fails, with the figures."""
    instance = DagsterInstance.ephemeral()
    history = 2  # the fewest earlier days the volume rule judges with (a median of two days, in two runs fewer)
    small_spec = small_spec.model_copy(
        update={"row_count": small_spec.row_count.model_copy(update={"min_history": history})}
    )
    days = [date(2026, 3, 1) + timedelta(days=i) for i in range(history + 1)]
    simulate(small_spec, ml_home / "landing", days[0], days[-2], rows_per_day=400)
    for day in days[:-1]:  # the volume rule reads earlier days' raw_data row counts
        assert _ingest(small_spec, day, instance, raw_only=True).success
    last = days[-1]
    simulate(
        small_spec,
        ml_home / "landing",
        last,
        last,
        rows_per_day=400,
        files_per_day=2,
        corruptions=[Corruption("unparseable_file", last)],
        seed=4,
    )
    assert not _ingest(small_spec, last, instance).success  # the bad file is quarantined, the day fails
    rerun = _ingest(small_spec, last, instance)
    failed = _failed_checks(rerun)
    assert set(failed) == {"raw_data.row_volume"}, sorted(failed)
    volume = failed["raw_data.row_volume"]
    assert volume["rows"] == 200 and volume["trailing_median"] == 400 and volume["earlier_days"] == history
    assert not _materialized(rerun, "features")


def test_links_and_folders_in_the_landing_zone_are_refused_by_name(ml_home: Path, small_spec: DatasetSpec) -> None:
    day = DAYS[0]
    (real,) = simulate(small_spec, ml_home / "outside", day, day, rows_per_day=300)
    folder = ml_home / "landing" / day.isoformat()
    folder.mkdir(parents=True)
    link = folder / "adult-00.parquet"
    link.symlink_to(real)
    result = _ingest(small_spec, day, DagsterInstance.ephemeral())
    message = next(e for e in result.all_events if e.is_step_failure).step_failure_data.error.message
    assert "adult-00.parquet" in message and "is a symbolic link" in message
    assert not link.is_symlink() and real.exists(), "the link (not its target) was moved to the quarantine"
    (folder / "nested.csv").mkdir()
    result = _ingest(small_spec, day, DagsterInstance.ephemeral())
    message = next(e for e in result.all_events if e.is_step_failure).step_failure_data.error.message
    assert "nested.csv" in message and "is a folder, not a regular file" in message


def _blank(landing: Path, day: date, column: str) -> None:
    """Every row of ``day``'s landing files without a value in ``column`` (the column is there, empty)."""
    for path in (landing / day.isoformat()).glob("*.csv"):
        frame = pd.read_csv(path)
        frame[column] = None
        frame.to_csv(path, index=False)


def _warned_spec(small_spec: DatasetSpec) -> DatasetSpec:
    """A nullable target whose label rules only warn: a day without labels passes raw_data."""
    target = small_spec.target.model_copy(update={"nullable": True, "mostly": 0.5, "severity": "warn"})
    columns = [target if c.role == "target" else c for c in small_spec.columns]
    return small_spec.model_copy(update={"columns": columns})


def test_a_window_whose_test_days_have_no_labels_fails_class_balance_naming_the_split(
    ml_home: Path, small_spec: DatasetSpec
) -> None:
    """Labels stop before the window's newest day (the test split): the window is cut and stored, its splits table
    shows the split unlabeled, and the blocking class_balance check fails naming the split and why."""
    spec = _warned_spec(small_spec)
    simulate(spec, ml_home / "landing", DAYS[0], DAYS[-1], rows_per_day=300, fmt="csv")
    _blank(ml_home / "landing", DAYS[-1], spec.target.name)
    instance = DagsterInstance.ephemeral()
    for day in DAYS:
        assert _ingest(spec, day, instance).success
    result = _cut_window(spec, instance)
    assert _materialized(result, "training_set")
    metadata = next(e.event_specific_data.materialization.metadata for e in result.get_asset_materialization_events())
    assert metadata["splits_without_labels"].value == ["test"]
    assert "| test | 300 | 0 | - |" in metadata["splits"].value
    evaluations = {e.check_name: e for e in result.get_asset_check_evaluations()}
    balance = evaluations["class_balance"]
    assert not balance.passed and balance.severity == AssetCheckSeverity.ERROR
    assert "split 'test' has no labeled rows (300 rows" in balance.description
    assert "all with a null 'income'): no model can be judged on it" in balance.description


def test_a_column_null_on_the_first_day_and_text_later_is_stored_as_text(
    ml_home: Path, small_spec: DatasetSpec
) -> None:
    """The first partition no longer fixes a column's type from nothing: every stored table has the types its
    asset declares from the spec, whatever a partition holds (DuckDB once typed the all-null column INTEGER and
    refused the next day's text)."""
    import pyarrow.parquet as pq

    from ml_assets.data import tables
    from resources.parquet_tables import ARROW_TYPES, ParquetTables

    simulate(small_spec, ml_home / "landing", DAYS[0], DAYS[-1], rows_per_day=300, fmt="csv")
    _blank(ml_home / "landing", DAYS[0], "occupation")
    instance = DagsterInstance.ephemeral()
    for day in DAYS:
        result = _ingest(small_spec, day, instance)
        assert result.success and _materialized(result, "features"), day
    result = _cut_window(small_spec, instance)
    assert result.success
    training = result.output_for_node("training_set").frame()
    assert training["occupation"].dtype == "string[pyarrow]" and training["occupation"].notna().sum() > 0
    declared = {
        "raw_data": tables.raw_data_dtypes(small_spec),
        "features": tables.features_dtypes(small_spec),
    }
    for table, dtypes in declared.items():
        for day in DAYS:
            stored = ParquetTables(root=str(ml_home / "tables")).current(table, day.isoformat())
            assert stored is not None, (table, day)
            schema = pq.read_schema(stored.files[0])
            assert dict(zip(schema.names, map(str, schema.types), strict=True)) == {
                c: str(ARROW_TYPES[t]) for c, t in dtypes.items()
            }, (table, day)
