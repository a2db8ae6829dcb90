"""Rank shards: a TableScan cut into row-group pieces, so each training rank streams only its own rows.

A scan's kept rows (its files' row groups, less what its time range and not-null conditions drop) form one
sequence, in file and row-group order. The launching step counts each row group's kept rows once
(``ScanLayout.of``: from the row-group statistics where they decide, else by reading only the condition
columns); every rank then cuts that sequence by arithmetic alone (``ScanLayout.shard``) and streams its pieces in
Arrow batches (``ScanLayout.read``), each row group opened as its own Parquet fragment, so the same code reads a
local disk, a shared volume or object storage, and a rank never holds more than a batch of rows it does not own.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.fs as pafs
from fsspec.implementations.local import LocalFileSystem
from pydantic import BaseModel, ConfigDict, Field

from resources.parquet_tables import BATCH_ROWS, TableScan, filesystem


class RowGroup(BaseModel):
    """One Parquet row group of a scan and how many of its rows the scan keeps."""

    model_config = ConfigDict(frozen=True)

    file: int = Field(description="index into the scan's files")
    index: int = Field(description="the row group's index in that file")
    rows: int = Field(description="rows the scan's conditions keep")


@dataclass(frozen=True)
class Piece:
    """Kept rows ``[start, stop)`` of one row group (offsets among the rows the scan keeps there)."""

    group: RowGroup
    start: int
    stop: int

    @property
    def rows(self) -> int:
        return self.stop - self.start


class ScanLayout(BaseModel):
    """A scan and its row groups' kept-row counts: what a rank needs to find and read its shard."""

    model_config = ConfigDict(frozen=True)

    scan: TableScan
    groups: tuple[RowGroup, ...]

    @property
    def rows(self) -> int:
        return sum(g.rows for g in self.groups)

    @classmethod
    def of(cls, scan: TableScan) -> ScanLayout:
        """Count the kept rows of every row group (metadata when the scan has no conditions; otherwise Arrow
        decides from statistics where it can and reads only the condition columns where it cannot)."""
        condition = scan.expression()
        groups = []
        for number, url in enumerate(scan.files):
            fragment = _fragment(url, scan)
            for part in fragment.split_by_row_group():
                (info,) = part.row_groups
                rows = info.num_rows if condition is None else part.count_rows(filter=condition)
                if rows:
                    groups.append(RowGroup(file=number, index=info.id, rows=rows))
        return cls(scan=scan, groups=tuple(groups))

    def shard(self, rank: int, world: int, *, equal: bool, seed: int | None = None) -> tuple[Piece, ...]:
        """Rank ``rank``'s pieces of ``world``: the kept rows, row groups in file order (or shuffled by ``seed``, so
        a shard spans the whole window rather than a span of days), cut into ``world`` contiguous ranges. ``equal``
        ranges all hold ``rows // world`` rows (the last ``rows % world`` rows, fewer than ``world``, are in no
        shard: data parallelism needs the same step count on every rank); otherwise the first ``rows % world``
        ranges take one row more, and the shards in rank order are the rows in scan order."""
        if not 0 <= rank < world:
            raise ValueError(f"rank {rank} is not in a world of {world}")
        order = list(self.groups)
        if seed is not None:
            order = [order[i] for i in np.random.default_rng(seed).permutation(len(order))]
        n = self.rows
        size, extra = divmod(n, world)
        if equal:
            start, stop = rank * size, (rank + 1) * size
        else:
            start = rank * size + min(rank, extra)
            stop = start + size + (rank < extra)
        pieces, offset = [], 0
        for group in order:
            lo, hi = max(start, offset), min(stop, offset + group.rows)
            if hi > lo:
                pieces.append(Piece(group, lo - offset, hi - offset))
            offset += group.rows
        return tuple(pieces)

    def read(
        self, pieces: Iterable[Piece], columns: Sequence[str], batch_rows: int = BATCH_ROWS
    ) -> Iterator[pa.RecordBatch]:
        """The kept rows of ``pieces``, in order, as Arrow batches of at most ``batch_rows`` rows (one row group
        streamed at a time: memory is a batch, whatever the row groups' size)."""
        condition = self.scan.expression()
        schema = self.scan.schema()
        for piece in pieces:
            url = self.scan.files[piece.group.file]
            fragment = _fragment(url, self.scan, row_groups=[piece.group.index])
            offset = 0
            for batch in fragment.to_batches(
                schema=schema,
                columns=list(columns),
                filter=condition,
                batch_size=batch_rows,
                batch_readahead=0,  # no decoded batches ahead: a rank may read several row groups in turn
                use_threads=False,
            ):
                lo, hi = max(piece.start, offset), min(piece.stop, offset + batch.num_rows)
                if hi > lo:
                    yield batch.slice(lo - offset, hi - lo)
                offset += batch.num_rows
                if offset >= piece.stop:
                    break


def interleaved(streams: Iterable[Iterator[pa.RecordBatch]], width: int) -> Iterator[pa.RecordBatch]:
    """Batches taken in turn from ``width`` streams at a time (the next stream opens as one ends): consecutive
    batches come from different row groups, so a block of them mixes ``width`` spans of the window."""
    pending = iter(streams)
    open_: list[Iterator[pa.RecordBatch]] = [s for _, s in zip(range(width), pending, strict=False)]
    while open_:
        for stream in list(open_):
            batch = next(stream, None)
            if batch is not None:
                yield batch
                continue
            open_.remove(stream)
            following = next(pending, None)
            if following is not None:
                open_.append(following)


def rebatch(batches: Iterable[pa.RecordBatch], rows: int) -> Iterator[pa.RecordBatch]:
    """``batches`` regrouped into batches of exactly ``rows`` rows (the last one may be shorter)."""
    held: list[pa.RecordBatch] = []
    count = 0
    for batch in batches:
        while batch.num_rows:
            take = min(rows - count, batch.num_rows)
            held.append(batch.slice(0, take))
            count += take
            batch = batch.slice(take)
            if count == rows:
                yield _joined(held)
                held, count = [], 0
    if count:
        yield _joined(held)


def _joined(batches: list[pa.RecordBatch]) -> pa.RecordBatch:
    if len(batches) == 1:
        return batches[0]
    return pa.Table.from_batches(batches).combine_chunks().to_batches()[0]


def _fragment(url: str, scan: TableScan, row_groups: list[int] | None = None) -> ds.ParquetFileFragment:
    fs, path = filesystem(url)
    arrow_fs = pafs.LocalFileSystem() if isinstance(fs, LocalFileSystem) else pafs.PyFileSystem(pafs.FSSpecHandler(fs))
    return ds.ParquetFileFormat().make_fragment(path, filesystem=arrow_fs, row_groups=row_groups)
