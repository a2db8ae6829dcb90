"""One landing day read, typed and stored in bounded batches: raw_data's data plane.

Each landing file is read in Arrow batches (``LandingZone.batches``: the types the whole file would get), each
batch is cast to the spec's types (``DatasetSpec.coerce``) and appended to the day's Parquet file; what the
asset's metadata and checks need of the whole day is counted on the way (rows, labels, nulls, failed casts, the
landed columns), and a uniform sample of at most ``sample_rows`` rows is kept both as landed and as typed, with
their row numbers, for Great Expectations (every row when the day has no more). So memory is bounded by a batch
and the sample, whatever the day's size.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
from dagster import Failure

from ml_assets.data.exact_counts import GX_SAMPLE_ROWS
from ml_assets.data.tables import raw_data_dtypes
from ml_assets.dataset import DatasetSpec, Role
from ml_assets.partitions import LANDING_DAY
from resources.landing import ColumnWidened, LandingFileError, LandingZone
from resources.parquet_tables import BATCH_ROWS, ParquetTables, TableScan

RAW_DATA = "raw_data"
_KEY = "__sample_key"


@dataclass(frozen=True)
class LandedDay:
    """A stored raw_data day: its scan, what was counted over every row, and the sample GX judges."""

    scan: TableScan
    files: list[str]
    bytes: int
    rows: int
    unlabeled: int
    nulls: dict[str, int]
    cast_failures: dict[str, int]
    landed_columns: list[str]
    # spec columns some files lack (file name -> columns): the day's union of columns hides them, and those rows
    # would land with the column null, passing every rule of a nullable column
    missing_from_files: dict[str, list[str]]
    landed: pd.DataFrame = field(repr=False)  # the sample as landed (index: row numbers in the day)
    typed: pd.DataFrame = field(repr=False)  # the same rows, typed (spec columns)


class RowSample:
    """A uniform sample of at most ``limit`` rows of a stream of batches, every row while there are no more than
    ``limit``; each row is kept with a seeded random key and the ``limit`` smallest keys win (a bottom-k sample)."""

    def __init__(self, limit: int, seed: int = 0):
        self.limit = limit
        self.rng = np.random.default_rng(seed)
        self.landed: list[pd.DataFrame] = []
        self.typed: list[pd.DataFrame] = []
        self.keys = np.empty(0)

    def add(self, landed: pd.DataFrame, typed: pd.DataFrame) -> None:
        keys = self.rng.random(len(typed))
        if len(self.keys) + len(keys) > self.limit and len(self.keys) >= self.limit:
            # only rows whose key beats the largest kept key can enter
            chosen = keys < self.keys.max()
            landed, typed, keys = landed[chosen], typed[chosen], keys[chosen]
        self.landed.append(landed)
        self.typed.append(typed)
        self.keys = np.concatenate([self.keys, keys])
        if len(self.keys) > 2 * self.limit:
            self._shrink()

    def _shrink(self) -> None:
        landed, typed = self.frames()
        if len(self.keys) > self.limit:
            keep = np.sort(np.argpartition(self.keys, self.limit - 1)[: self.limit])
            landed, typed, self.keys = landed.iloc[keep], typed.iloc[keep], self.keys[keep]
        self.landed, self.typed = [landed], [typed]

    def frames(self) -> tuple[pd.DataFrame, pd.DataFrame]:
        """The kept rows (landed, typed) in day order."""
        landed = pd.concat(self.landed) if len(self.landed) > 1 else self.landed[0]
        typed = pd.concat(self.typed) if len(self.typed) > 1 else self.typed[0]
        return landed, typed

    def result(self) -> tuple[pd.DataFrame, pd.DataFrame]:
        self._shrink()
        return self.frames()


def _mix(keys: np.ndarray) -> np.ndarray:
    """SplitMix64's finalizer: 64 well-mixed bits from each uint64 (vectorized)."""
    with np.errstate(over="ignore"):
        z = (keys ^ (keys >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return z ^ (z >> np.uint64(31))


def _seed(text: str) -> np.uint64:
    return np.uint64(int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "little"))


def fill_generated(spec: DatasetSpec, landed: pd.DataFrame, day: str, file_name: str, first_row: int) -> pd.DataFrame:
    """``landed`` with the generated columns (``Column.generated``: the id or time of a source that has none) it
    lacks, filled for its rows ``first_row``.. of ``file_name``.

    An id is 62 bits of a key of the day, the file and the row: distinct across rows, files and days, never
    negative, and the same when the file is read again. A time is the partition's day in the spec's timezone (its
    real length on a daylight-saving day) at an offset keyed by the day and the row's values, so a record sent
    twice gets the same time and ``duplicate_rows``, which compares every column but the id, still finds it."""
    missing = [c for c in spec.columns if c.generated and c.name not in landed.columns]
    if not missing:
        return landed
    filled = {}
    for col in missing:
        if col.role == Role.ID:
            rows = np.arange(first_row, first_row + len(landed), dtype=np.uint64)
            with np.errstate(over="ignore"):
                keys = _mix(_seed(f"{day}/{file_name}") + rows * np.uint64(0x9E3779B97F4A7C15))
            filled[col.name] = pd.array((keys >> np.uint64(2)).astype(np.int64), dtype="Int64")
        else:
            values = landed[[c for c in landed.columns if c not in {m.name for m in missing}]]
            content = pd.util.hash_pandas_object(values, index=False).to_numpy(dtype=np.uint64)
            keys = _mix(content ^ _seed(day))
            local = pd.Timestamp(day)
            start = local.tz_localize(spec.timezone, nonexistent="shift_forward", ambiguous=True)
            end = (local + pd.Timedelta(days=1)).tz_localize(spec.timezone, nonexistent="shift_forward", ambiguous=True)
            length_ms = np.uint64((end - start) // pd.Timedelta(milliseconds=1))
            offsets = pd.to_timedelta((keys % length_ms).astype(np.int64), unit="ms")
            filled[col.name] = start + offsets
    return landed.assign(**{name: pd.Series(values, index=landed.index) for name, values in filled.items()})


def landed_batches(
    landing: LandingZone, day: str, paths: list[Path], batch_rows: int, widened: dict[str, dict[str, pa.DataType]]
) -> Iterator[tuple[str, pd.DataFrame]]:
    """The landing files ``paths`` of ``day`` as (file name, frame) batches; an unreadable file is quarantined
    and fails the day with what was wrong."""
    for path in paths:
        try:
            for batch in landing.batches(path, batch_rows, widened.get(path.name)):
                yield path.name, batch
        except LandingFileError as e:
            moved = landing.quarantine(path, day, e.problem)
            raise Failure(
                description=f"raw_data partition {day}: {e}. The file was moved to {moved} for inspection; "
                "fix or replace it in the landing folder and materialize the partition again.",
                metadata={"file": str(path), "quarantined_to": str(moved), "problem": e.problem},
            ) from e


def ingest_day(
    spec: DatasetSpec,
    landing: LandingZone,
    tables: ParquetTables,
    day: str,
    sample_rows: int = GX_SAMPLE_ROWS,
    batch_rows: int = BATCH_ROWS,
) -> LandedDay:
    """Read, type and store one landing day batch by batch. A CSV column whose type only a later block shows is
    widened and the day read again (rare: Arrow fixes a streamed column's type on the file's first block)."""
    paths = landing.files(day)
    if not paths:
        raise Failure(
            description=f"raw_data partition {day}: no landing files in {landing.day_dir(day)}",
            metadata={"landing_dir": str(landing.day_dir(day))},
        )
    widened: dict[str, dict[str, pa.DataType]] = {}
    while True:
        try:
            return _ingest(spec, landing, tables, day, paths, sample_rows, batch_rows, widened)
        except ColumnWidened as w:
            widened.setdefault(w.path.name, {})[w.column] = w.to


def _ingest(
    spec: DatasetSpec,
    landing: LandingZone,
    tables: ParquetTables,
    day: str,
    paths: list[Path],
    sample_rows: int,
    batch_rows: int,
    widened: dict[str, dict[str, pa.DataType]],
) -> LandedDay:
    sample = RowSample(sample_rows)
    nulls: Counter[str] = Counter()
    failures: Counter[str] = Counter()
    landed_columns: dict[str, None] = {}
    file_columns: dict[str, set[str]] = {}  # each file's columns, from its batches
    file_rows: dict[str, int] = {}  # rows read so far of each file (the generated columns key on them)
    empty: list[pd.DataFrame] = []  # each file's columns as landed, for a day without rows
    rows = unlabeled = 0
    stamp = pd.Timestamp(day)
    with tables.writer(RAW_DATA, day, raw_data_dtypes(spec)) as writer:
        for name, landed in landed_batches(landing, day, paths, batch_rows, widened):
            landed = fill_generated(spec, landed, day, name, file_rows.get(name, 0))
            file_rows[name] = file_rows.get(name, 0) + len(landed)
            landed_columns |= dict.fromkeys(map(str, landed.columns))
            file_columns.setdefault(name, set()).update(map(str, landed.columns))
            if landed.empty:
                empty.append(landed)
                continue
            landed.index = pd.RangeIndex(rows, rows + len(landed))
            typed, cast_failures = spec.coerce(landed)
            failures.update(cast_failures)
            nulls.update({c: int(n) for c, n in typed.isna().sum().items() if n})
            unlabeled += int(typed[spec.target.name].isna().sum())
            sample.add(landed, typed)
            writer.write(typed.assign(**{LANDING_DAY: stamp}))
            rows += len(typed)
        scan = writer.close()
    if rows:
        landed_sample, typed_sample = sample.result()
    else:  # no rows (empty files): the frames as an empty day lands and types
        landed_sample = pd.concat(empty, ignore_index=True) if empty else pd.DataFrame()
        typed_sample = spec.coerce(landed_sample)[0]
    return LandedDay(
        scan=scan,
        files=[p.name for p in paths],
        bytes=sum(p.stat().st_size for p in paths),
        rows=rows,
        unlabeled=unlabeled,
        nulls={c: nulls[c] for c in spec.column_names if nulls[c]},
        cast_failures={c: failures[c] for c in spec.column_names if failures[c]},
        landed_columns=list(landed_columns),
        missing_from_files={
            name: lacking
            for name, columns in file_columns.items()
            if (lacking := [c for c in spec.column_names if c not in columns])
        },
        landed=landed_sample,
        typed=typed_sample,
    )
