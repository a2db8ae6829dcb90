"""The landing zone: where daily data files arrive, and the quarantine where unreadable ones are kept.

Layout: ``<root>/<YYYY-MM-DD>/<name>.csv|.csv.gz|.parquet`` (``DayFolders``), one folder per daily partition.
``batches`` reads a file in bounded batches with the same types as ``read`` gives the whole file (CSV through
Arrow's parser with pandas' options and type inference, Parquet through its own types), so a day of any size is
read in constant memory. A file that cannot be parsed is moved (never deleted) to ``<quarantine>/<YYYY-MM-DD>/<name>`` with ``<name>.reason.txt`` beside it. Only
regular files are data: an entry with a data suffix that is a symbolic link (it could point anywhere on the
machine), a folder, a pipe or a device is refused by ``read`` with the reason, and quarantined like a bad file.
"""

from __future__ import annotations

import gzip
import os
import re
import shutil
import stat as stat_module
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from ml_assets.dataset import is_parquet, read_table
from resources.day_folders import DayFolders


class LandingFileError(Exception):
    """A landing file that could not be read, naming the file and the problem."""

    def __init__(self, path: Path, problem: str):
        super().__init__(f"landing file {path}: {problem}")
        self.path = path
        self.problem = problem


# what ``pandas.read_csv(engine="pyarrow")`` passes to Arrow (``ml_assets.dataset.read_table``), so a file read in
# batches gets the values and types the whole file gets
CSV_NULLS = [
    "", "#N/A", "#N/A N/A", "#NA", "-1.#IND", "-1.#QNAN", "-NaN", "-nan", "1.#IND", "1.#QNAN", "<NA>", "N/A", "NA",
    "NULL", "NaN", "None", "n/a", "nan", "null",
]  # fmt: skip
CSV_CONVERT = {
    "null_values": CSV_NULLS,
    "true_values": ["1", "True", "TRUE", "true"],
    "false_values": ["0", "False", "FALSE", "false"],
    "strings_can_be_null": True,
}
# Arrow's streaming CSV reader fixes each column's type on the first block; a later value that does not fit
# widens the column one step along this chain (the order of Arrow's own inference) and the file is read again
WIDENING: tuple[pa.DataType, ...] = (pa.int64(), pa.bool_(), pa.timestamp("s"), pa.float64(), pa.string())
BLOCK_BYTES = 1 << 20  # bytes of CSV per Arrow block (Arrow's default, as pandas uses)
_CONVERSION = re.compile(r"In CSV column #(\d+): .*CSV conversion error to ([^:]+):")


class ColumnWidened(Exception):
    """A CSV column whose type, inferred on the file's first block, does not hold a later value: read the file
    again with ``column`` as ``to`` (the whole file's inference would have given a wider type)."""

    def __init__(self, path: Path, column: str, to: pa.DataType):
        super().__init__(f"landing file {path}: column {column!r} widens to {to}")
        self.path, self.column, self.to = path, column, to


@dataclass(frozen=True)
class LandedFile:
    path: Path
    frame: pd.DataFrame
    bytes: int


class LandingZone(DayFolders):
    """Daily landing folders and their quarantine, on a local or mounted filesystem."""

    quarantine_root: str

    def files(self, day: str) -> list[Path]:
        """The entries landed for a day with a data suffix, in name order; temporary and hidden files are not data.

        Entries that are not regular files are listed too, so that ``read`` refuses them by name rather than the
        day silently losing their rows.
        """
        return self.entries(day)

    def read(self, path: Path) -> LandedFile:
        """Parse one regular file as it landed (types as the file gives them), or raise LandingFileError."""
        problem = not_a_regular_file(path)
        if problem:
            raise LandingFileError(path, problem)
        size = path.stat().st_size
        if size == 0:
            return LandedFile(path, pd.DataFrame(), 0)
        try:  # CSV through Arrow's parser: typed columns let the GX type rules check dtypes, not values
            frame = read_table(path)
        except pd.errors.EmptyDataError:
            return LandedFile(path, pd.DataFrame(), size)
        except Exception as e:  # every reader error means the same thing here: unparseable
            raise LandingFileError(path, f"cannot be parsed: {type(e).__name__}: {e}") from e
        return LandedFile(path, frame, size)

    def batches(
        self, path: Path, batch_rows: int, widened: dict[str, pa.DataType] | None = None
    ) -> Iterator[pd.DataFrame]:
        """One landing file as frames of at most ``batch_rows`` rows, typed as ``read`` types the whole file; the
        first frame may be empty (it carries the file's columns). Raises LandingFileError when it cannot be parsed
        (possibly after some frames), ColumnWidened when a CSV column must be read again wider."""
        problem = not_a_regular_file(path)
        if problem:
            raise LandingFileError(path, problem)
        if path.stat().st_size == 0:
            return
        try:
            if is_parquet(path):
                yield from _parquet_batches(path, batch_rows)
            else:
                yield from _csv_batches(path, batch_rows, widened or {})
        except ColumnWidened:
            raise
        except pa.ArrowInvalid as e:
            raise LandingFileError(path, f"cannot be parsed: {type(e).__name__}: {e}") from e
        except Exception as e:  # every reader error means the same thing here: unparseable
            raise LandingFileError(path, f"cannot be parsed: {type(e).__name__}: {e}") from e

    def quarantine(self, path: Path, day: str, reason: str) -> Path:
        """Move a bad file out of the landing zone, keeping it and a note of why for inspection."""
        target_dir = Path(self.quarantine_root) / day
        target_dir.mkdir(parents=True, exist_ok=True)
        target = target_dir / path.name
        if target.exists():
            stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%f")
            target = target_dir / f"{path.stem}.{stamp}{path.suffix}"
        shutil.move(str(path), target)
        target.with_name(target.name + ".reason.txt").write_text(
            f"file: {path}\nquarantined_at: {datetime.now(UTC).isoformat()}\nreason: {reason}\n"
        )
        return target


def not_a_regular_file(path: Path) -> str | None:
    """Why ``path`` is not landed data (a link, a folder, a pipe, ...), or None for a regular file."""
    mode = os.lstat(path).st_mode
    if stat_module.S_ISREG(mode):
        return None
    if stat_module.S_ISLNK(mode):
        return f"is a symbolic link (to {os.readlink(path)}); landing files must be regular files, not links"
    kind = "a folder" if stat_module.S_ISDIR(mode) else "a pipe, socket or device"
    return f"is {kind}, not a regular file; only regular CSV or Parquet files are landed data"


def _parquet_batches(path: Path, batch_rows: int) -> Iterator[pd.DataFrame]:
    """Parquet in batches, each converted as ``pd.read_parquet`` converts the whole file (its pandas metadata)."""
    file = pq.ParquetFile(path)
    schema = file.schema_arrow
    yield schema.empty_table().to_pandas()
    for batch in file.iter_batches(batch_size=batch_rows):
        yield pa.Table.from_batches([batch], schema=schema).to_pandas()


def _csv_batches(path: Path, batch_rows: int, widened: dict[str, pa.DataType]) -> Iterator[pd.DataFrame]:
    """CSV (gzip allowed) streamed through Arrow with pandas' options; Arrow-backed columns like ``read``."""
    reader = None
    try:
        reader = pacsv.open_csv(
            pa.input_stream(str(path), compression="detect"),
            read_options=pacsv.ReadOptions(block_size=BLOCK_BYTES),
            parse_options=pacsv.ParseOptions(ignore_empty_lines=True),
            convert_options=pacsv.ConvertOptions(column_types=widened, **CSV_CONVERT),
        )
        yield reader.schema.empty_table().to_pandas(types_mapper=pd.ArrowDtype)
        blocks: list[pa.RecordBatch] = []  # Arrow's blocks are a few thousand rows: gathered up to batch_rows
        for block in reader:
            blocks.append(block)
            if sum(b.num_rows for b in blocks) >= batch_rows:
                yield from _frames(blocks, batch_rows)
                blocks = []
        yield from _frames(blocks, batch_rows)
    except pa.ArrowInvalid as e:
        wider = _widening(path, e, widened, reader.schema.names if reader is not None else _header(path))
        if wider is None:
            raise
        raise wider from e
    finally:
        if reader is not None:
            reader.close()


def _frames(blocks: list[pa.RecordBatch], batch_rows: int) -> Iterator[pd.DataFrame]:
    """Arrow-backed frames of at most ``batch_rows`` rows from consecutive blocks of one file."""
    if not blocks:
        return
    table = pa.Table.from_batches(blocks)
    for start in range(0, table.num_rows, batch_rows):
        yield table.slice(start, batch_rows).to_pandas(types_mapper=pd.ArrowDtype)


def _widening(
    path: Path, error: pa.ArrowInvalid, widened: dict[str, pa.DataType], names: list[str]
) -> ColumnWidened | None:
    """The next wider type of the CSV column a conversion error names, or None when it is no such error."""
    found = _CONVERSION.search(str(error))
    if not found:
        return None
    column = names[int(found.group(1))]
    kinds = [str(t) for t in WIDENING]
    failed = found.group(2).strip()
    later = WIDENING[kinds.index(failed) + 1 :] if failed in kinds else WIDENING
    return ColumnWidened(path, column, later[0]) if later else None


def _header(path: Path) -> list[str]:
    """A CSV file's column names, from its first line through Arrow's parser."""
    with gzip.open(path, "rb") if path.name.lower().endswith(".gz") else path.open("rb") as stream:
        first = stream.readline()
    return pacsv.read_csv(pa.py_buffer(first), read_options=pacsv.ReadOptions(use_threads=False)).column_names
