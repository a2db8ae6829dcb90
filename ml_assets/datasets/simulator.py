"""Landing-zone simulator: replay a dataset into daily landing files, with optional drift and corruption.

It writes what an upstream system would: ``<landing>/<YYYY-MM-DD>/<dataset>-<nn>.csv|.parquet``, one folder per
UTC day, each file written under a temporary name and renamed so a sensor never sees half a file. Everything is
deterministic by seed. Drift (shifted numerics, a changed category mix, a changed positive rate) and corruption
(the failure modes the data checks must catch) are derived from the DatasetSpec, so they work for any dataset and
fail with a clear message when they name the wrong column.

Time and ids, from the source when it has them:

- A source with the spec's time column is replayed in its real time order. ``time_mode="scale"`` (default) maps
  the source's whole time span linearly onto the landing days, so order and relative density are kept (a busy
  month of the source is a busy landing day) and the newest source rows land on the newest day: the time split,
  drift checks and monitoring see real time. Rows that share a time (a date, a year number) are spread over the
  interval until the next distinct time, so a coarse time column still fills every day. ``time_mode="keep"``
  lands every row on its real day and time (only the days from ``start`` to ``end``). Without a time column,
  rows are shuffled, dealt evenly over the days and given times uniform over their day.
- The source's ids are kept when it has the id column, non-null and unique (text ids too). Otherwise, and for
  rows drawn beyond the source (``rows_per_day``) or renumbered (``first_id``), ids are generated: numbers from 1
  (from ``first_id``), as text ``id-<n>`` for a text id column, and ``<source id>-r<n>`` for a repeated text id.
"""

from __future__ import annotations

import io
import itertools
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path
from typing import Any, Literal, get_args

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pa_csv

from ml_assets.dataset import Column, DatasetSpec, Role, SpecError, read_demo_data
from resources.atomic_files import write_atomic

Format = Literal["parquet", "csv"]
TimeMode = Literal["scale", "keep"]
CorruptionKind = Literal[
    "missing_column",
    "wrong_type",
    "out_of_domain",
    "out_of_range",
    "null_burst",
    "duplicate_ids",
    "empty_file",
    "unparseable_file",
    "bad_label",
]
CORRUPTION_KINDS: tuple[str, ...] = get_args(CorruptionKind)
FILE_CORRUPTIONS = ("empty_file", "unparseable_file")  # replace the day's last file; its rows never land
MS_PER_DAY = 86_400_000


class SimulationError(ValueError):
    """A simulation request that cannot be carried out, naming the option, column or day at fault."""


# ---- drift -----------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class DriftConfig:
    """Distribution drift applied to every day from ``start`` (inclusive) to the end of the replay.

    ``numeric_shift``: {numeric column: shift in units of that column's standard deviation in the source}.
    ``category_mix``: {categorical column: {category: share}}; rows are resampled so the named categories take
    those shares, the others (and nulls) share what is left in their source proportions.
    ``label_shift``: the positive rate to resample towards. ``ramp_days`` > 0 makes the drift gradual, reaching
    full strength on day ``start + ramp_days - 1``.
    """

    start: date
    numeric_shift: dict[str, float] = field(default_factory=dict)
    category_mix: dict[str, dict[str, float]] = field(default_factory=dict)
    label_shift: float | None = None
    ramp_days: int = 0

    @property
    def resamples(self) -> bool:
        return bool(self.category_mix) or self.label_shift is not None

    def strength(self, day: date) -> float:
        """0 before ``start``, then 1 (or a linear ramp over ``ramp_days``)."""
        if day < self.start:
            return 0.0
        if self.ramp_days <= 1:
            return 1.0
        return min(1.0, ((day - self.start).days + 1) / self.ramp_days)

    def validate(self, spec: DatasetSpec) -> None:
        """Raise SimulationError unless every named column exists and has a role this drift applies to."""
        if self.ramp_days < 0:
            raise SimulationError(f"drift ramp_days must be >= 0, got {self.ramp_days}")
        for name, shift in self.numeric_shift.items():
            col = _column(spec, name, "drift numeric_shift")
            if col.role != Role.NUMERIC:
                raise SimulationError(
                    f"drift numeric_shift: column {name!r} has role {col.role.value!r}, needs a numeric feature "
                    f"(one of {spec.numeric_features})"
                )
            if not np.isfinite(shift):
                raise SimulationError(f"drift numeric_shift: shift of {name!r} must be finite, got {shift}")
        for name, mix in self.category_mix.items():
            col = _column(spec, name, "drift category_mix")
            if col.role not in (Role.CATEGORICAL, Role.SENSITIVE):
                hint = " (use label_shift for the target)" if col.role == Role.TARGET else ""
                raise SimulationError(
                    f"drift category_mix: column {name!r} has role {col.role.value!r}, needs a categorical or "
                    f"sensitive column{hint}"
                )
            unknown = [c for c in mix if c not in (col.categories or [])]
            if unknown:
                raise SimulationError(
                    f"drift category_mix: {unknown} are not categories of {name!r} (allowed: {col.categories})"
                )
            if not mix or any(not 0.0 <= w <= 1.0 for w in mix.values()) or sum(mix.values()) > 1.0 + 1e-9:
                raise SimulationError(
                    f"drift category_mix: shares of {name!r} must each be in [0, 1] and sum to at most 1, got {mix}"
                )
        if self.label_shift is not None and not 0.0 < self.label_shift < 1.0:
            raise SimulationError(f"drift label_shift: a positive rate in (0, 1), got {self.label_shift}")


# ---- corruption ------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Corruption:
    """One failure mode injected into one day: ``kind`` on ``column`` (default from the spec's roles).

    ``fraction`` is the share of the day's rows affected by row-level kinds (wrong_type, out_of_domain,
    out_of_range, null_burst, duplicate_ids, bad_label); missing_column drops the column from every file of the
    day; empty_file and unparseable_file replace the day's last file (its rows never land).
    """

    kind: CorruptionKind
    day: date
    column: str | None = None
    fraction: float = 0.2

    def resolve(self, spec: DatasetSpec) -> Corruption:
        """This corruption with its column chosen and checked against the spec, or a SimulationError."""
        where = f"corruption {self.kind}@{self.day}"
        if self.kind not in CORRUPTION_KINDS:
            raise SimulationError(f"{where}: unknown kind, choose one of {', '.join(CORRUPTION_KINDS)}")
        if not 0.0 < self.fraction <= 1.0:
            raise SimulationError(f"{where}: fraction must be in (0, 1], got {self.fraction}")
        if self.kind in FILE_CORRUPTIONS:
            if self.column is not None:
                raise SimulationError(f"{where}: a file-level corruption takes no column (got {self.column!r})")
            return self
        name = self.column or _default_column(spec, self.kind)
        col = _column(spec, name, where)
        _check_role(spec, self.kind, col, where)
        return Corruption(self.kind, self.day, name, self.fraction)


def _default_column(spec: DatasetSpec, kind: str) -> str:
    features = spec.feature_columns
    pick: list[Column]
    if kind in ("missing_column", "wrong_type", "out_of_range"):
        pick = [c for c in features if c.role == Role.NUMERIC and (kind != "out_of_range" or _bounded(c))]
    elif kind == "out_of_domain":
        pick = [c for c in features if c.role == Role.CATEGORICAL and c.severity == "error"]
        pick = pick or [c for c in spec.columns if c.role in (Role.CATEGORICAL, Role.SENSITIVE)]
    elif kind == "null_burst":
        pick = [c for c in features if not c.nullable] or [spec.target]
    elif kind == "duplicate_ids":
        pick = [spec.id]
    else:  # bad_label
        pick = [spec.target]
    if not pick:
        raise SimulationError(f"corruption {kind}: the spec has no column it applies to; name one with column=")
    return pick[0].name


def _bounded(col: Column) -> bool:
    return col.range is not None and (col.range.min is not None or col.range.max is not None)


def _check_role(spec: DatasetSpec, kind: str, col: Column, where: str) -> None:
    problem = None
    if kind == "wrong_type" and col.landed_dtype not in ("int64", "float64", "datetime", "bool"):
        problem = f"needs a column that lands numeric, datetime or bool, {col.name!r} lands as {col.landed_dtype}"
    elif kind == "out_of_domain" and not col.categories:
        problem = f"needs a column with categories, {col.name!r} has none"
    elif kind == "out_of_range" and not _bounded(col):
        problem = f"needs a numeric column with a range in the spec, {col.name!r} has none"
    elif kind == "null_burst" and col.nullable:
        problem = f"needs a non-nullable column, {col.name!r} is nullable (nulls there are valid)"
    elif kind == "duplicate_ids" and col.name != spec.id.name:
        problem = f"applies to the id column {spec.id.name!r}, not {col.name!r}"
    elif kind == "bad_label" and col.name != spec.target.name:
        problem = f"applies to the target column {spec.target.name!r}, not {col.name!r}"
    if problem:
        raise SimulationError(f"{where}: {problem}")


def _column(spec: DatasetSpec, name: str, where: str) -> Column:
    try:
        return spec.column(name)
    except KeyError:
        raise SimulationError(
            f"{where}: dataset {spec.name!r} has no column {name!r} (columns: {', '.join(spec.column_names)})"
        ) from None


# ---- the replay ------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class SimulatedFile:
    """One file the simulator wrote, with what went into it."""

    path: Path
    day: date
    rows: int
    drift: float = 0.0
    corruptions: tuple[str, ...] = ()


def simulate(spec: DatasetSpec, landing_root: Path, start: date, end: date, **options: Any) -> list[Path]:
    """Replay the spec's demo data (or ``source``) into daily landing files; return their paths.

    ``options`` are ``replay``'s keywords; ``replay`` also returns a record per file.
    """
    return [f.path for f in replay(spec, landing_root, start, end, **options)]


def replay(
    spec: DatasetSpec,
    landing_root: Path,
    start: date,
    end: date,
    *,
    source: pd.DataFrame | None = None,
    rows_per_day: int | None = None,
    files_per_day: int = 1,
    fmt: Format = "parquet",
    seed: int = 0,
    drift: DriftConfig | None = None,
    corruptions: Sequence[Corruption] = (),
    first_id: int | None = None,
    file_stem: str | None = None,
    time_mode: TimeMode = "scale",
) -> list[SimulatedFile]:
    """``simulate`` with a record per file (day, rows, drift strength, corruptions), for reports and tests.

    Rows are shuffled once by seed and dealt to the days (all of them by default), in source time order when the
    source has a time column (see the module docstring). With ``rows_per_day`` beyond what the source holds,
    rows are sampled with replacement and the extra ones get fresh ids, so ids stay unique across the whole
    replay; with a time column, ``rows_per_day`` x days rows are drawn and land by their source time, so a day's
    count follows the source's density. ``first_id``: number every landed row from there instead (rows replayed
    again after an earlier replay are new records, not the same ones twice). ``file_stem``: name files
    ``<stem>-<nn>`` instead of ``<dataset>-<nn>`` (a later batch for a day).
    """
    if end < start:
        raise SimulationError(f"end {end} is before start {start}")
    if fmt not in ("parquet", "csv"):
        raise SimulationError(f"format must be 'parquet' or 'csv', got {fmt!r}")
    if files_per_day < 1:
        raise SimulationError(f"files_per_day must be >= 1, got {files_per_day}")
    if rows_per_day is not None and rows_per_day < 1:
        raise SimulationError(f"rows_per_day must be >= 1, got {rows_per_day}")
    days = [start + timedelta(days=i) for i in range((end - start).days + 1)]
    if drift is not None:
        drift.validate(spec)
    fixes = [c.resolve(spec) for c in corruptions]
    outside = [f"{c.kind}@{c.day}" for c in fixes if not start <= c.day <= end]
    if outside:
        raise SimulationError(f"corruptions {outside} fall outside the replay {start} .. {end}")

    if time_mode not in ("scale", "keep"):
        raise SimulationError(f"time_mode must be 'scale' or 'keep', got {time_mode!r}")
    src, times = _prepare_source(spec, source)
    if time_mode == "keep" and times is None:
        raise SimulationError(
            f"time_mode 'keep' needs source times, but the source has no usable {spec.time.name!r} column"
        )
    rng = np.random.default_rng(seed)
    dealt = _deal(spec, src, days, rows_per_day, rng, times, time_mode)
    chunks, ids, offsets = dealt.rows, dealt.ids, dealt.offsets
    if first_id is not None:
        bounds = np.cumsum([0, *(len(i) for i in ids)]) + first_id
        ids = [np.arange(a, b, dtype=np.int64) for a, b in itertools.pairwise(bounds)]
    next_id = _next_number(ids, first_id)
    stds = {
        c: float(pd.to_numeric(src[c], errors="coerce").std() or 0.0) for c in (drift.numeric_shift if drift else {})
    }

    landing_root = Path(landing_root)
    written: list[SimulatedFile] = []
    for day, idx, day_ids, day_offsets in zip(days, chunks, ids, offsets, strict=True):
        day_rng = np.random.default_rng([seed, day.toordinal()])
        strength = drift.strength(day) if drift is not None else 0.0
        if drift is not None and strength > 0 and drift.resamples:
            idx = _resample(spec, src, drift, strength, len(idx), day_rng)
            day_ids = np.arange(next_id, next_id + len(idx), dtype=np.int64)
            day_offsets = None  # new draws: times uniform over the day
            next_id += len(idx)
        frame = _day_frame(spec, src, day, idx, day_ids, day_rng, day_offsets)
        if drift is not None and strength > 0:
            frame = _shift_numeric(spec, frame, drift, strength, stds)
        todays = [c for c in fixes if c.day == day]
        for c in todays:
            if c.kind not in FILE_CORRUPTIONS:
                frame = _corrupt_rows(spec, frame, c, day_rng)
        written += _write_day(spec, landing_root, day, frame, files_per_day, fmt, todays, strength, file_stem)
    return written


def replayed_day_rows(spec: DatasetSpec, source: pd.DataFrame, n_days: int, seed: int = 0) -> list[np.ndarray]:
    """The source row positions each of ``n_days`` landing days receives when ``replay`` lands the whole source
    (its defaults: time order scaled onto the days, or dealt evenly without a time column), without writing files:
    what ``spec infer`` sizes the volume and label coverage rules from."""
    src, times = _prepare_source(spec, source)
    days = [date(2000, 1, 1) + timedelta(days=i) for i in range(n_days)]  # scale mode: only their count matters
    return _deal(spec, src, days, None, np.random.default_rng(seed), times, "scale").rows


def _prepare_source(spec: DatasetSpec, source: pd.DataFrame | None) -> tuple[pd.DataFrame, np.ndarray | None]:
    """The source's spec columns (ids kept when usable, else numbered), and its times in ms when it has them."""
    if source is None:
        try:
            source = read_demo_data(spec)
        except SpecError as e:
            raise SimulationError(f"{e}; pass source= or use synthetic rows (ml-assets simulate --synthetic)") from None
    needed = [c for c in spec.column_names if c not in (spec.id.name, spec.time.name)]
    missing = [c for c in needed if c not in source.columns]
    if missing:
        raise SimulationError(f"the source rows lack spec columns {missing} of dataset {spec.name!r}")
    if len(source) == 0:
        raise SimulationError("the source has no rows to replay")
    keep = [c for c in spec.column_names if c in source.columns and c != spec.time.name]
    src = pd.concat([source[c] for c in keep], axis=1, copy=False)  # no copy: rows are taken by position
    idcol = spec.id.name
    if idcol not in src.columns or src[idcol].isna().any() or not src[idcol].is_unique:
        src[idcol] = np.arange(1, len(src) + 1, dtype=np.int64)  # ids the replay can keep unique
    return src, _source_times(spec, source)


def _source_times(spec: DatasetSpec, source: pd.DataFrame) -> np.ndarray | None:
    """The source's event times as UTC milliseconds, or None when it has no time column (or one with gaps)."""
    name = spec.time.name
    if name not in source.columns:
        return None
    times = spec.typed(name, source[name])
    if times.isna().any():
        return None
    return times.to_numpy(dtype="datetime64[ms]").astype(np.int64)


@dataclass(frozen=True)
class _Dealt:
    """Per landing day: source row positions, their ids, and their times in ms after midnight (None: draw)."""

    rows: list[np.ndarray]
    ids: list[np.ndarray]
    offsets: list[np.ndarray | None]


def _deal(
    spec: DatasetSpec,
    src: pd.DataFrame,
    days: list[date],
    rows_per_day: int | None,
    rng: np.random.Generator,
    times: np.ndarray | None,
    time_mode: TimeMode,
) -> _Dealt:
    """Source row positions and ids per day: one shuffle, extra rows with replacement and fresh ids, then dealt
    evenly (no source times) or by source time."""
    n, n_days = len(src), len(days)
    order = rng.permutation(n)
    if rows_per_day is None:
        picks = order
    else:
        total = rows_per_day * n_days
        extra = max(0, total - n)
        picks = np.concatenate([order[:total], rng.integers(0, n, size=extra)])
    ids = _picked_ids(src[spec.id.name], picks, n)
    if times is None:
        if rows_per_day is None:
            rows, day_ids = np.array_split(picks, n_days), np.array_split(ids, n_days)
        else:
            cuts = np.arange(rows_per_day, rows_per_day * n_days, rows_per_day)
            rows, day_ids = np.split(picks, cuts), np.split(ids, cuts)
        return _Dealt(rows, day_ids, [None] * n_days)
    by_time = np.argsort(times[picks], kind="stable")
    picks, ids, stamps = picks[by_time], ids[by_time], times[picks][by_time]
    if time_mode == "keep":
        day_index = (stamps // MS_PER_DAY) - np.datetime64(days[0], "D").astype(np.int64)
        offsets = stamps % MS_PER_DAY
    else:
        spread = _spread_ties(stamps)
        first, last = int(times.min()), max(int(times.max()), float(spread.max()))
        position = (spread - first) / max(last - first, 1) * n_days  # [0, n_days]: the span onto the days
        day_index = np.minimum(np.floor(position), n_days - 1).astype(np.int64)
        offsets = np.minimum(((position - day_index) * MS_PER_DAY).astype(np.int64), MS_PER_DAY - 1)
    found = [np.flatnonzero(day_index == i) for i in range(n_days)]  # rows outside the days (keep) never land
    return _Dealt([picks[f] for f in found], [ids[f] for f in found], [offsets[f] for f in found])


def _spread_ties(stamps: np.ndarray) -> np.ndarray:
    """Sorted source times (ms) with each run of equal times spread evenly over the interval until the next
    distinct time (the last run over as long as the interval before it), as float ms; distinct times stay.

    A date stands for its day and a year number for its year: in scale mode a source of five year numbers mapped as
    five instants onto twelve landing days would leave seven days empty (pydataset's flchain and rwm5yr did), which
    the inferred spec then refused as days without rows. Spread, every day gets its share, in time order."""
    values, starts, counts = np.unique(stamps, return_index=True, return_counts=True)
    if len(values) == len(stamps):
        return stamps.astype(np.float64)
    widths = np.diff(values).astype(np.float64)
    widths = np.append(widths, widths[-1] if len(widths) else float(MS_PER_DAY))
    rank = np.arange(len(stamps)) - np.repeat(starts, counts)
    return stamps + rank / np.repeat(counts, counts) * np.repeat(widths, counts)


def _picked_ids(source_ids: pd.Series, picks: np.ndarray, n: int) -> np.ndarray:
    """Ids of the picked rows; rows picked beyond the first ``n`` are repeats and get fresh ids."""
    if pd.api.types.is_integer_dtype(source_ids) or pd.api.types.is_float_dtype(source_ids):
        base = source_ids.to_numpy(dtype=np.int64)
        ids = base[picks]
        if len(picks) > n:
            ids[n:] = int(base.max()) + 1 + np.arange(len(picks) - n)
        return ids
    base = source_ids.astype("string").to_numpy(dtype=object)  # text ids are kept as they are
    ids = base[picks]
    if len(picks) > n:
        ids[n:] = [f"{v}-r{i}" for i, v in enumerate(ids[n:])]
    return ids


def _next_number(ids: list[np.ndarray], first_id: int | None) -> int:
    """The first number no generated id of the replay uses (for rows drawn by drift)."""
    numeric = [i for i in ids if len(i) and i.dtype != object]
    if numeric:
        return int(max(i.max() for i in numeric)) + 1
    return (first_id or 1) + sum(len(i) for i in ids)


def _id_values(col: Column, ids: np.ndarray) -> pd.Series:
    if ids.dtype == object:  # the source's own text ids
        return pd.Series(ids, dtype="string")
    if col.dtype == "string":
        return pd.Series(ids.astype(str), dtype="string").radd("id-")
    if col.dtype == "float64":
        return pd.Series(ids, dtype="float64")
    return pd.Series(ids, dtype="int64")


def _day_frame(
    spec: DatasetSpec,
    src: pd.DataFrame,
    day: date,
    idx: np.ndarray,
    ids: np.ndarray,
    rng: np.random.Generator,
    offsets: np.ndarray | None = None,
) -> pd.DataFrame:
    """The day's rows in event-time order, one gather per column, no copies: at ``offsets`` (ms after the UTC
    midnight, from source times) or, without them, at times uniform over the day.

    Times are millisecond-resolution and timezone-aware, so every reader sees UTC.
    """
    if offsets is None:
        offsets = rng.integers(0, MS_PER_DAY, size=len(idx), dtype=np.int64)
    order = np.argsort(offsets, kind="stable")
    stamps = np.datetime64(day, "ms") + offsets[order].astype("timedelta64[ms]")
    rows = idx[order]
    columns = []
    for name in spec.column_names:
        if name == spec.id.name:
            col = _id_values(spec.id, ids[order])
        elif name == spec.time.name:
            col = pd.Series(stamps, dtype="datetime64[ms]").dt.tz_localize("UTC")
        else:
            col = pd.Series(src[name].array.take(rows))
        col.name = name  # in place: Series.rename would copy the column
        columns.append(col)
    return pd.concat(columns, axis=1, copy=False)


def _resample(
    spec: DatasetSpec, src: pd.DataFrame, drift: DriftConfig, strength: float, n: int, rng: np.random.Generator
) -> np.ndarray:
    """Draw ``n`` source rows whose category and label shares match the drift, by raking row weights.

    Iterative proportional fitting over every drifted margin gives exact shares in expectation even when the
    margins are correlated (a category mix and a label rate together), while rows keep their real joint values.
    """
    margins: list[tuple[np.ndarray, np.ndarray]] = []  # (group code per row, target share per group)
    for name, mix in drift.category_mix.items():
        cats = spec.column(name).categories or []
        lookup = {c: i for i, c in enumerate(cats)}
        codes = pd.Categorical(spec.typed(name, src[name]), categories=cats).codes.astype(np.int64)
        groups = np.where(codes < 0, len(cats), codes)  # values outside the spec and nulls: one last group
        margins.append((groups, _mix_shares(groups, len(cats) + 1, [lookup[c] for c in mix], list(mix.values()))))
    if drift.label_shift is not None:
        positive = (spec.typed(spec.target.name, src[spec.target.name]) == spec.positive_label).to_numpy(
            dtype=bool, na_value=False
        )
        groups = positive.astype(np.int64)
        margins.append((groups, np.array([1.0 - drift.label_shift, drift.label_shift])))
    weights = np.ones(len(src))
    for groups, target in margins:  # blend towards the drifted shares by strength
        source_shares = np.bincount(groups, minlength=len(target)) / len(groups)
        target[:] = (1 - strength) * source_shares + strength * target
    for _ in range(50):
        for groups, target in margins:
            current = np.bincount(groups, weights=weights, minlength=len(target))
            current = current / current.sum()
            factor = np.divide(target, current, out=np.zeros_like(target), where=current > 0)
            weights = weights * factor[groups]
    if weights.sum() <= 0:
        raise SimulationError("drift: no source rows have the requested categories")
    return rng.choice(len(src), size=n, replace=True, p=weights / weights.sum())


def _mix_shares(groups: np.ndarray, k: int, named: list[int], shares: list[float]) -> np.ndarray:
    """Target share per group: the named shares, the rest spread over the others in source proportions."""
    source = np.bincount(groups, minlength=k).astype(float)
    target = np.zeros(k)
    target[named] = shares
    others = np.setdiff1d(np.arange(k), named)
    left = max(0.0, 1.0 - sum(shares))
    if source[others].sum() > 0:
        target[others] = left * source[others] / source[others].sum()
    return target / target.sum()


def _shift_numeric(
    spec: DatasetSpec, frame: pd.DataFrame, drift: DriftConfig, strength: float, stds: dict[str, float]
) -> pd.DataFrame:
    """Add ``shift * std`` to each named column, kept inside the spec's range: drift, not corruption."""
    for name, shift in drift.numeric_shift.items():
        col = spec.column(name)
        values = pd.to_numeric(frame[name], errors="coerce").astype("float64") + strength * shift * stds[name]
        if col.range is not None:
            values = values.clip(col.range.min, col.range.max)
        if col.dtype == "int64":
            lo = np.ceil(col.range.min) if col.range and col.range.min is not None else None
            hi = np.floor(col.range.max) if col.range and col.range.max is not None else None
            frame[name] = values.round().clip(lo, hi).astype("Int64")
        else:
            frame[name] = values
    return frame


def _corrupt_rows(spec: DatasetSpec, frame: pd.DataFrame, c: Corruption, rng: np.random.Generator) -> pd.DataFrame:
    name = c.column or ""
    n = len(frame)
    if c.kind == "missing_column":
        return frame.drop(columns=[name])
    if n == 0:
        return frame
    k = max(1, round(c.fraction * n))
    rows = np.sort(rng.choice(n, size=k, replace=False))
    col = spec.column(name)
    if c.kind == "wrong_type":  # the whole column lands as text, some of it not numbers at all
        text = frame[name].astype("string").astype(object)
        text.iloc[rows] = [f"n/a-{i}" for i in range(k)]
        frame[name] = text.astype("string")
    elif c.kind in ("out_of_domain", "bad_label") and col.integer_coded:  # codes no category has
        codes = pd.to_numeric(frame[name], errors="coerce").astype("Int64")
        top = max(int(x) for x in col.categories or ["0"])
        codes.iloc[rows] = top + 1 + (np.arange(k) % 3 if c.kind == "out_of_domain" else 0)
        frame[name] = codes
    elif c.kind in ("out_of_domain", "bad_label"):
        text = frame[name].astype("string")
        if c.kind == "bad_label":  # a real-world slip: adult.test writes ">50K." for ">50K"
            bad = (text.iloc[rows].fillna("unknown") + ".").to_numpy(dtype=object)
        else:
            bad = np.array([f"unseen-{name}-{i % 3}" for i in range(k)], dtype=object)
        text.iloc[rows] = bad
        frame[name] = text
    elif c.kind == "out_of_range":
        frame[name] = _out_of_range(col, frame[name], rows)
    elif c.kind == "null_burst":
        values = frame[name]
        if pd.api.types.is_integer_dtype(values):
            values = values.astype("Int64")
        elif isinstance(values.dtype, pd.CategoricalDtype):
            values = values.astype("string")
        values = values.copy()
        values.iloc[rows] = None
        frame[name] = values
    elif c.kind == "duplicate_ids":  # rows re-sent with the id of another row of the same day
        others = np.setdiff1d(np.arange(n), rows)
        donors = rng.choice(others, size=k, replace=True) if len(others) else rows[:1].repeat(k)
        ids = frame[name].copy()
        ids.iloc[rows] = ids.iloc[donors].to_numpy()
        frame[name] = ids
    return frame


def _out_of_range(col: Column, values: pd.Series, rows: np.ndarray) -> pd.Series:
    """Values beyond the range by at least its width (or 1000 where one side is open), alternating sides."""
    lo = col.range.min if col.range else None
    hi = col.range.max if col.range else None
    width = (hi - lo) if lo is not None and hi is not None else 1000.0
    width = max(width, 1.0)
    above = np.arange(len(rows)) % 2 == 0 if lo is not None and hi is not None else np.full(len(rows), hi is not None)
    bad = np.where(above, (hi or 0.0) + width, (lo or 0.0) - width)
    out = pd.to_numeric(values, errors="coerce").astype("float64")
    out.iloc[rows] = bad
    return out.round().astype("Int64") if col.dtype == "int64" else out


# ---- writing ---------------------------------------------------------------------------------------------
def _write_day(
    spec: DatasetSpec,
    root: Path,
    day: date,
    frame: pd.DataFrame,
    files_per_day: int,
    fmt: Format,
    todays: list[Corruption],
    strength: float,
    file_stem: str | None = None,
) -> list[SimulatedFile]:
    folder = root / day.isoformat()
    folder.mkdir(parents=True, exist_ok=True)
    file_kinds = [c.kind for c in todays if c.kind in FILE_CORRUPTIONS]
    row_kinds = tuple(f"{c.kind}({c.column})" for c in todays if c.kind not in FILE_CORRUPTIONS)
    out = []
    parts = np.array_split(np.arange(len(frame)), files_per_day)
    for i, part in enumerate(parts):
        chunk = frame.iloc[part]
        path = folder / f"{file_stem or spec.name}-{i:02d}.{fmt}"
        last = i == files_per_day - 1
        kinds = row_kinds
        if last and "unparseable_file" in file_kinds:
            write_atomic(path, _unparseable_bytes(chunk, fmt))
            out.append(SimulatedFile(path, day, 0, strength, (*kinds, "unparseable_file")))
            continue
        if last and "empty_file" in file_kinds:
            chunk, kinds = chunk.iloc[:0], (*kinds, "empty_file")
        write_atomic(path, _encode(chunk, fmt))
        out.append(SimulatedFile(path, day, len(chunk), strength, kinds))
    return out


def _encode(frame: pd.DataFrame, fmt: Format) -> bytes:
    """File bytes that ``pd.read_parquet`` / ``pd.read_csv`` read back with the same columns.

    CSV goes through Arrow's writer: about three times faster than ``DataFrame.to_csv`` and it writes every
    timestamp in one format (``2026-11-01 08:26:57.000Z``), where pandas drops the fraction on whole seconds and
    a reader that infers the format from the first value then fails the others.
    """
    buf = io.BytesIO()
    if fmt == "parquet":
        frame.to_parquet(buf, index=False, engine="pyarrow", compression="zstd")
        return buf.getvalue()
    try:
        table = pa.Table.from_pandas(frame, preserve_index=False)
    except (pa.ArrowInvalid, pa.ArrowTypeError):  # mixed-type object columns: let pandas stringify them
        frame = frame.astype({c: "string" for c in frame.columns if frame[c].dtype == object})
        table = pa.Table.from_pandas(frame, preserve_index=False)
    pa_csv.write_csv(table, buf, pa_csv.WriteOptions(quoting_style="needed"))
    return buf.getvalue()


def _unparseable_bytes(frame: pd.DataFrame, fmt: Format) -> bytes:
    """Bytes neither the CSV nor the Parquet reader accepts: a truncated Parquet file, or binary garbage.

    The garbage is invalid UTF-8 with no Parquet magic, and if a reader forces a decoding its rows are ragged
    (2 fields a line, then 5), so even ``pd.read_csv(..., encoding="latin-1")`` raises.
    """
    garbage = b"\xff\xfe\xfa,\xfb\x80\n" + b"\x81,\x82\n" * 4 + b"\x83,\x84,\x85,\x86,\x87\n" * 4
    if fmt == "parquet":
        whole = _encode(frame, "parquet")
        cut = whole[: max(8, len(whole) // 2)]  # a transfer cut short: the footer (schema, row groups) is gone
        try:
            cut.decode("utf-8")
        except UnicodeDecodeError:
            return cut
    return garbage
