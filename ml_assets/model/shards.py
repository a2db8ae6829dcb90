"""A training rank's rows: its shard of the prepared train and validation scans, encoded batch by batch.

The launching step prepares a launch's rows once (``prepare``): the labeled scans, their row groups' kept-row
counts, the preprocessing fitted on every train row by queries that stream the files, and the positive rate; no
rank ever reads all rows. Each rank cuts its shard from the counts (``resources.rank_shards``) and encodes it
with that preprocessing in Arrow batches (``RankRows``). A shard whose encoded tensors fit the rank's byte budget
(``ML_ASSETS_SHARD_CACHE_MB``, read by the launching step into the job) is read once and kept on the device for
every epoch and trial, iterated by index slices as before; a larger one is streamed again at every pass, its
pieces in an epoch-seeded order, several read in turn, and its rows shuffled within blocks of ``SHUFFLE_ROWS``
that mix them, so a rank's memory is a few row groups' batches, whatever the window's size.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from functools import partial

import numpy as np
import pyarrow as pa
import torch

from ml_assets.dataset import DatasetSpec
from ml_assets.model import preprocessing_scan
from ml_assets.model.preprocessing import Preprocessing
from resources.parquet_tables import TableScan, to_pandas
from resources.rank_shards import Piece, ScanLayout, interleaved, rebatch
from resources.training_records import PreparedRows, RowsPreparer, TooFewRows
from resources.warehouse_tables import conform_read

SHUFFLE_ROWS = 262_144  # rows shuffled together when a shard streams
MIXED_PIECES = 8  # row groups a streamed epoch reads at a time, a batch of each in turn
MIXED_ROWS = SHUFFLE_ROWS // MIXED_PIECES  # rows per batch of each: a shuffled block spans MIXED_PIECES row groups
READ_ROWS = 65_536  # rows per Arrow batch read and encoded


def labeled(spec: DatasetSpec, scan: TableScan) -> TableScan:
    """The rows of ``scan`` that carry a label (every row unless the target is nullable), as ``spec.labeled``."""
    return scan.where(not_null=(spec.label_column,)) if spec.target.nullable else scan


def prepare(spec: DatasetSpec, train: TableScan, validation: TableScan, ranks: int) -> PreparedRows:
    """What every rank needs beside its own rows, computed once by streaming queries: the labeled scans with their
    row groups' counts, the preprocessing fitted on every train row, the train rows' positive rate."""
    layouts = ScanLayout.of(labeled(spec, train)), ScanLayout.of(labeled(spec, validation))
    n_train, n_val = layouts[0].rows, layouts[1].rows
    if n_train < ranks or n_val == 0:
        raise TooFewRows(
            f"{n_train} train and {n_val} validation rows: need at least one train row per rank ({ranks}) and one "
            "validation row"
        )
    pre = preprocessing_scan.fit_scan(spec, layouts[0].scan)
    label = spec.label_column
    rate = layouts[0].scan.query(f'SELECT avg(CAST("{label}" AS DOUBLE)) AS rate FROM scan')["rate"].iloc[0]
    return PreparedRows(train=layouts[0], validation=layouts[1], preprocessing=pre.to_dict(), positive_rate=float(rate))


def preparer(spec: DatasetSpec) -> RowsPreparer:
    """``prepare`` for one spec: what a model asset hands the trainer (``DeepSpeedTrainer.train(prepare=...)``)."""
    return partial(prepare, spec)


@dataclass
class Encoded:
    """Rows as model inputs on a device: numeric matrix, categorical codes, labels."""

    numeric: torch.Tensor
    categorical: torch.Tensor
    label: torch.Tensor

    def __len__(self) -> int:
        return int(self.label.shape[0])

    def __getitem__(self, idx: torch.Tensor | slice) -> Encoded:
        return Encoded(self.numeric[idx], self.categorical[idx], self.label[idx])

    @classmethod
    def empty(cls, pre: Preprocessing, rows: int, device: torch.device) -> Encoded:
        return cls(
            # float32 whatever the precision: the networks cast after their numeric encodings (network.py), so a
            # bf16 run sees the values serving sees, not ones rounded to 3 digits
            torch.empty((rows, pre.n_numeric_inputs), dtype=torch.float32, device=device),
            torch.empty((rows, len(pre.categorical)), dtype=torch.int64, device=device),
            torch.empty((rows,), dtype=torch.float32, device=device),
        )

    @staticmethod
    def row_bytes(pre: Preprocessing) -> int:
        return 4 * pre.n_numeric_inputs + 8 * len(pre.categorical) + 4


class RankRows:
    """This rank's shard of one split: pieces of a ScanLayout, encoded with the fitted preprocessing. ``keep``
    holds it on the device when it fits a budget; otherwise every pass streams it from storage."""

    def __init__(
        self,
        layout: ScanLayout,
        pieces: tuple[Piece, ...],
        pre: Preprocessing,
        label: str,
        device: torch.device,
    ):
        self.layout, self.pieces, self.pre, self.label, self.device = layout, pieces, pre, label, device
        self.rows = sum(p.rows for p in pieces)
        self.columns = [*pre.feature_names, label]
        self.kept: Encoded | None = None

    def __len__(self) -> int:
        return self.rows

    @property
    def nbytes(self) -> int:
        """Bytes the encoded shard takes on its device."""
        return self.rows * Encoded.row_bytes(self.pre)

    @property
    def mode(self) -> str:
        return "kept in memory" if self.kept is not None else "streamed"

    def keep(self, budget: int) -> int:
        """Read and hold the encoded shard when it fits ``budget`` bytes; the bytes it took (0: it streams)."""
        if self.nbytes > budget:
            return 0
        kept = Encoded.empty(self.pre, self.rows, self.device)
        at = 0
        for part in self.stream(READ_ROWS):
            kept.numeric[at : at + len(part)] = part.numeric
            kept.categorical[at : at + len(part)] = part.categorical
            kept.label[at : at + len(part)] = part.label
            at += len(part)
        if at != self.rows:
            raise RuntimeError(f"read {at} rows of a shard of {self.rows}: the files changed since the launch counted")
        self.kept = kept
        return self.nbytes

    def stream(self, batch_rows: int, seed: int | None = None) -> Iterator[Encoded]:
        """The shard encoded in batches of ``batch_rows`` rows (the last may be shorter), read from storage even
        when kept: its pieces in order, or with ``seed`` in that seed's order and ``MIXED_PIECES`` at a time, a
        batch of each in turn (so a shuffled block holds rows of several row groups, not one span of a day)."""
        if seed is None:
            batches = self.layout.read(self.pieces, self.columns, READ_ROWS)
        else:
            order = np.random.default_rng(seed).permutation(len(self.pieces))
            streams = (self.layout.read([self.pieces[i]], self.columns, MIXED_ROWS) for i in order)
            batches = interleaved(streams, MIXED_PIECES)
        for batch in rebatch(batches, batch_rows):
            yield self.encode(batch)

    def encode(self, batch: pa.RecordBatch) -> Encoded:
        wanted = {c: self.layout.scan.dtypes[c] for c in self.columns}
        frame = conform_read(to_pandas(batch), wanted, "training rows")
        num, cat = self.pre.transform(frame)
        return Encoded(
            torch.from_numpy(num).to(self.device),
            torch.from_numpy(cat).to(self.device),
            torch.from_numpy(frame[self.label].to_numpy(dtype=np.float32)).to(self.device),
        )

    def micro_batches(self, micro: int, steps: int, seed: int) -> Iterator[Encoded]:
        """Exactly ``steps`` batches of ``micro`` rows in a ``seed``-ed order (``steps * micro`` rows at most the
        shard's): a permutation of the kept shard, or the streamed pieces in a seeded order, shuffled in blocks."""
        generator = torch.Generator().manual_seed(seed)
        if self.kept is not None:
            order = torch.randperm(self.rows, generator=generator).to(self.device)
            for step in range(steps):
                yield self.kept[order[step * micro : (step + 1) * micro]]
            return
        done = 0
        block = micro * max(1, SHUFFLE_ROWS // micro)
        for part in self.stream(block, seed):
            order = torch.randperm(len(part), generator=generator).to(self.device)
            for k in range(len(part) // micro):
                if done == steps:
                    return
                yield part[order[k * micro : (k + 1) * micro]]
                done += 1
        if done != steps:
            raise RuntimeError(f"a shard of {self.rows} rows gave {done} micro batches of {micro}, not {steps}")

    def chunks(self, count: int, rows: int) -> Iterator[Encoded]:
        """Exactly ``count`` consecutive chunks of the shard in order (``count`` must allow ``rows`` per chunk;
        empty ones at the end where the shard is short: every rank makes the same number of forward calls)."""
        made = 0
        if self.kept is not None:
            parts: Iterator[Encoded] = (
                self.kept[i] for i in torch.tensor_split(torch.arange(self.rows, device=self.device), count)
            )
        else:
            parts = self.stream(rows)
        for part in parts:
            made += 1
            if made > count:
                raise RuntimeError(f"a shard of {self.rows} rows needs more than {count} chunks of {rows}")
            yield part
        for _ in range(count - made):
            yield Encoded.empty(self.pre, 0, self.device)

    def labels(self) -> np.ndarray:
        """The shard's labels in order (from memory when kept, else streamed: the label column only)."""
        if self.kept is not None:
            return self.kept.label.cpu().numpy()
        parts = [
            b.column(self.label).to_numpy(zero_copy_only=False).astype(np.float32)
            for b in self.layout.read(self.pieces, [self.label], READ_ROWS)
        ]
        return np.concatenate(parts) if parts else np.zeros(0, dtype=np.float32)


def chunk_count(rows: int, world: int, chunk_rows: int) -> int:
    """Forward calls per validation pass, the same on every rank: enough for the largest shard."""
    return max(1, math.ceil(math.ceil(rows / world) / chunk_rows))
