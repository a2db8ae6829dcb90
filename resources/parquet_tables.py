"""Partitioned Parquet tables: the data plane's storage, written and read in bounded Arrow batches.

A day of raw rows or features can be larger than one process's memory, and a training window is many days, so
these tables are never one frame: a partition is written batch by batch into one Parquet file (``TableWriter``)
and read back lazily through a ``TableScan``, a small typed record of which files, which declared columns and
which time range, that any process (a step, a torchrun rank on another node) can open. Files are immutable: a
partition materialized again gets a new file and its pointer (``CURRENT``) moves, so a training window cut
earlier keeps reading exactly the rows it was cut from. Column types come from the asset's declared schema
(``resources.warehouse_tables``), as in the warehouse: a value that does not take its type is refused by name.

``root`` is a directory (locally under ML_ASSETS_HOME, in a cluster on the shared volume every pod mounts) or an
fsspec URL (``s3://...`` with s3fs installed): pyarrow and DuckDB read both.
"""

from __future__ import annotations

import hashlib
import json
import posixpath
import uuid
from collections.abc import Iterable, Iterator, Sequence
from datetime import datetime
from typing import Any

import duckdb
import fsspec
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq
from dagster import ConfigurableIOManager, ConfigurableResource, InputContext, OutputContext
from fsspec.implementations.local import LocalFileSystem
from pydantic import BaseModel, ConfigDict, Field

from resources.warehouse_tables import (
    DUCKDB_TYPES,
    WarehouseError,
    conform,
    conform_read,
    declared_dtypes,
    quoted,
)

BATCH_ROWS = 65_536  # rows per Arrow batch read or written: a few MB per batch at any width
ROW_GROUP_ROWS = 131_072  # rows per Parquet row group: the unit a rank's shard is made of
CURRENT = "CURRENT"  # the pointer file naming a partition's current Parquet file
QUERY_MEMORY = "1GB"  # DuckDB's memory limit for queries over scans (it spills to disk beyond)

ARROW_TYPES: dict[str, pa.DataType] = {
    "Int64": pa.int64(),
    "int64": pa.int64(),
    "Int8": pa.int8(),
    "int8": pa.int8(),
    "float64": pa.float64(),
    "string[pyarrow]": pa.string(),
    "datetime64[ns]": pa.timestamp("ns"),
    "boolean": pa.bool_(),
}
# Arrow -> pandas without Python objects: text stays Arrow-backed, integers and booleans nullable
PANDAS_OF_ARROW = {
    pa.string(): pd.StringDtype("pyarrow"),
    pa.large_string(): pd.StringDtype("pyarrow"),
    pa.int64(): pd.Int64Dtype(),
    pa.int8(): pd.Int8Dtype(),
    pa.bool_(): pd.BooleanDtype(),
}


def arrow_schema(dtypes: dict[str, str]) -> pa.Schema:
    """The Parquet schema of a table whose columns are declared as pandas dtypes."""
    return pa.schema([pa.field(name, ARROW_TYPES[dtype]) for name, dtype in dtypes.items()])


def filesystem(url: str) -> tuple[Any, str]:
    return fsspec.core.url_to_fs(url)


class TableScan(BaseModel):
    """A lazy, typed read of Parquet files: the files, their declared columns, and optional row conditions.

    The conditions are plain values (a half-open time range on one column, columns that must not be null) so the
    record pickles and serializes to JSON: a launching step hands it to training processes as it is.
    """

    model_config = ConfigDict(frozen=True)

    files: tuple[str, ...] = Field(description="Parquet file paths or URLs, in reading order")
    dtypes: dict[str, str] = Field(description="declared pandas dtype of each column, in order")
    rows: int | None = Field(None, description="rows in the files, before the conditions (None: unknown)")
    version: str = Field("", description="content version of the files (hash of their writers' hashes)")
    time_column: str | None = None
    start: datetime | None = Field(None, description="keep rows with time_column >= start")
    end: datetime | None = Field(None, description="keep rows with time_column < end")
    not_null: tuple[str, ...] = Field((), description="keep rows where these columns hold a value")

    def where(
        self,
        *,
        time_column: str | None = None,
        start: datetime | None = None,
        end: datetime | None = None,
        not_null: Sequence[str] = (),
    ) -> TableScan:
        """This scan narrowed: a time range (intersected with any it has) and more not-null columns."""
        column = time_column or self.time_column
        if (start or end) and column is None:
            raise ValueError("a time range needs the time column")
        if self.time_column and column != self.time_column and (self.start or self.end):
            raise ValueError(f"this scan is already ranged on {self.time_column!r}, not {column!r}")
        lo = max((t for t in (self.start, start) if t is not None), default=None)
        hi = min((t for t in (self.end, end) if t is not None), default=None)
        return self.model_copy(
            update={
                "time_column": column,
                "start": lo,
                "end": hi,
                "not_null": tuple(dict.fromkeys((*self.not_null, *not_null))),
            }
        )

    def dataset(self) -> ds.Dataset:
        if not self.files:
            return ds.dataset(self.schema().empty_table())
        fs, _ = filesystem(self.files[0])
        paths = [filesystem(f)[1] for f in self.files]
        return ds.dataset(paths, schema=self.schema(), format="parquet", filesystem=fs)

    def schema(self) -> pa.Schema:
        return arrow_schema(self.dtypes)

    def expression(self) -> ds.Expression | None:
        """The scan's conditions as an Arrow filter, or None when it keeps every row."""
        parts: list[ds.Expression] = []
        if self.time_column and self.start is not None:
            parts.append(ds.field(self.time_column) >= pa.scalar(pd.Timestamp(self.start).as_unit("ns")))
        if self.time_column and self.end is not None:
            parts.append(ds.field(self.time_column) < pa.scalar(pd.Timestamp(self.end).as_unit("ns")))
        parts += [ds.field(c).is_valid() for c in self.not_null]
        if not parts:
            return None
        out = parts[0]
        for p in parts[1:]:
            out = out & p
        return out

    def count_rows(self) -> int:
        """Rows the scan keeps (from the files' metadata when it has no conditions)."""
        return int(self.dataset().count_rows(filter=self.expression()))

    def arrow_batches(
        self, columns: Sequence[str] | None = None, batch_rows: int = BATCH_ROWS
    ) -> Iterator[pa.RecordBatch]:
        """The kept rows as Arrow batches of at most ``batch_rows`` rows, files and row groups in order."""
        scanner = self.dataset().scanner(
            columns=list(columns) if columns is not None else None,
            filter=self.expression(),
            batch_size=batch_rows,
            use_threads=False,  # keeps the order of files and rows: samples and shards are reproducible
            batch_readahead=1,  # Arrow's defaults (16 batches, 4 files ahead) hold hundreds of MB of a window
            fragment_readahead=1,
        )
        for batch in scanner.to_batches():
            if batch.num_rows:
                yield batch

    def batches(self, columns: Sequence[str] | None = None, batch_rows: int = BATCH_ROWS) -> Iterator[pd.DataFrame]:
        """The kept rows as pandas frames of at most ``batch_rows`` rows, in the declared dtypes."""
        wanted = {c: self.dtypes[c] for c in (columns if columns is not None else self.dtypes)}
        for batch in self.arrow_batches(list(wanted), batch_rows):
            yield conform_read(to_pandas(batch), wanted, "table scan")

    def frame(self, columns: Sequence[str] | None = None) -> pd.DataFrame:
        """Every kept row in one frame: for scans known to be small (a sample, a day's labels), never a window."""
        wanted = {c: self.dtypes[c] for c in (columns if columns is not None else self.dtypes)}
        table = self.dataset().to_table(columns=list(wanted), filter=self.expression(), use_threads=False)
        return conform_read(to_pandas(table), wanted, "table scan")

    def sample(self, rows: int, seed: int = 0, columns: Sequence[str] | None = None) -> pd.DataFrame:
        """A uniform sample of at most ``rows`` kept rows, the same for the same seed and files; every row when
        the scan keeps no more than ``rows`` (so small data is judged exactly as before). The rows are picked out
        of each Arrow batch before any becomes pandas: memory follows the sample and a batch, not the scan."""
        total = self.count_rows()
        if total <= rows:
            return self.frame(columns)
        names = list(columns) if columns is not None else list(self.dtypes)
        chosen = np.sort(np.random.default_rng(seed).choice(total, size=rows, replace=False))
        parts, offset = [], 0
        for batch in self.arrow_batches(names):
            lo, hi = np.searchsorted(chosen, [offset, offset + batch.num_rows])
            if hi > lo:
                parts.append(batch.take(pa.array(chosen[lo:hi] - offset)))
            offset += batch.num_rows
        table = pa.Table.from_batches(parts) if parts else self.schema().select(names).empty_table()
        return conform_read(to_pandas(table), {c: self.dtypes[c] for c in names}, "table scan sample")

    def query(self, sql: str, params: Sequence[Any] | None = None) -> pd.DataFrame:
        """Run ``sql`` in DuckDB over the kept rows, visible as the view ``scan``; for aggregates and other small
        results (DuckDB streams the files and spills past ``QUERY_MEMORY``)."""
        with scan_connection(self) as connection:
            return connection.execute(sql, params or []).fetchdf()


class scan_connection:
    """An in-memory DuckDB connection where ``scan`` is a view of a TableScan's kept rows (memory bounded)."""

    def __init__(self, scan: TableScan, memory: str = QUERY_MEMORY):
        self.scan, self.memory = scan, memory

    def __enter__(self) -> duckdb.DuckDBPyConnection:
        # no external file cache: DuckDB would keep every Parquet byte it read, up to its memory limit
        self.connection = duckdb.connect(
            config={"memory_limit": self.memory, "threads": 2, "enable_external_file_cache": False}
        )
        self.connection.execute(f"CREATE VIEW scan_rows AS {self.source()}")
        conditions = []
        if self.scan.time_column and self.scan.start is not None:
            conditions.append(f"{quoted(self.scan.time_column)} >= TIMESTAMP '{pd.Timestamp(self.scan.start)}'")
        if self.scan.time_column and self.scan.end is not None:
            conditions.append(f"{quoted(self.scan.time_column)} < TIMESTAMP '{pd.Timestamp(self.scan.end)}'")
        conditions += [f"{quoted(c)} IS NOT NULL" for c in self.scan.not_null]
        where = f" WHERE {' AND '.join(conditions)}" if conditions else ""
        self.connection.execute(f"CREATE VIEW scan AS SELECT * FROM scan_rows{where}")
        return self.connection

    def source(self) -> str:
        """The scan's files read by DuckDB's own Parquet reader, each column cast to its declared type. Not the
        Arrow dataset: DuckDB scans that through Arrow's scanner, whose buffers (a whole row group per thread, and
        read-ahead) lie outside DuckDB's memory limit, and a query over a day of 1e7 rows took 2.8 GB."""
        if not self.scan.files:
            self.connection.register("scan_empty", self.scan.schema().empty_table())
            return "SELECT * FROM scan_empty"
        fs, _ = filesystem(self.scan.files[0])
        if isinstance(fs, LocalFileSystem):
            files = [filesystem(f)[1] for f in self.scan.files]
        else:  # an object store (or any fsspec URL): DuckDB reads through the same fsspec filesystem
            self.connection.register_filesystem(fs)
            files = list(self.scan.files)
        listed = ", ".join("'" + f.replace("'", "''") + "'" for f in files)
        columns = ", ".join(
            f"CAST({quoted(c)} AS {DUCKDB_TYPES[d]}) AS {quoted(c)}" for c, d in self.scan.dtypes.items()
        )
        return f"SELECT {columns} FROM read_parquet([{listed}], union_by_name = true)"

    def __exit__(self, *exc) -> None:
        self.connection.close()


def to_pandas(table: pa.Table | pa.RecordBatch) -> pd.DataFrame:
    """Arrow rows as pandas without Python string objects (text stays Arrow-backed)."""
    return table.to_pandas(types_mapper=PANDAS_OF_ARROW.get)


def combined(scans: Iterable[TableScan]) -> TableScan:
    """One scan over the files of several unconditioned scans of the same table (the days of a window)."""
    scans = list(scans)
    if not scans:
        raise ValueError("no scans to combine")
    if any(s.expression() is not None for s in scans):
        raise ValueError("only unconditioned scans combine")
    digest = hashlib.sha256("".join(s.version for s in scans).encode()).hexdigest()[:16]
    rows = None if any(s.rows is None for s in scans) else sum(s.rows or 0 for s in scans)
    return TableScan(files=tuple(f for s in scans for f in s.files), dtypes=scans[0].dtypes, rows=rows, version=digest)


class TableWriter:
    """Writes one partition's rows batch by batch into a new Parquet file (atomically: a reader never sees half a
    file); ``close()`` returns its TableScan, with the row count and a content hash of the rows as written."""

    def __init__(self, url: str, dtypes: dict[str, str], where: str):
        self.url, self.dtypes, self.where = url, dtypes, where
        self.fs, self.path = filesystem(url)
        self.fs.makedirs(posixpath.dirname(self.path), exist_ok=True)
        self.partial = f"{self.path}.partial"
        self.schema = arrow_schema(dtypes)
        self.sink = self.fs.open(self.partial, "wb")
        self.writer = pq.ParquetWriter(self.sink, self.schema)
        self.rows = 0
        self.digest = hashlib.sha256(",".join(dtypes).encode())

    def write(self, frame: pd.DataFrame) -> None:
        """Append a batch (conformed to the declared columns and types, or refused naming the column)."""
        rows = conform(frame, self.dtypes, self.where)
        if not len(rows):
            return
        self.digest.update(pd.util.hash_pandas_object(rows, index=False).to_numpy().tobytes())
        self.writer.write_table(pa.Table.from_pandas(rows, schema=self.schema, preserve_index=False), ROW_GROUP_ROWS)
        self.rows += len(rows)

    def close(self) -> TableScan:
        self.writer.close()
        self.sink.close()
        self.fs.mv(self.partial, self.path)
        return TableScan(files=(self.url,), dtypes=self.dtypes, rows=self.rows, version=self.digest.hexdigest()[:16])

    def abort(self) -> None:
        try:
            self.writer.close()
            self.sink.close()
        finally:
            if self.fs.exists(self.partial):
                self.fs.rm(self.partial)

    def __enter__(self) -> TableWriter:
        return self

    def __exit__(self, kind, *rest) -> None:
        if kind is not None:
            self.abort()


class ParquetTables(ConfigurableResource):
    """Where the partitioned Parquet tables live: ``<root>/<asset>/<partition>/<file>.parquet``."""

    root: str = Field(description="directory on a shared volume, or an fsspec URL such as s3://bucket/prefix")

    def partition_dir(self, table: str, partition: str | None) -> str:
        return posixpath.join(self.root.rstrip("/"), table, partition or "all")

    def writer(self, table: str, partition: str | None, dtypes: dict[str, str]) -> TableWriter:
        """A writer of a new file for one partition of ``table`` (the partition's pointer moves on ``publish``)."""
        url = posixpath.join(self.partition_dir(table, partition), f"{uuid.uuid4().hex[:12]}.parquet")
        return TableWriter(url, dtypes, f"{table}[{partition}]" if partition else table)

    def write(
        self, table: str, partition: str | None, dtypes: dict[str, str], frames: Iterable[pd.DataFrame]
    ) -> TableScan:
        with self.writer(table, partition, dtypes) as writer:
            for frame in frames:
                writer.write(frame)
            return writer.close()

    def publish(self, table: str, partition: str | None, scan: TableScan) -> None:
        """Make ``scan`` the partition's current content (an atomic pointer move; older files stay for windows
        cut from them)."""
        fs, path = filesystem(posixpath.join(self.partition_dir(table, partition), CURRENT))
        fs.makedirs(posixpath.dirname(path), exist_ok=True)
        fs.pipe_file(f"{path}.partial", scan.model_dump_json().encode())
        fs.mv(f"{path}.partial", path)

    def current(self, table: str, partition: str | None) -> TableScan | None:
        """The partition's current content, or None when it was never published."""
        fs, path = filesystem(posixpath.join(self.partition_dir(table, partition), CURRENT))
        if not fs.exists(path):
            return None
        return TableScan.model_validate(json.loads(fs.cat_file(path)))


class ParquetTablesIOManager(ConfigurableIOManager):
    """Stores an asset's partitions as Parquet files of its declared columns and loads them lazily.

    An asset returns a TableScan it wrote through ``ParquetTables`` (streamed, any size), or a pandas frame (small
    outputs; written here). An input annotated ``TableScan`` gets one lazy scan over every requested partition's
    current file; any other input gets the rows as one frame (small tables, tests, ``load_asset_value``).
    """

    tables: ParquetTables

    def handle_output(self, context: OutputContext, obj: TableScan | pd.DataFrame) -> None:
        table = context.asset_key.to_python_identifier()
        partition = context.partition_key if context.has_partition_key else None
        if isinstance(obj, pd.DataFrame):
            declared = declared_dtypes(context.definition_metadata)
            if declared is None:
                raise WarehouseError(f"{table}: a Parquet table needs its declared columns (dagster/column_schema)")
            obj = self.tables.write(table, partition, declared, [obj])
        if not isinstance(obj, TableScan):
            raise WarehouseError(f"{table}: the Parquet tables store a TableScan or a DataFrame, not {type(obj)}")
        self.tables.publish(table, partition, obj)
        count = "dagster/partition_row_count" if partition else "dagster/row_count"
        context.add_output_metadata(
            {count: obj.rows or 0, "dagster/storage_kind": "parquet", "files": ", ".join(obj.files)}
        )

    def load_input(self, context: InputContext) -> TableScan | pd.DataFrame:
        upstream = context.upstream_output
        table = context.asset_key.to_python_identifier()
        declared = declared_dtypes(upstream.definition_metadata if upstream else None)
        keys: list[str | None] = list(context.asset_partition_keys) if context.has_asset_partitions else [None]
        found = [s for s in (self.tables.current(table, k) for k in keys) if s is not None]
        if not found and not context.has_asset_partitions:
            raise WarehouseError(f"{table}: nothing stored yet; materialize it first")
        dtypes = declared or (found[0].dtypes if found else {})
        scan = combined(found) if found else TableScan(files=(), dtypes=dtypes, rows=0)
        scan = scan.model_copy(update={"dtypes": dtypes})
        if context.dagster_type.typing_type is TableScan:
            return scan
        return scan.frame()
