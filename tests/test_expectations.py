"""raw_data and features checks: every corruption kind fails the right check, clean real rows pass them all."""

from collections.abc import Callable

import dagster as dg
import numpy as np
import pandas as pd
import pytest
from dagster_duckdb_pandas import DuckDBPandasIOManager

from ml_assets.data.expectations import (
    build_features_checks,
    raw_data_check_specs,
    validate_features,
    validate_raw_data,
)
from ml_assets.data.features import featurize
from ml_assets.data.gx_runner import GxOptions, run_gx
from ml_assets.data.rules import raw_data_rules
from ml_assets.data.tables import DATA_IO_MANAGER, features_dtypes
from ml_assets.dataset import DatasetSpec, demo_data_path
from ml_assets.partitions import LANDING_DAY
from resources.parquet_tables import ParquetTables, ParquetTablesIOManager
from resources.warehouse_tables import column_schema
from tests.conftest import GREAT_EXPECTATIONS, in_process, narrow

pytestmark = GREAT_EXPECTATIONS  # validates with Great Expectations (conftest.py)

DAY = "2026-01-05"


@pytest.fixture(scope="module")
def spec(adult_spec: DatasetSpec) -> DatasetSpec:
    """Adult without the columns no test here corrupts (``narrow``): each validation runs a third fewer
    expectations; the tests on every column's rules use ``adult_spec`` and ``clean_adult``."""
    return narrow(adult_spec)


def day_rows(spec: DatasetSpec, day: str, n: int = 400, offset: int = 0) -> pd.DataFrame:
    """Real Adult rows as they would land on ``day``: spec columns, event times inside the day."""
    real = pd.read_parquet(demo_data_path(spec)).iloc[offset : offset + n].reset_index(drop=True)
    real[spec.time.name] = pd.Timestamp(day) + pd.to_timedelta(np.linspace(0, 86_000, len(real)), unit="s")
    return real[spec.column_names]


@pytest.fixture(scope="module")
def clean(spec: DatasetSpec) -> pd.DataFrame:
    return day_rows(spec, DAY)


@pytest.fixture(scope="module")
def clean_adult(adult_spec: DatasetSpec) -> pd.DataFrame:
    return day_rows(adult_spec, DAY)


def check(spec: DatasetSpec, landed: pd.DataFrame, day: str | None = DAY, **kw) -> dict[str, dg.AssetCheckResult]:
    typed, failures = spec.coerce(landed)
    return {r.check_name: r for r in validate_raw_data(spec, landed, typed, failures, day, **kw)}


def failed(results: dict[str, dg.AssetCheckResult]) -> set[str]:
    return {name for name, r in results.items() if not r.passed}


def test_one_blocking_partitioned_spec_per_rule(adult_spec: DatasetSpec) -> None:
    spec = adult_spec
    daily = dg.DailyPartitionsDefinition(start_date=spec.partitions_start.isoformat())
    specs = raw_data_check_specs(spec, daily)
    names = [s.name for s in specs]
    assert len(names) == len(set(names)) == len(raw_data_rules(spec))
    assert all(s.blocking and s.partitions_def == daily and s.asset_key == dg.AssetKey("raw_data") for s in specs)
    # derived from the spec: a type rule per column, a domain rule per categorical, a range rule per range
    assert {f"{c}_type" for c in spec.column_names} <= set(names)
    assert {f"{c.name}_in_domain" for c in spec.columns if c.categories and c.role != "target"} <= set(names)
    assert {f"{c.name}_in_range" for c in spec.columns if c.range} <= set(names)
    assert {"row_count", f"{spec.id.name}_unique", "label_valid", "freshness"} <= set(names)


def test_clean_real_rows_pass_every_check(adult_spec: DatasetSpec, clean_adult: pd.DataFrame) -> None:
    spec, clean = adult_spec, clean_adult  # every column's rules
    results = check(spec, clean)
    assert set(results) == {r.name for r in raw_data_rules(spec)}
    assert failed(results) == set(), {n: results[n].description for n in failed(results)}
    assert results["age_type"].metadata["landed_dtype"].value == "int64"


def test_clean_rows_as_csv_text_pass(adult_spec: DatasetSpec, clean_adult: pd.DataFrame) -> None:
    """Text columns and times as read from CSV (Python str objects) are what CSV gives: they pass."""
    spec, clean = adult_spec, clean_adult  # every column's rules
    csv_like = clean.astype({c.name: object for c in spec.columns if c.dtype in ("string", "datetime")})
    csv_like[spec.time.name] = clean[spec.time.name].astype(str)
    assert failed(check(spec, csv_like)) == set()


def _set(column: str, value: object, rows: slice = slice(3, 6)) -> Callable[[pd.DataFrame], pd.DataFrame]:
    def corrupt(df: pd.DataFrame) -> pd.DataFrame:
        out = df.copy()
        out[column] = out[column].astype(object)
        out.loc[rows, column] = value
        return out

    return corrupt


def _numbers_as_text(df: pd.DataFrame) -> pd.DataFrame:
    return df.assign(age=df["age"].astype(str))


def _stray_text(df: pd.DataFrame) -> pd.DataFrame:
    out = df.assign(hours_per_week=df["hours_per_week"].astype(object))
    out.loc[7, "hours_per_week"] = "forty"
    return out


def _duplicate_ids(df: pd.DataFrame) -> pd.DataFrame:
    out = df.copy()
    out.loc[10:14, "record_id"] = out.loc[0, "record_id"]
    return out


CORRUPTIONS = {
    # kind: (corruption, the check, the column and words its message must name, every check that fails)
    "missing column": (
        lambda df: df.drop(columns=["education"]),
        ("education_type", "education", "is missing"),
        {"education_type", "education_not_null"},
    ),
    "wrong type": (_numbers_as_text, ("age_type", "age", "another type"), {"age_type"}),
    "unparseable value": (
        _stray_text,
        ("hours_per_week_type", "hours_per_week", "could not be cast"),
        {"hours_per_week_type", "hours_per_week_not_null"},
    ),
    "out of domain": (
        _set("race", "Martian"),
        ("race_in_domain", "race", "outside the allowed categories"),
        {"race_in_domain"},
    ),
    "out of range": (
        _set("hours_per_week", 500),
        ("hours_per_week_in_range", "hours_per_week", "out of range"),
        {"hours_per_week_in_range"},
    ),
    "null burst": (_set("sex", None, slice(20, 119)), ("sex_not_null", "sex", "100 of 400"), {"sex_not_null"}),
    "duplicate ids": (_duplicate_ids, ("record_id_unique", "record_id", "duplicated"), {"record_id_unique"}),
    "invalid label": (
        _set("income", "maybe"),
        ("label_valid", "income", "outside the allowed categories"),
        {"label_valid"},
    ),
    "null label": (_set("income", None), ("label_valid", "income", "null"), {"label_valid"}),
}


@pytest.mark.parametrize("kind", list(CORRUPTIONS))
def test_corruption_fails_the_right_check(spec: DatasetSpec, clean: pd.DataFrame, kind: str) -> None:
    corrupt, (name, column, words), every = CORRUPTIONS[kind]
    results = check(spec, corrupt(clean))
    assert failed(results) == every, {n: results[n].description for n in failed(results)}
    result = results[name]
    assert result.description.startswith(f"FAILED {name} on column '{column}'")
    assert words in result.description
    assert result.severity == dg.AssetCheckSeverity.ERROR


def test_failure_metadata_has_observed_value_rule_and_offending_rows(spec: DatasetSpec, clean: pd.DataFrame) -> None:
    results = check(spec, _set("race", "Martian", slice(3, 5))(clean))
    meta = results["race_in_domain"].metadata
    assert "categories" in meta["rule"].value
    observed = meta["observed"].value["column_values_to_be_in_set"]
    assert observed["unexpected_count"] == 3 and observed["element_count"] == len(clean)
    sample = meta["offending_rows"].value
    assert "Martian" in sample and str(clean.loc[4, "record_id"]) in sample


def test_empty_frame_fails_without_raising(spec: DatasetSpec) -> None:
    for empty in (pd.DataFrame(), spec.empty_frame()):
        results = check(spec, empty)
        assert {"row_count", "label_valid", "freshness"} <= failed(results)
        assert "row count is 0" in results["row_count"].description
    assert all(r.passed for n, r in check(spec, spec.empty_frame()).items() if n.endswith("_type"))


def test_stale_partition_fails_freshness_as_a_warning(spec: DatasetSpec, clean: pd.DataFrame) -> None:
    results = check(spec, clean, day="2026-01-09")
    assert failed(results) == {"freshness"}
    assert results["freshness"].severity == dg.AssetCheckSeverity.WARN
    assert "48 h" in results["freshness"].description
    assert check(spec, clean, day=None)["freshness"].metadata["note"].value.startswith("no partition")


def test_mostly_tolerates_a_few_unknown_categories_and_warns_beyond(
    adult_spec: DatasetSpec, clean_adult: pd.DataFrame
) -> None:
    spec, clean = adult_spec, clean_adult  # every column's rules
    few = _set("native_country", "Atlantis", slice(0, 1))(clean)  # 1 of 400 < 1 %
    assert failed(check(spec, few)) == set()
    many = _set("native_country", "Atlantis", slice(0, 40))(clean)  # 10 %
    results = check(spec, many)
    assert failed(results) == {"native_country_in_domain"}
    assert results["native_country_in_domain"].severity == dg.AssetCheckSeverity.WARN


def test_batching_strategies_agree(spec: DatasetSpec, clean: pd.DataFrame) -> None:
    corrupt = _duplicate_ids(_set("race", "Martian")(clean))
    per_column = check(spec, corrupt, gx_options=GxOptions(per_column=True))
    one_batch = check(spec, corrupt, gx_options=GxOptions(per_column=False, fingerprint=True))
    assert failed(per_column) == failed(one_batch) == {"race_in_domain", "record_id_unique"}


def test_batches_of_one_definition_keep_their_own_data(spec: DatasetSpec) -> None:
    """Every batch reuses one GX batch definition: results must still come from each batch's own frame."""
    rules = [r for r in raw_data_rules(spec) if r.name in ("age_type", "age_not_null", "row_count")]
    landed = pd.DataFrame({"age": ["x", "y", "z"]})
    typed = pd.DataFrame({"age": pd.array([1, None, 3, 4], dtype="Int64")})
    found = run_gx({"landed": landed, "typed": typed}, rules, GxOptions(per_column=True))
    type_list = next(r for r in found["age_type"] if r.expectation_config.type.endswith("type_list"))
    assert type_list.result["unexpected_count"] == 3
    assert found["age_not_null"][0].result["unexpected_count"] == 1
    assert found["row_count"][0].result["observed_value"] == 4


@pytest.mark.parametrize("per_column", [False, True])
def test_arrow_and_categorical_dtypes_are_judged_by_kind(
    spec: DatasetSpec, clean: pd.DataFrame, per_column: bool
) -> None:
    options = GxOptions(per_column=per_column)
    arrow = clean.astype({"workclass": "string[pyarrow]", "race": "category", "age": "int64[pyarrow]"})
    arrow[spec.time.name] = arrow[spec.time.name].dt.tz_localize("UTC")
    assert failed(check(spec, arrow, gx_options=options)) == set()
    text_age = clean.astype({"age": "string[pyarrow]", "sex": object})
    text_age.loc[3, "sex"] = 1  # a number among the text of an object column: found value by value
    results = check(spec, text_age, gx_options=options)
    assert failed(results) == {"age_type", "sex_type", "sex_in_domain"}
    assert "landed as type str" in results["age_type"].description
    assert "1 of 400 values landed as another type" in results["sex_type"].description


# ---- in an asset, partitioned, with the DuckDB IO manager ---------------------------------------------------


def _resources(tmp_path) -> dict:
    return {"io_manager": DuckDBPandasIOManager(database=str(tmp_path / "w.duckdb"), schema="ml")}


@in_process
def test_in_asset_checks_block_downstream_per_partition(spec: DatasetSpec, tmp_path) -> None:
    daily = dg.DailyPartitionsDefinition(start_date=spec.partitions_start.isoformat())
    bad_day = "2026-01-06"

    @dg.asset(
        name="raw_data",
        partitions_def=daily,
        metadata={"partition_expr": spec.time.name},
        check_specs=raw_data_check_specs(spec, daily),
    )
    def raw_data(context: dg.AssetExecutionContext):
        landed = day_rows(spec, context.partition_key, n=200)
        if context.partition_key == bad_day:
            landed = landed.drop(columns=["age"])
        typed, failures = spec.coerce(landed)
        yield dg.Output(typed)
        yield from validate_raw_data(spec, landed, typed, failures, context.partition_key)

    @dg.asset(partitions_def=daily, metadata={"partition_expr": spec.time.name})
    def features(raw_data: pd.DataFrame) -> pd.DataFrame:
        return featurize(spec, raw_data)

    instance = dg.DagsterInstance.ephemeral()
    good = dg.materialize([raw_data, features], partition_key=DAY, resources=_resources(tmp_path), instance=instance)
    assert good.success
    assert all(e.passed for e in good.get_asset_check_evaluations())

    bad = dg.materialize(
        [raw_data, features],
        partition_key=bad_day,
        resources=_resources(tmp_path),
        instance=instance,
        raise_on_error=False,
    )
    assert not bad.success
    evaluations = {e.check_name: e for e in bad.get_asset_check_evaluations()}
    assert not evaluations["age_type"].passed and "'age'" in evaluations["age_type"].description
    materialized = {m.asset_key for m in bad.get_asset_materialization_events() if m.partition == bad_day} | {
        e.asset_key for e in bad.asset_materializations_for_node("features")
    }
    assert dg.AssetKey("features") not in materialized
    assert instance.get_materialized_partitions(dg.AssetKey("features")) == {DAY}


# ---- features -------------------------------------------------------------------------------------------------


@in_process
def test_features_checks_in_process_on_the_parquet_tables(spec: DatasetSpec, tmp_path) -> None:
    """The features checks over a partition stored as features is (a Parquet file per day, read lazily)."""
    daily = dg.DailyPartitionsDefinition(start_date=spec.partitions_start.isoformat())
    bad_day = "2026-01-06"

    @dg.asset(
        name="features",
        partitions_def=daily,
        io_manager_key=DATA_IO_MANAGER,
        metadata=column_schema(features_dtypes(spec)),
    )
    def features(context: dg.AssetExecutionContext) -> pd.DataFrame:
        typed, _ = spec.coerce(day_rows(spec, context.partition_key, n=300))
        out = featurize(spec, typed)
        out[LANDING_DAY] = pd.Timestamp(context.partition_key)
        if context.partition_key == bad_day:
            out.loc[5:9, "age"] = pd.NA
        return out

    checks = build_features_checks(spec, daily)
    assert {k.name for k in checks.check_keys} >= {"label_not_null", "age_not_null", "age_finite"}
    instance = dg.DagsterInstance.ephemeral()
    tables = ParquetTablesIOManager(tables=ParquetTables(root=str(tmp_path / "tables")))
    for day, expected_failures in ((DAY, set()), (bad_day, {"age_not_null"})):
        result = dg.materialize(
            [features, checks],
            partition_key=day,
            resources={DATA_IO_MANAGER: tables},
            instance=instance,
            raise_on_error=False,
        )
        assert result.success == (not expected_failures)  # blocking: a failed ERROR check fails the run
        evaluations = result.get_asset_check_evaluations()
        assert len(evaluations) == len(checks.check_keys)
        assert {e.check_name for e in evaluations if not e.passed} == expected_failures
        assert {e.partition for e in evaluations} == {day}
    age = next(e for e in evaluations if e.check_name == "age_not_null")
    assert "'age'" in age.description and "5 of 300" in age.description


def test_features_infinite_numbers_fail(spec: DatasetSpec, clean: pd.DataFrame) -> None:
    typed, _ = spec.coerce(clean)
    feats = featurize(spec, typed)
    missing = {r.check_name for r in validate_features(spec, feats.drop(columns=["label"])) if not r.passed}
    assert missing == {"label_not_null"}
    feats["hours_per_week"] = feats["hours_per_week"].astype("float64")
    feats.loc[2, "hours_per_week"] = np.inf
    feats.loc[3, "capital_gain"] = pd.NA
    results = {r.check_name: r for r in validate_features(spec, feats)}
    assert {n for n, r in results.items() if not r.passed} == {"hours_per_week_finite", "capital_gain_not_null"}
    assert "'hours_per_week'" in results["hours_per_week_finite"].description


# ---- unexpected columns and volume -----------------------------------------------------------------------------
def test_an_extra_column_is_named_warn_by_default_and_blocking_when_configured(
    spec: DatasetSpec, clean: pd.DataFrame
) -> None:
    landed = clean.assign(ssn="123-45-6789")
    r = check(spec, landed)["unexpected_columns"]
    assert not r.passed and r.severity == dg.AssetCheckSeverity.WARN
    assert "['ssn']" in r.description and r.metadata["unexpected"].value == ["ssn"]
    typed, _ = spec.coerce(landed)
    assert "ssn" not in typed.columns  # not stored, but no longer silently
    strict = spec.model_copy(update={"unexpected_columns": "error"})
    assert check(strict, landed)["unexpected_columns"].severity == dg.AssetCheckSeverity.ERROR
    assert check(spec, clean)["unexpected_columns"].passed


def test_volume_compares_a_day_with_the_trailing_median(spec: DatasetSpec, clean: pd.DataFrame) -> None:
    earlier = {f"2026-01-0{d}": n for d, n in zip(range(1, 5), (400, 420, 390, 410), strict=True)}
    whole = check(spec, clean, earlier_rows=earlier)["row_volume"]
    assert whole.passed and whole.metadata["trailing_median"].value == 405
    half = check(spec, clean.iloc[:200], earlier_rows=earlier)["row_volume"]
    assert not half.passed and half.severity == dg.AssetCheckSeverity.ERROR
    assert "200 rows is 0.49x the median 405 of the 4 days 2026-01-01 .. 2026-01-04" in half.description
    assert "| 2026-01-02 | 420 |" in half.metadata["earlier_row_counts"].value
    young = check(spec, clean.iloc[:200], earlier_rows=dict(list(earlier.items())[:2]))["row_volume"]
    assert young.passed and "not judged: 2 earlier day(s)" in young.metadata["note"].value


# ---- duplicated rows, labels that arrive later, times as numbers ----------------------------------------------
def test_a_row_sent_twice_under_a_new_id_fails_duplicate_rows(spec: DatasetSpec, clean: pd.DataFrame) -> None:
    assert check(spec, clean)["duplicate_rows"].passed
    resent = clean.iloc[[3, 7]].assign(record_id=[10_001, 10_002])
    landed = pd.concat([clean, resent], ignore_index=True)
    r = check(spec, landed)["duplicate_rows"]
    assert not r.passed and r.severity == dg.AssetCheckSeverity.WARN and r.metadata["duplicate_rows"].value == 2
    assert "2 of 402 rows repeat an earlier row on every column but the id 'record_id'" in r.description
    assert "10001" in r.description
    strict = spec.model_copy(update={"duplicate_rows": "error"})
    assert check(strict, landed)["duplicate_rows"].severity == dg.AssetCheckSeverity.ERROR
    off = spec.model_copy(update={"duplicate_rows": "off"})
    assert "duplicate_rows" not in check(off, landed)


def test_labels_that_arrive_later_pass_a_day_without_labels(spec: DatasetSpec, clean: pd.DataFrame) -> None:
    """mostly 0 on a nullable target: a day with no label yet lands; a label outside the categories still fails."""
    target = spec.target.model_copy(update={"nullable": True, "mostly": 0.0})
    later = spec.model_copy(update={"columns": [target if c.role == "target" else c for c in spec.columns]})
    unlabeled = clean.assign(**{target.name: None})
    r = check(later, unlabeled)["label_valid"]
    assert r.passed and r.metadata["labeled_rows"].value == 0
    assert not check(later, unlabeled.iloc[:0])["label_valid"].passed  # an empty day still has no labels at all
    wrong = unlabeled.copy()
    wrong.loc[:3, target.name] = ">50K."
    assert not check(later, wrong)["label_valid"].passed
    covered = spec.model_copy(
        update={
            "columns": [target.model_copy(update={"mostly": 0.5}) if c.role == "target" else c for c in spec.columns]
        }
    )
    assert not check(covered, unlabeled)["label_valid"].passed  # a coverage rule above 0 still judges the day


def test_a_year_number_time_column_lands_as_numbers_or_timestamps(spec: DatasetSpec, clean: pd.DataFrame) -> None:
    time = spec.time.model_copy(update={"landed": "int64", "unit": "year"})
    years = spec.model_copy(update={"columns": [time if c.role == "time" else c for c in spec.columns]})
    numbers = clean.assign(**{time.name: 2026})
    results = check(years, numbers)
    assert results[f"{time.name}_type"].passed and results["freshness"].passed is False  # Jan 1 is not fresh
    typed, _ = years.coerce(numbers)
    assert (typed[time.name] == pd.Timestamp("2026-01-01")).all()
    assert check(years, clean)[f"{time.name}_type"].passed  # a replayed day carries the timestamps themselves
    text = clean.assign(**{time.name: "twenty"})
    assert not check(years, text)[f"{time.name}_type"].passed


def test_the_gx_internal_the_runner_switches_off_still_exists() -> None:
    """The GX internal gx_runner._batch_fingerprint sets: if GX renames or drops it, the speed-up silently stops
    working; fail here instead."""
    from great_expectations.execution_engine import pandas_execution_engine as engine

    assert isinstance(engine.HASH_THRESHOLD, int | float) and engine.HASH_THRESHOLD > 0


def test_expectation_configurations_are_built_once_per_validate_and_equal_gx_own() -> None:
    """gx_runner._configurations_built_once replaces GX's ``Expectation.configuration`` property while validating:
    if GX moves it, stops rebuilding it on each access (the patch is then useless), or the patch changes what GX
    sees, fail here."""
    import great_expectations as gx
    from great_expectations.expectations.expectation import Expectation

    from ml_assets.data.gx_runner import _configurations_built_once

    assert isinstance(Expectation.__dict__["configuration"], property)
    e = gx.expectations.ExpectColumnValuesToBeBetween(column="age", min_value=17, max_value=90, meta={"check": "x"})
    assert e.configuration is not e.configuration  # GX rebuilds it: the patch still pays
    own = e.configuration
    with _configurations_built_once():
        assert e.configuration is e.configuration and e.configuration == own
    assert e.configuration is not e.configuration  # restored
