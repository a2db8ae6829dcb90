"""Traffic and delayed labels for the served model, so the monitoring loop can be exercised locally.

``send_traffic`` replays a simulated day of the dataset (the rows ``ml-assets simulate`` would land for that day,
drift included, with new ids) to the served model over HTTP, as an application would: features plus the record id
and sensitive attributes, which the service logs but never passes to the model. A past day is replayed time-true:
its requests carry the X-Request-ID ``replay-<day>``, so the service files their predictions under that day
(``ml_assets.serving.prediction_log.filing_day``; each line keeps the real serving time) and monitoring sees the replayed days
as the days they are, one partition each, instead of all of them in today's. What the world knows and the model
does not, the true label of each answered record, is kept as ground truth under ``<ML_ASSETS_HOME>/traffic/``.
``land_labels`` later lands that ground truth as label files under ``labels/<day>/``, ``lag_days`` after the day
the traffic was served: the delayed labels that monitoring joins back to the logged predictions.
"""

from __future__ import annotations

import tempfile
import time
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

import httpx
import numpy as np
import pandas as pd

from ml_assets.dataset import DatasetSpec, Role
from ml_assets.datasets.next_day import typical_rows
from ml_assets.datasets.simulator import DriftConfig, replay
from ml_assets.partitions import today
from ml_assets.serving.prediction_log import replay_request_id
from ml_assets.serving.schema import REQUEST_ID_HEADER
from ml_assets.settings import paths
from resources.atomic_files import write_atomic

GROUND_TRUTH = "ground_truth.parquet"
SENT_ROWS = "rows.parquet"  # the answered records as sent, beside their ground truth


@dataclass(frozen=True)
class TrafficRun:
    """One replay: what was sent, answered and where its ground truth is."""

    day: date
    served_on: date  # the day its predictions are filed under: the replayed day, or today for today and later
    sent: int
    answered: int
    errors: int
    seconds: float
    ground_truth: Path


def day_rows(
    spec: DatasetSpec, day: date, rows: int, drift: DriftConfig | None, seed: int, first_id: int
) -> pd.DataFrame:
    """The rows the simulator would land for ``day`` (with ``drift``), as landed, with ids from ``first_id``."""
    with tempfile.TemporaryDirectory(prefix="traffic-") as scratch:
        files = replay(spec, Path(scratch), day, day, rows_per_day=rows, drift=drift, seed=seed, first_id=first_id)
        return pd.concat([pd.read_parquet(f.path) for f in files], ignore_index=True)


def request_records(spec: DatasetSpec, rows: pd.DataFrame) -> list[dict]:
    """JSON-ready request records: the features, the id and the sensitive attributes (nulls as None)."""
    names = [c.name for c in spec.columns if c.is_feature or c.role in (Role.ID, Role.SENSITIVE)]
    frame = rows[[n for n in names if n in rows.columns]].astype(object)
    frame = frame.where(pd.notna(frame), None)
    return [{k: (v.item() if isinstance(v, np.generic) else v) for k, v in r.items()} for r in frame.to_dict("records")]


def send_traffic(
    spec: DatasetSpec,
    url: str,
    day: date,
    rows: int | None = None,
    drift: DriftConfig | None = None,
    rate: float | None = None,
    batch: int = 50,
    seed: int | None = None,
) -> TrafficRun:
    """Send a simulated day's rows to ``url``/predict_batch in batches (at most ``rate`` rows/s); keep the truth."""
    stamp = time.time_ns() // 1_000
    frame = day_rows(spec, day, rows or typical_rows(spec), drift, stamp % 2**32 if seed is None else seed, stamp)
    records = request_records(spec, frame)
    answered: list[str] = []
    errors = 0
    started = time.perf_counter()
    served_on = min(day, today(spec))  # a past day is filed as itself; today and later days as today
    headers = {REQUEST_ID_HEADER: replay_request_id(day)} if day < today(spec) else {}
    with httpx.Client(base_url=url, timeout=60, headers=headers) as client:
        for i in range(0, len(records), batch):
            chunk = records[i : i + batch]
            try:
                r = client.post("/predict_batch", json={"records": chunk})
            except httpx.HTTPError:
                errors += len(chunk)
                continue
            if r.status_code != 200:
                errors += len(chunk)
                continue
            answered += [str(rec[spec.id.name]) for rec in chunk]
            if rate:
                ahead = (i + len(chunk)) / rate - (time.perf_counter() - started)
                if ahead > 0:
                    time.sleep(ahead)
    answered_rows = frame[frame[spec.id.name].astype("string").isin(answered)]
    truth = answered_rows[[spec.id.name, spec.target.name]].copy()
    truth["served_on"] = pd.Timestamp(served_on)
    folder = paths().home / "traffic" / f"{stamp}"
    folder.mkdir(parents=True, exist_ok=True)
    truth.to_parquet(folder / GROUND_TRUTH, index=False)
    answered_rows.to_parquet(folder / SENT_ROWS, index=False)
    return TrafficRun(
        day, served_on, len(records), len(answered), errors, time.perf_counter() - started, folder / GROUND_TRUTH
    )


def land_labels(spec: DatasetSpec, lag_days: int, landing_root: Path | None = None) -> list[Path]:
    """Land the ground truth of every traffic replay not landed yet, ``lag_days`` after the day it was filed under
    (the replayed day for a past day: labels of a replayed day land as they would have after it).

    One label file per replay, under ``labels/<served day + lag>/`` (a day in the future waits there, as delayed
    labels would); each replay's truth is landed once (a marker beside it remembers).
    """
    root = landing_root or paths().labels
    written = []
    for truth in sorted((paths().home / "traffic").glob(f"*/{GROUND_TRUTH}")):
        marker = truth.with_name("landed")
        if marker.exists():
            continue
        frame = pd.read_parquet(truth)
        if frame.empty:
            marker.write_text("nothing to land\n")
            continue
        served = pd.Timestamp(frame["served_on"].iloc[0]).date()
        folder = root / (served + timedelta(days=lag_days)).isoformat()
        folder.mkdir(parents=True, exist_ok=True)
        target = folder / f"labels-{truth.parent.name}.parquet"
        write_atomic(target, frame[[spec.id.name, spec.target.name]].to_parquet(index=False))
        marker.write_text(f"{target}\n")
        written.append(target)
    return written
