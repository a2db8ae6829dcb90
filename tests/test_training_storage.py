"""TrainingStorage: the place both the launching step and the training ranks reach, a directory or an fsspec URL."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

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
