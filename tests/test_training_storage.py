"""TrainingStorage: the place both the launching step and the training ranks reach, a directory or an fsspec URL."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from resources.rank_shards import ScanLayout
from resources.training_storage import TrainingStorage


@pytest.mark.parametrize("root", ["local", "memory://ml-assets/training"])
def test_put_read_and_remove(root: str, tmp_path: Path) -> None:
    storage = TrainingStorage(root=str(tmp_path / "staging") if root == "local" else root)
    run = storage.location("run-1")
    frame = pd.DataFrame({"x": [1, 2], "s": ["a", None]})
    rows = storage.put_frame(f"{run}/train.parquet", frame)
    storage.put_json(f"{run}/output/result.json", {"auc": 0.9})
    storage.put_bytes(f"{run}/output/weights.pt", b"\x00\x01")
    pd.testing.assert_frame_equal(pd.read_parquet(rows), frame)  # what a rank reads
    assert storage.read_all(f"{run}/output") == {"result.json": b'{"auc": 0.9}', "weights.pt": b"\x00\x01"}
    storage.remove(run)
    assert storage.read_all(f"{run}/output") == {}
    storage.remove(run)  # removing what is gone is fine


def test_local_locations_are_plain_paths_and_urls_keep_their_scheme(tmp_path: Path) -> None:
    assert TrainingStorage(root=str(tmp_path)).location("a", "b.json") == str(tmp_path / "a" / "b.json")
    url = TrainingStorage(root="memory://bucket/x").location("a")
    assert url.startswith("memory://") and url.endswith("bucket/x/a")


@pytest.mark.parametrize("root", ["local", "memory://ml-assets/rows"])
def test_staged_rows_are_a_scan_ranks_shard_and_read_where_they_lie(root: str, tmp_path: Path) -> None:
    storage = TrainingStorage(root=str(tmp_path / "staging") if root == "local" else root)
    frame = pd.DataFrame(
        {
            "n": np.arange(5, dtype=np.int8),
            "x": [0.5, np.nan, 2.0, 3.0, 4.0],
            "s": ["a", None, "c", "d", "e"],
            "t": pd.date_range("2026-01-01", periods=5, freq="h").astype("datetime64[s]"),
            "b": [True, False, True, True, False],
            "o": [1, "two", 3.0, None, "five"],  # mixed objects are staged as text
        }
    )
    scan = storage.put_rows(storage.location("run-1", "train.parquet"), frame)
    assert scan.dtypes == {
        "n": "Int64",
        "x": "float64",
        "s": "string[pyarrow]",
        "t": "datetime64[ns]",
        "b": "boolean",
        "o": "string[pyarrow]",
    }
    back = scan.frame()
    assert back["n"].tolist() == list(range(5)) and back["s"].isna().tolist() == [False, True, False, False, False]
    assert back["o"].tolist()[:3] == ["1", "two", "3.0"] and back["t"].equals(frame["t"].astype("datetime64[ns]"))
    layout = ScanLayout.of(scan)  # what a rank reads: its pieces, through fsspec when the root is a URL
    halves = [layout.read(layout.shard(rank, 2, equal=False), ["n"]) for rank in (0, 1)]
    assert [v for half in halves for batch in half for v in batch.column("n").to_pylist()] == list(range(5))
