"""Ranks read their shard: the shard plan, the streamed reads, streaming preprocessing, and two real CPU ranks.

The shard plan is arithmetic over the row groups' kept-row counts (tested without files); the reads and the
preprocessing go through real Parquet files with several row groups and a time range; the integration test
launches two gloo ranks with torchrun (this module is their entrypoint), each builds its data as a training rank
does (``train.load_data``) and reports the ids of the rows it trained and validated on, per epoch, with its shard
kept in memory and streamed.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

import resources.parquet_tables as parquet_tables
from ml_assets.dataset import DatasetSpec, load_default_spec
from ml_assets.datasets.samples import demo_training_set
from ml_assets.model import preprocessing_scan
from ml_assets.model.preprocessing import Preprocessing
from ml_assets.model.shards import Encoded, RankRows, TooFewRows, prepare
from resources.parquet_tables import TableScan, combined
from resources.rank_shards import RowGroup, ScanLayout
from resources.training_records import PreparedRows
from resources.training_storage import TrainingStorage
from tests.conftest import pinned

ID = "fnlwgt"  # a numeric feature replaced by the row id: what a rank trained on can be read off its inputs
GROUP_ROWS = 97  # small row groups, so a window of a few thousand rows has dozens of them
EPOCHS = 2


# ---- the shard plan ------------------------------------------------------------------------------------------
def layout_of(counts: list[int]) -> ScanLayout:
    scan = TableScan(files=("a.parquet", "b.parquet"), dtypes={"x": "float64"})
    groups = tuple(RowGroup(file=i % 2, index=i // 2, rows=n) for i, n in enumerate(counts))
    return ScanLayout(scan=scan, groups=groups)


def rows_of(pieces) -> list[tuple[int, int, int]]:
    return [(p.group.file, p.group.index, r) for p in pieces for r in range(p.start, p.stop)]


@pytest.mark.parametrize(
    ("counts", "world"), [([5, 3, 8, 1, 9], 2), ([5, 3, 8, 1, 9], 3), ([4], 4), ([7, 7, 7, 7], 8), ([1, 2, 3], 1)]
)
def test_equal_shards_are_disjoint_equal_and_cover_all_but_fewer_than_world_rows(counts: list[int], world: int) -> None:
    layout = layout_of(counts)
    every = {(g.file, g.index, r) for g in layout.groups for r in range(g.rows)}
    for seed in (0, 1):
        shards = [rows_of(layout.shard(rank, world, equal=True, seed=seed)) for rank in range(world)]
        assert len({len(s) for s in shards}) == 1 and len(shards[0]) == layout.rows // world
        union = [r for s in shards for r in s]
        assert len(set(union)) == len(union) and set(union) <= every
        assert len(every) - len(union) == layout.rows % world < world


@pytest.mark.parametrize("world", [1, 2, 3, 7, 40])
def test_validation_shards_in_rank_order_are_every_row_in_scan_order(world: int) -> None:
    layout = layout_of([5, 3, 8, 1, 9])
    shards = [rows_of(layout.shard(rank, world, equal=False)) for rank in range(world)]
    in_order = [(g.file, g.index, r) for g in layout.groups for r in range(g.rows)]
    assert [r for s in shards for r in s] == in_order
    assert max(map(len, shards)) - min(map(len, shards)) <= 1
    with pytest.raises(ValueError, match="rank 3 is not in a world of 3"):
        layout.shard(3, 3, equal=True)


# ---- real files ----------------------------------------------------------------------------------------------
def write_days(spec: DatasetSpec, rows: pd.DataFrame, folder: Path, monkeypatch: pytest.MonkeyPatch) -> TableScan:
    """``rows`` as three Parquet files ("days") of GROUP_ROWS-row groups, one scan over them."""
    monkeypatch.setattr(parquet_tables, "ROW_GROUP_ROWS", GROUP_ROWS)
    storage = TrainingStorage(root=str(folder))
    parts = np.array_split(np.arange(len(rows)), 3)
    return combined(storage.put_rows(str(folder / f"day-{i}.parquet"), rows.iloc[p]) for i, p in enumerate(parts))


@pytest.fixture
def window(adult_spec: DatasetSpec, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[TableScan, TableScan]:
    """Train and validation scans over the same files, cut by a time range like a TrainingWindow's splits."""
    frame = demo_training_set(adult_spec, 3000, seed=3).sort_values(adult_spec.time.name, ignore_index=True)
    frame[ID] = pd.array(np.arange(1, len(frame) + 1), dtype="Int64")
    frame.loc[frame.index % 7 == 0, "age"] = pd.NA  # missing values stream too
    frame.loc[frame.index % 11 == 0, "workclass"] = pd.NA
    scan = write_days(adult_spec, frame.drop(columns=["split"]), tmp_path, monkeypatch)
    times = frame[adult_spec.time.name]
    cut = (times.min() + (times.max() - times.min()) * 0.7).floor("s").to_pydatetime()
    column = adult_spec.time.name
    return scan.where(time_column=column, end=cut), scan.where(time_column=column, start=cut)


def test_streaming_preprocessing_equals_the_frame_fit_on_the_same_rows(
    adult_spec: DatasetSpec, window: tuple[TableScan, TableScan]
) -> None:
    train, _ = window
    rows = train.frame()
    assert len(rows) < train.rows  # the time range keeps part of the files
    streamed, framed = (
        preprocessing_scan.fit_scan(adult_spec, train).to_dict(),
        Preprocessing.fit(adult_spec, rows).to_dict(),
    )
    assert streamed["categorical"] == framed["categorical"]
    assert [n["log1p"] for n in streamed["numeric"]] == [n["log1p"] for n in framed["numeric"]]
    assert any(n["log1p"] for n in framed["numeric"])  # a heavy-tailed column took the log path
    for got, want in zip(streamed["numeric"], framed["numeric"], strict=True):
        assert got.keys() == want.keys() and got["name"] == want["name"]
        for key in ("mean", "std", "fill", "bins", "quantile_points", "quantile_scores"):
            assert len(np.atleast_1d(got[key])) == len(np.atleast_1d(want[key])), (got["name"], key)
            np.testing.assert_allclose(got[key], want[key], rtol=1e-9, atol=1e-12, err_msg=f"{got['name']} {key}")


def test_prepare_counts_the_rows_and_refuses_too_few(adult_spec: DatasetSpec, window: tuple[TableScan, TableScan]):
    train, val = window
    prepared = prepare(adult_spec, train, val, ranks=2)
    assert (prepared.train.rows, prepared.validation.rows) == (train.count_rows(), val.count_rows())
    assert len(prepared.train.groups) > 10  # many row groups: shards are made of them
    assert prepared.positive_rate == pytest.approx(train.frame()["label"].astype(float).mean())
    empty = val.where(start=val.start + timedelta(days=3650))
    with pytest.raises(TooFewRows, match="need at least one train row per rank"):
        prepare(adult_spec, train, empty, ranks=2)


def ids_of(batch: Encoded, pre: Preprocessing) -> list[int]:
    """The row ids a batch holds, read back from the standardised ID column."""
    j = pre.numeric_names.index(ID)
    stats = pre.numeric[j]
    values = batch.numeric[:, 2 * j].double().numpy() * stats.std + stats.mean
    return [int(v) for v in np.rint(values)]


def test_kept_and_streamed_shards_give_the_same_rows_and_exact_step_counts(
    adult_spec: DatasetSpec, window: tuple[TableScan, TableScan]
) -> None:
    prepared = prepare(adult_spec, *window, ranks=1)
    pre = Preprocessing.from_dict(prepared.preprocessing)
    cpu = torch.device("cpu")

    def rank_rows(budget: int) -> RankRows:
        rows = RankRows(prepared.train, prepared.train.shard(0, 1, equal=True, seed=0), pre, "label", cpu)
        rows.keep(budget)
        return rows

    kept, streamed = rank_rows(2**30), rank_rows(0)
    assert (kept.mode, streamed.mode) == ("kept in memory", "streamed")
    for micro in (1, 64):
        steps = len(kept) // micro
        for rows in (kept, streamed):
            batches = list(rows.micro_batches(micro, steps, seed=5))
            assert len(batches) == steps and {len(b) for b in batches} == {micro}
            ids = [i for b in batches for i in ids_of(b, pre)]
            assert len(set(ids)) == len(ids) == steps * micro
    whole = sorted(i for b in kept.chunks(3, 10_000) for i in ids_of(b, pre))
    assert whole == sorted(i for b in streamed.chunks(3, 1000) for i in ids_of(b, pre))
    assert whole == sorted(window[0].frame()[ID].astype(int))
    with pytest.raises(RuntimeError, match="needs more than 1 chunks of 1000"):
        list(streamed.chunks(1, 1000))


def test_epoch_rows_cap_an_epoch_and_each_epoch_draws_its_rows_afresh(
    adult_spec: DatasetSpec, window: tuple[TableScan, TableScan]
) -> None:
    from ml_assets.model import train

    prepared = prepare(adult_spec, *window, ranks=2)
    pre = Preprocessing.from_dict(prepared.preprocessing)
    shard = prepared.train.shard(1, 2, equal=True, seed=0)
    whole = train.Job.model_construct(epoch_rows=None)
    capped = train.Job.model_construct(epoch_rows=300)  # 150 rows a rank an epoch, of a shard of ~1,000
    assert train.epoch_rows_per_rank(whole, 1000, 2) == 1000
    assert train.epoch_rows_per_rank(capped, 1000, 2) == 150 and train.epoch_rows_per_rank(capped, 100, 2) == 100
    assert train.epoch_rows_per_rank(train.Job.model_construct(epoch_rows=3), 1000, 2) == 2  # rounds up
    for budget in (2**30, 0):  # kept in memory, and streamed
        rows = RankRows(prepared.train, shard, pre, "label", torch.device("cpu"))
        rows.keep(budget)
        micro, steps = train.step_plan(
            train.epoch_rows_per_rank(capped, len(rows), 2), {"train_micro_batch_size_per_gpu": 10}
        )
        assert (micro, steps) == (10, 15)
        epochs = [[i for b in rows.micro_batches(micro, steps, seed=e) for i in ids_of(b, pre)] for e in range(4)]
        assert all(len(e) == len(set(e)) == 150 for e in epochs), rows.mode
        assert len({frozenset(e) for e in epochs}) == 4, rows.mode  # a fresh draw every epoch
        assert len(set().union(*epochs)) > 300, rows.mode  # so the epochs together visit more of the shard


# ---- two real ranks ------------------------------------------------------------------------------------------
@pytest.mark.integration
def test_two_cpu_ranks_read_disjoint_shards_that_cover_the_window_once_per_epoch(
    adult_spec: DatasetSpec, window: tuple[TableScan, TableScan], tmp_path: Path
) -> None:
    train, val = window
    prepared = prepare(adult_spec, train, val, ranks=2)
    job = tmp_path / "probe.json"
    job.write_text(json.dumps({"rows": prepared.model_dump(mode="json"), "out": str(tmp_path / "seen.json")}))
    env = {**os.environ, "PYTHONPATH": os.getcwd(), "OMP_NUM_THREADS": "1"}
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]
    done = subprocess.run(
        [*command, "-m", "tests.test_rank_shards", str(job)], env=env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-4000:]
    seen = json.loads((tmp_path / "seen.json").read_text())

    train_ids, val_frame = train.frame()[ID].astype(int).tolist(), val.frame()
    for mode in ("kept in memory", "streamed"):
        ranks = seen[mode]
        assert [r["mode"] for r in ranks] == [mode, mode]
        for epoch in range(EPOCHS):
            shards = [r["train"][epoch] for r in ranks]
            assert len(shards[0]) == len(shards[1]) == len(train_ids) // 2  # equal: the same steps on both ranks
            union = shards[0] + shards[1]
            assert len(set(union)) == len(union)  # disjoint, no row twice
            assert set(union) <= set(train_ids) and len(train_ids) - len(union) < 2  # all but fewer than world
        for r in ranks:  # the same shard every epoch, visited in another order
            assert sorted(r["train"][0]) == sorted(r["train"][1]) and r["train"][0] != r["train"][1]
        # validation: the ranks' shares in rank order are every validation row in order, labels gathered
        assert ranks[0]["val"] + ranks[1]["val"] == val_frame[ID].astype(int).tolist()
        assert ranks[0]["val_labels"] == val_frame["label"].astype(int).tolist()
    assert [r["train"] for r in seen["streamed"]] != [r["train"] for r in seen["kept in memory"]]  # orders differ
    assert [sorted(r["train"][0]) for r in seen["streamed"]] == [sorted(r["train"][0]) for r in seen["kept in memory"]]


def probe(job_path: str) -> None:
    """A torchrun rank: build this rank's data as training does, with the shard kept and streamed, and report the
    row ids it trained on each epoch (micro batches of one row: every row of its shard) and validated on."""
    import torch.distributed as dist

    from ml_assets.model import train

    raw = json.loads(Path(job_path).read_text())
    rank, world = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
    dist.init_process_group("gloo")
    rows = PreparedRows.model_validate(raw["rows"])
    pre = Preprocessing.from_dict(rows.preprocessing)
    me = train.Rank(rank, world, torch.device("cpu"))
    seen: dict[str, list] = {}
    spec = pinned(load_default_spec())
    for budget in (2**30, 0):
        job = train.Job.model_construct(rows=rows, shard_cache_bytes=budget, seed=11, spec=spec)
        data = train.load_data(job, me)
        mine = {
            "mode": data.train.mode,
            "train": [
                [i for b in data.train.micro_batches(1, len(data.train), seed=e) for i in ids_of(b, pre)]
                for e in range(EPOCHS)
            ],
            "val": [i for b in data.val.chunks(data.val_chunks, train.EVAL_CHUNK) for i in ids_of(b, pre)],
            "val_labels": data.val_labels.tolist(),
        }
        everyone: list[dict | None] = [None] * world
        dist.all_gather_object(everyone, mine)
        seen[data.train.mode] = everyone
    if rank == 0:
        Path(raw["out"]).write_text(json.dumps(seen))
    dist.destroy_process_group()


if __name__ == "__main__":
    probe(sys.argv[1])
