"""A landing day read, typed, stored and checked in bounded batches judges every rule as the whole-frame path does.

The whole-frame path (every file read whole, GX on every row) is today's judge on small days; the streamed path
reads in small batches, keeps a small sample for GX and decides with exact counts over the stored day. They must
give the same verdicts and the same counts.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pytest

from ml_assets.data import expectations
from ml_assets.data.features import featurize
from ml_assets.data.ingest import RowSample, ingest_day
from ml_assets.data.tables import features_dtypes
from ml_assets.dataset import DatasetSpec
from ml_assets.datasets.simulator import Corruption, simulate
from ml_assets.partitions import LANDING_DAY
from resources.landing import ColumnWidened, LandingZone
from resources.parquet_tables import ParquetTables
from tests.conftest import GREAT_EXPECTATIONS, narrow

pytestmark = GREAT_EXPECTATIONS

DAY = date(2026, 3, 2)
KINDS = {
    "wrong_type": "age",
    "out_of_domain": "workclass",
    "out_of_range": "hours_per_week",
    "null_burst": "education",
    "duplicate_ids": None,
    "bad_label": None,
}


@pytest.fixture
def spec(adult_spec: DatasetSpec) -> DatasetSpec:
    return narrow(adult_spec)


def landing(root: Path) -> LandingZone:
    return LandingZone(root=str(root / "landing"), quarantine_root=str(root / "quarantine"))


def whole_frame_results(spec: DatasetSpec, zone: LandingZone, day: str) -> dict:
    """Today's judge: every file read whole, GX on every row."""
    landed = pd.concat([zone.read(p).frame for p in zone.files(day)], ignore_index=True)
    typed, failures = spec.coerce(landed)
    return {r.check_name: r for r in expectations.validate_raw_data(spec, landed, typed, failures, day)}


def streamed_results(spec: DatasetSpec, zone: LandingZone, root: Path, day: str, sample_rows: int) -> dict:
    tables = ParquetTables(root=str(root / "tables"))
    landed = ingest_day(spec, zone, tables, day, sample_rows=sample_rows, batch_rows=97)
    whole = expectations.whole_day(spec, landed, day)
    assert len(landed.typed) == min(sample_rows, landed.rows)
    results = expectations.validate_raw_data(
        spec, landed.landed, landed.typed[spec.column_names], landed.cast_failures, day, whole=whole
    )
    return {r.check_name: r for r in results}


COUNTED = ("element_count", "unexpected_count", "missing_count", "observed_value")


def counts(result) -> dict:
    """The numbers a check reports: GX's counts per expectation and the rule's own figures."""
    observed = {
        kind: {k: v for k, v in obs.items() if k in COUNTED} for kind, obs in result.metadata["observed"].value.items()
    }
    own = {
        k: v.value
        for k, v in result.metadata.items()
        if k in ("cast_failures", "labeled_rows", "unlabeled_rows", "duplicate_rows", "rows", "unexpected")
    }
    return {"observed": observed, **own}


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_a_sampled_day_is_judged_as_the_whole_frame_judges_it(tmp_path: Path, spec: DatasetSpec, fmt: str) -> None:
    corruptions = [Corruption(kind, DAY, column=column, fraction=0.05) for kind, column in KINDS.items()]
    simulate(spec, tmp_path / "landing", DAY, DAY, rows_per_day=900, files_per_day=3, fmt=fmt, corruptions=corruptions)
    zone, day = landing(tmp_path), DAY.isoformat()
    today = whole_frame_results(spec, zone, day)
    sampled = streamed_results(spec, zone, tmp_path, day, sample_rows=60)
    assert sorted(sampled) == sorted(today)
    assert {n: r.passed for n, r in sampled.items()} == {n: r.passed for n, r in today.items()}
    assert {n for n, r in today.items() if not r.passed} >= {"age_type", "workclass_in_domain", "record_id_unique"}
    for name, r in today.items():
        assert counts(sampled[name]) == counts(r), name
        if r.metadata["observed"].value:
            assert sampled[name].metadata["sample_rows"].value == 60


def test_a_day_within_the_sample_is_judged_word_for_word_as_before(tmp_path: Path, spec: DatasetSpec) -> None:
    corruptions = [Corruption(kind, DAY, column=column) for kind, column in KINDS.items()]
    simulate(
        spec, tmp_path / "landing", DAY, DAY, rows_per_day=400, files_per_day=2, fmt="csv", corruptions=corruptions
    )
    zone, day = landing(tmp_path), DAY.isoformat()
    today = whole_frame_results(spec, zone, day)
    streamed = streamed_results(spec, zone, tmp_path, day, sample_rows=10_000)
    assert {n: r.description for n, r in streamed.items()} == {n: r.description for n, r in today.items()}


def test_features_checks_on_a_sample_count_every_row(tmp_path: Path, spec: DatasetSpec) -> None:
    rows = spec.coerce(pd.read_parquet(spec.path.parent / spec.demo_data).head(500))[0]
    rows.loc[rows.index[::7], "education"] = pd.NA  # features rules: no nulls where the model cannot take them
    out = featurize(spec, rows).assign(**{LANDING_DAY: pd.Timestamp(DAY)})
    out.loc[out.index[::11], "age"] = pd.NA
    scan = ParquetTables(root=str(tmp_path)).write("features", DAY.isoformat(), features_dtypes(spec), [out])
    whole = {r.check_name: r for r in expectations.validate_features(spec, scan.frame())}
    sampled = {r.check_name: r for r in expectations.validate_features_scan(spec, scan, sample_rows=40)}
    assert {n: r.passed for n, r in sampled.items()} == {n: r.passed for n, r in whole.items()}
    assert not sampled["age_not_null"].passed and not sampled["education_not_null"].passed
    assert "46 of 500" in sampled["age_not_null"].description, "counted over every row, not the sample"
    for name, r in whole.items():
        assert counts(sampled[name]) == counts(r), name


def test_a_csv_column_typed_only_by_a_later_block_is_read_as_the_whole_file_reads_it(tmp_path: Path) -> None:
    """Arrow's streamed reader types a column on the first block; a later value widens it and the file is read
    again, so the batches carry the types the whole file gets."""
    rows = ["n,t,x"] + [f"{i},2026-03-02 10:00:00,{i}" for i in range(120_000)] + ["1.5,later,text"]
    path = tmp_path / "day" / "a.csv"
    path.parent.mkdir()
    path.write_text("\n".join(rows) + "\n")
    zone = LandingZone(root=str(tmp_path), quarantine_root=str(tmp_path / "q"))
    widened: dict[str, pa.DataType] = {}
    steps = []
    while True:
        try:
            batches = list(zone.batches(path, 10_000, widened))
            break
        except ColumnWidened as w:
            steps.append(w.column)
            widened[w.column] = w.to
    assert steps and set(steps) == {"n", "t", "x"}
    streamed = pd.concat(batches, ignore_index=True)
    whole = zone.read(path).frame
    assert streamed.dtypes.to_dict() == whole.dtypes.to_dict()
    assert streamed.equals(whole)


def test_a_row_sample_is_every_row_up_to_its_size_then_a_bounded_uniform_one() -> None:
    frame = pd.DataFrame({"v": range(1000)})
    small, big = RowSample(2000), RowSample(100, seed=3)
    for start in range(0, 1000, 64):
        part = frame.iloc[start : start + 64]
        small.add(part, part)
        big.add(part, part)
    assert small.result()[1]["v"].tolist() == list(range(1000))
    kept = big.result()[1]["v"]
    assert len(kept) == 100 and kept.is_monotonic_increasing and kept.is_unique
    assert kept.iloc[0] < 100 and kept.iloc[-1] > 900, "drawn from the whole stream, not its start"


def test_a_file_that_lacks_a_column_the_other_files_carry_fails_its_type_check(spec: DatasetSpec, tmp_path: Path):
    """Two files of a day, one without a nullable column: the day's union of columns has it, so its rows would land
    null and every rule of a nullable column pass (Ecdat's Participation, a hand-landed file without educ). The
    column's type check names the file that lacks it."""
    column = next(c.name for c in spec.columns if c.nullable and c.role.value != "target")
    _, second = simulate(spec, tmp_path / "landing", DAY, DAY, rows_per_day=400, files_per_day=2)
    pd.read_parquet(second).drop(columns=[column]).to_parquet(second, index=False)
    results = streamed_results(spec, landing(tmp_path), tmp_path, DAY.isoformat(), sample_rows=1000)
    typed = results[f"{column}_type"]
    assert not typed.passed, typed.description
    assert f"{column!r} is missing from 1 landing file(s) of the day, [{second.name!r}]" in typed.description
    assert all(r.passed for name, r in results.items() if name.endswith("_type") and name != f"{column}_type")


def test_a_file_of_the_source_as_it_is_lands_with_its_generated_id_and_time(spec: DatasetSpec, tmp_path: Path):
    """A source without an id or time column gets generated ones (``Column.generated``): a file in the source's own
    form, without them, lands (they once failed their type and null checks, blocking the whole day) with ids
    distinct across files and the same on a second read, and times inside the partition's day."""
    generated = [c.name for c in spec.columns if c.generated]
    assert sorted(generated) == ["event_time", "record_id"]
    first, second = simulate(spec, tmp_path / "landing", DAY, DAY, rows_per_day=400, files_per_day=2)
    for path in (first, second):
        pd.read_parquet(path).drop(columns=generated).to_parquet(path, index=False)
    results = streamed_results(spec, landing(tmp_path), tmp_path, DAY.isoformat(), sample_rows=1000)
    failed = {name: r.description for name, r in results.items() if not r.passed and r.severity.value == "ERROR"}
    assert not failed, failed
    tables = ParquetTables(root=str(tmp_path / "again"))
    day = ingest_day(spec, landing(tmp_path), tables, DAY.isoformat(), batch_rows=97)
    stored = day.scan.frame(columns=generated)
    assert stored["record_id"].is_unique and (stored["record_id"] >= 0).all() and len(stored) == 400
    assert set(stored["event_time"].dt.normalize()) == {pd.Timestamp(DAY)}
    again = ingest_day(spec, landing(tmp_path), ParquetTables(root=str(tmp_path / "third")), DAY.isoformat())
    assert again.scan.frame(columns=["record_id"])["record_id"].tolist() == stored["record_id"].tolist()
    assert not day.missing_from_files


def test_generated_is_only_for_an_id_or_a_time(adult_spec: DatasetSpec):
    age = next(c for c in adult_spec.columns if c.name == "age")
    with pytest.raises(ValueError, match="only an int64 id or a datetime time column can be generated"):
        type(age).model_validate(age.model_dump() | {"generated": True})


def test_generated_times_hold_a_daylight_saving_day_and_a_record_sent_twice_stays_a_duplicate(
    spec: DatasetSpec, tmp_path: Path
):
    """On 2026-03-08 New York's day has 23 hours: naive generated times in its lost hour once landed null, failing
    the day. And a record sent twice (same values, the id and time generated) still counts as a duplicate row."""
    day = date(2026, 3, 8)
    zoned = spec.model_copy(update={"timezone": "America/New_York"})
    (path,) = simulate(zoned, tmp_path / "landing", day, day, rows_per_day=2000, files_per_day=1)
    frame = pd.read_parquet(path).drop(columns=["record_id", "event_time"])
    pd.concat([frame, frame.head(3)], ignore_index=True).to_parquet(path, index=False)  # three records sent twice
    results = streamed_results(zoned, landing(tmp_path), tmp_path, day.isoformat(), sample_rows=5000)
    assert results["event_time_not_null"].passed and results["event_time_type"].passed
    stored = ingest_day(zoned, landing(tmp_path), ParquetTables(root=str(tmp_path / "t")), day.isoformat())
    times = stored.scan.frame(columns=["event_time"])["event_time"]
    start = pd.Timestamp(day).tz_localize("America/New_York").tz_convert("UTC").tz_localize(None)
    assert times.notna().all() and times.min() >= start and times.max() < start + pd.Timedelta(hours=23)
    assert results["duplicate_rows"].metadata["duplicate_rows"].value >= 3
