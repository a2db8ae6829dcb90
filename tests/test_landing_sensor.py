"""landing_sensor ticks against a real instance: run requests per landed day, idempotent cursor, changes re-run."""

from __future__ import annotations

from datetime import date
from pathlib import Path

from dagster import DagsterInstance, SkipReason, build_sensor_context

from ml_assets.dataset import DatasetSpec
from ml_assets.datasets.simulator import simulate
from ml_assets.definitions import build_definitions
from ml_assets.partitions import daily_partitions
from resources.landing import LandingZone
from sensors.landing_sensor import build_landing_sensor


def _tick(sensor, landing: LandingZone, cursor: str | None, spec: DatasetSpec):
    defs = build_definitions(spec)
    with DagsterInstance.ephemeral() as instance:
        context = build_sensor_context(
            instance=instance, cursor=cursor, resources={"landing": landing}, definitions=defs
        )
        return sensor.evaluate_tick(context)


def test_sensor_requests_each_landed_day_once(tmp_path: Path, ml_home: Path, adult_spec: DatasetSpec) -> None:
    landing = LandingZone(root=str(tmp_path / "landing"), quarantine_root=str(tmp_path / "quarantine"))
    sensor = build_landing_sensor("ingest_job", daily_partitions(adult_spec))

    first = _tick(sensor, landing, None, adult_spec)
    assert first.run_requests == [] and first.skip_message

    simulate(adult_spec, tmp_path / "landing", date(2026, 3, 1), date(2026, 3, 2), rows_per_day=50)
    (tmp_path / "landing" / "not-a-day").mkdir()
    (tmp_path / "landing" / "not-a-day" / "x.csv").write_text("a\n1\n")
    second = _tick(sensor, landing, first.cursor, adult_spec)
    assert sorted(r.partition_key for r in second.run_requests) == ["2026-03-01", "2026-03-02"]
    assert all(r.job_name in (None, "ingest_job") for r in second.run_requests)

    third = _tick(sensor, landing, second.cursor, adult_spec)
    assert third.run_requests == [] and third.skip_message

    simulate(adult_spec, tmp_path / "scratch", date(2026, 3, 2), date(2026, 3, 2), rows_per_day=20, seed=7)
    for f in (tmp_path / "scratch" / "2026-03-02").iterdir():
        f.rename(tmp_path / "landing" / "2026-03-02" / f"late-{f.name}")
    fourth = _tick(sensor, landing, third.cursor, adult_spec)
    assert [r.partition_key for r in fourth.run_requests] == ["2026-03-02"]
    assert fourth.run_requests[0].run_key != second.run_requests[1].run_key
    assert not isinstance(fourth, SkipReason)
