"""Time-true monitoring of replayed traffic: three past days replayed today land in three prediction_log and
model_monitoring partitions, not in today's, and the drift ramp shows day by day.

The rows are what ``ml-assets traffic --day D`` sends (``day_rows`` with a drift ramp, as request records), scored
and logged by the service's own ``Scorer`` and ``PredictionLog`` with the X-Request-ID the traffic tool sends for a
past day; only the HTTP hop is left out. Monitoring runs in process with the real Definitions.
"""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import bentoml.models  # noqa: F401  imported at collection, as the serving tests do: the import probes the C library once
from dagster import AssetKey

from ml_assets.dataset import DatasetSpec
from ml_assets.datasets.simulator import DriftConfig
from ml_assets.datasets.traffic import day_rows, request_records
from ml_assets.definitions import build_definitions
from ml_assets.partitions import today
from ml_assets.serving.prediction_log import PredictionLog, filing_day, replay_request_id
from ml_assets.serving.schema import request_schemas
from ml_assets.serving.scoring import Scorer
from tests.test_monitoring_assets import run_day, world  # noqa: F401  the fixture: a champion with its window


def test_filing_day_takes_a_replayed_day_never_a_future_or_malformed_one() -> None:
    assert filing_day("replay-2026-03-02-ab12", "2026-03-05") == "2026-03-02"
    assert filing_day("ab12", "2026-03-05") == "2026-03-05"
    assert filing_day("replay-2026-03-09-ab12", "2026-03-05") == "2026-03-05", "never filed in the future"
    assert filing_day("replay-2026-02-30-ab12", "2026-03-05") == "2026-03-05", "not a date"
    assert filing_day("replay-tomorrow-ab12", "2026-03-05") == "2026-03-05"


def test_three_replayed_past_days_are_three_partitions(ml_home: Path, adult_spec: DatasetSpec, world) -> None:  # noqa: F811
    world, instance = world
    now = today(adult_spec)
    days = [now - timedelta(days=k) for k in (3, 2, 1)]
    drift = DriftConfig(days[0], numeric_shift={"age": 2.0}, ramp_days=3)
    log = PredictionLog(ml_home / "prediction_log")
    scorer = Scorer(adult_spec, world.model, world.tag, log)
    adapter = request_schemas(adult_spec).record_adapter
    try:
        for i, day in enumerate(days):
            rows = day_rows(adult_spec, day, 1200, drift, seed=i, first_id=10**9 * (i + 1))
            records = [adapter.validate_python(r) for r in request_records(adult_spec, rows)]
            scorer.score(records, requests=[(replay_request_id(day), len(records))])
    finally:
        log.close()

    folders = sorted(p.name for p in (ml_home / "prediction_log").iterdir())
    assert folders == [d.isoformat() for d in days], "filed under the replayed days, none under today"
    first = json.loads(next((ml_home / "prediction_log" / days[0].isoformat()).glob("*.jsonl")).open().readline())
    assert first["time"][:10] == now.isoformat(), "each line keeps the real serving time"
    assert first["request_id"].startswith(f"replay-{days[0].isoformat()}-")

    defs = build_definitions(adult_spec, env="local")
    psi = []
    for day in days:
        result = run_day(defs, instance, day.isoformat())
        assert result.success
        meta = result.asset_materializations_for_node("model_monitoring")[0].metadata
        assert meta["dagster/row_count"].value == 1200
        psi.append(meta["psi_age"].value)
    for asset in ("prediction_log", "model_monitoring"):
        assert instance.get_materialized_partitions(AssetKey(asset)) == {d.isoformat() for d in days}
    assert psi == sorted(psi) and psi[-1] > psi[0] + 0.1, f"age drift grows day by day: {psi}"
