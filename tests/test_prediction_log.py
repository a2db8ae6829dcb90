"""The prediction log: the line contract, owner-only files, one file per writer, nothing answered ever lost."""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from ml_assets.dataset import DatasetSpec
from ml_assets.prediction_line import PredictionLine
from ml_assets.serving.columnar import validate_table
from ml_assets.serving.prediction_log import (
    FIELDS,
    SPOOL_SUFFIX,
    PredictionLog,
    _open_exclusive,
    read_day,
    recover_spools,
    spool_lines,
    utc_now,
)
from tests.test_serving_schema import GOOD

ROOT = Path(__file__).resolve().parents[1]


def test_batch_lines_follow_the_contract(tmp_path: Path):
    now = utc_now()
    inputs = [GOOD, {**GOOD, "occupation": None, "native_country": 'quo"te},{"request_id":\n', "sex": "Female"}]
    log = PredictionLog(tmp_path)
    assert log.write_batch(now, "m:1", ["abc123", "client-1-ff"], inputs, [0.25, 1e-05], [0, 1]) == 2
    log.close()
    lines = (tmp_path / now.date().isoformat() / f"{os.getpid()}.jsonl").read_text().splitlines()
    got = [json.loads(line) for line in lines]
    assert [list(e) for e in got] == [list(FIELDS)] * 2
    assert [PredictionLine.model_validate(e).model_dump(mode="json") for e in got] == [
        {**e, "time": now.isoformat().replace("+00:00", "Z")} for e in got
    ]  # every line is the record the readers parse
    assert got == [
        {"request_id": rid, "time": now.isoformat(), "model_tag": "m:1", "inputs": rec, "probability": p, "label": y}
        for rid, rec, p, y in zip(["abc123", "client-1-ff"], inputs, [0.25, 1e-05], [0, 1], strict=True)
    ]


def test_files_are_owner_only_and_never_shared(tmp_path: Path):
    root = tmp_path / "prediction_log"
    log = PredictionLog(root)
    now = utc_now()
    log.write_batch(now, "m:1", ["a"], [GOOD], [0.2], [0])
    day = root / now.date().isoformat()
    path = day / f"{os.getpid()}.jsonl"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(day.stat().st_mode) == stat.S_IMODE(root.stat().st_mode) == 0o700
    # a second writer that picks the same name (same pid) gets its own file: the first holds an exclusive lock
    other = _open_exclusive(day, str(os.getpid()))
    assert (day / f"{os.getpid()}-1.jsonl").exists()
    os.close(other)
    log.close()
    assert [e.request_id for e in read_day(root, now.date())] == ["a"]


def test_existing_folders_are_tightened(tmp_path: Path):
    root = tmp_path / "log"
    (root / utc_now().date().isoformat()).mkdir(parents=True, mode=0o755)
    os.chmod(root, 0o755)
    log = PredictionLog(root)
    log.write_batch(utc_now(), "m:1", ["a"], [GOOD], [0.2], [0])
    log.close()
    assert stat.S_IMODE(root.stat().st_mode) == 0o700


def _served_table(spec: DatasetSpec, rows: list[dict]) -> pa.Table:
    return validate_table(spec, pa.Table.from_pylist(rows))


def test_spooled_table_lines_equal_batch_lines(tmp_path: Path, adult_spec: DatasetSpec):
    rows = [GOOD, {**GOOD, "occupation": None, "native_country": ' quo"te\\ ', "sex": "Female", "record_id": 9}]
    table = _served_table(adult_spec, rows)
    now = utc_now()
    log = PredictionLog(tmp_path)
    spool = log.write_table(now, "m:1", "client-base", table, np.array([0.25, 1e-05]), np.array([0, 1], np.int8))
    assert stat.S_IMODE(spool.stat().st_mode) == 0o600
    log.wait_spooled()
    assert not spool.exists()
    log.write_batch(now, "m:1", ["client-base-0", "client-base-1"], [table.slice(i, 1).to_pylist()[0] for i in (0, 1)],
                    [0.25, 1e-05], [0, 1])  # fmt: skip
    log.close()
    day = tmp_path / now.date().isoformat()
    bulk = [json.loads(x) for f in day.glob("*-file-*.jsonl") for x in f.read_text().splitlines()]
    online = [json.loads(x) for x in (day / f"{os.getpid()}.jsonl").read_text().splitlines()]
    assert bulk == online and [list(e) for e in bulk] == [list(FIELDS)] * 2
    assert all(PredictionLine.model_validate(e).model_tag == "m:1" for e in bulk)
    assert bulk[1]["inputs"]["native_country"] == 'quo"te\\' and "sex" not in bulk[0]["inputs"]
    assert stat.S_IMODE(next(day.glob("*-file-*.jsonl")).stat().st_mode) == 0o600


def test_spool_lines_keep_every_float_and_escape_every_text():
    rng = np.random.default_rng(0)
    probs = np.concatenate([rng.random(2000), [1e-300, 5e-324, 1.0, 0.0, 0.1, 1 / 3]])
    texts = (["plain", 'q"uote', "back\\slash", "tab\tnew\nline", "\x00\x1f", "é☃"] * 400)[: len(probs)]
    n = len(probs)
    table = pa.table(
        {
            "t": pa.array(texts, type=pa.large_string()),
            "i": pa.array(np.arange(n) - 5),
            "probability": probs,
            "label": pa.array((probs > 0.5).astype(np.int8)),
        }
    ).replace_schema_metadata({b"time": b"2026-01-01T00:00:00+00:00", b"model_tag": b"m:1", b"request_id_base": b"b"})
    lines = [json.loads(x) for arr in spool_lines(table, slice_rows=500) for x in arr.to_pylist()]
    assert [e["probability"] for e in lines] == probs.tolist()
    assert [e["inputs"]["t"] for e in lines] == texts and [e["inputs"]["i"] for e in lines] == list(range(-5, n - 5))
    assert [e["request_id"] for e in lines] == [f"b-{i}" for i in range(n)]


def _run_writer(tmp_path: Path, body: str) -> subprocess.Popen[str]:
    script = textwrap.dedent(
        f"""
        import numpy as np, pyarrow as pa, sys, time
        from ml_assets.serving.prediction_log import PredictionLog, utc_now
        log = PredictionLog({str(tmp_path)!r}, fsync_interval_s=60)
        """
    ) + textwrap.dedent(body)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True, env=env, cwd=ROOT)


@pytest.mark.integration
def test_a_killed_writer_loses_no_answered_prediction(tmp_path: Path):
    """Each 'answer' is printed only after write_batch returned: every printed id must be in the log."""
    proc = _run_writer(
        tmp_path,
        """
        i = 0
        while True:
            ids = [f"{i}-{k}" for k in range(50)]
            log.write_batch(utc_now(), "m:1", ids, [{"a": k} for k in range(50)], [0.5] * 50, [1] * 50)
            print(" ".join(ids), flush=True)  # the answers: sent after the lines reached the kernel
            i += 1
        """,
    )
    try:
        time.sleep(2.0)
        os.kill(proc.pid, signal.SIGKILL)
        answered = proc.stdout.read().split()
    finally:
        proc.kill()
        proc.wait()
    logged = {e.request_id for day in tmp_path.iterdir() for e in read_day(tmp_path, day.name)}
    assert len(answered) > 1000
    assert set(answered) - logged == set()


@pytest.mark.integration
def test_a_spool_left_by_a_killed_writer_is_recovered_once_and_a_live_ones_never(tmp_path: Path):
    proc = _run_writer(
        tmp_path,
        """
        import ml_assets.serving.prediction_log as pl
        pl._Spool.convert = lambda self: time.sleep(3600)  # the converter never gets to it: killed first
        table = pa.table({"a": pa.array(np.arange(1000))})
        log.write_table(utc_now(), "m:1", "base", table, np.full(1000, 0.5), np.ones(1000, np.int8))
        print("answered", flush=True)
        time.sleep(3600)
        """,
    )
    try:
        assert proc.stdout.readline().strip() == "answered"
        assert recover_spools(tmp_path) == []  # its writer lives and holds it
        assert PredictionLog(tmp_path)._spools.qsize() == 0  # nor does another server take it
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    finally:
        proc.kill()
    assert len(list(tmp_path.glob(f"*/*{SPOOL_SUFFIX}"))) == 1
    assert len(recover_spools(tmp_path)) == 1 and recover_spools(tmp_path) == []
    entries = [e for day in tmp_path.iterdir() for e in read_day(tmp_path, day.name)]
    assert sorted(e.request_id for e in entries) == sorted(f"base-{i}" for i in range(1000))
    assert not list(tmp_path.glob(f"*/*{SPOOL_SUFFIX}")) and not list(tmp_path.glob("*/*.partial"))
