"""landing_sensor ticks against a real instance and real landing files from the simulator.

It reports one landing_files observation per day whose files changed (data version = the day's fingerprint), names
every folder it cannot use with the reason, and does not observe again a day that the instance already knows with
the same files: after a demo (which records its landings), a sensor switched on with an empty cursor re-ingests
nothing.
"""

from __future__ import annotations

import json
from datetime import date, timedelta
from pathlib import Path

from dagster import AssetKey, DagsterInstance, build_sensor_context

from ml_assets.dataset import DatasetSpec
from ml_assets.datasets.simulator import simulate
from ml_assets.demo import observe_landing
from ml_assets.event_log import DATA_VERSION_TAG
from ml_assets.partitions import daily_partitions, today
from resources.landing import LandingZone
from sensors.folder_sensors import build_landing_sensor

DAY1, DAY2 = date(2026, 3, 1), date(2026, 3, 2)


class Ticker:
    """The real sensor over one landing zone and one instance, keeping the cursor as the daemon would."""

    def __init__(self, spec: DatasetSpec, root: Path, instance: DagsterInstance) -> None:
        self.sensor = build_landing_sensor(daily_partitions(spec))
        self.landing = LandingZone(root=str(root / "landing"), quarantine_root=str(root / "quarantine"))
        self.instance = instance
        self.cursor: str | None = None

    def tick(self):
        context = build_sensor_context(instance=self.instance, cursor=self.cursor, resources={"landing": self.landing})
        result = self.sensor.evaluate_tick(context)
        self.cursor = result.cursor
        for event in result.asset_events:  # what the daemon stores
            self.instance.report_runless_asset_event(event)
        return result

    @staticmethod
    def observed(result) -> dict[str, str]:
        return {e.partition: e.tags[DATA_VERSION_TAG] for e in result.asset_events}


def test_each_changed_day_is_observed_once_and_unusable_folders_are_named(
    ml_home: Path, adult_spec: DatasetSpec
) -> None:
    ticker = Ticker(adult_spec, ml_home, DagsterInstance.ephemeral())
    first = ticker.tick()
    assert first.asset_events == [] and first.skip_message == "no new or changed landing files"

    simulate(adult_spec, ml_home / "landing", DAY1, DAY2, rows_per_day=50)
    (ml_home / "landing" / "not-a-day").mkdir()
    (ml_home / "landing" / "not-a-day" / "x.csv").write_text("a\n1\n")
    (ml_home / "landing" / "2025-12-31").mkdir()  # before the first partition (2026-01-01)
    (ml_home / "landing" / "2025-12-31" / "x.csv").write_text("a\n1\n")
    (ml_home / "landing" / "2026-03-05").mkdir()  # only a temporary file: nothing landed yet
    (ml_home / "landing" / "2026-03-05" / ".part.tmp").write_text("")
    tomorrow = (today(adult_spec) + timedelta(days=1)).isoformat()
    (ml_home / "landing" / tomorrow).mkdir()
    (ml_home / "landing" / tomorrow / "x.csv").write_text("a\n1\n")

    second = ticker.tick()
    seen = ticker.observed(second)
    kinds = sorted((type(e).__name__, e.partition) for e in second.asset_events)
    assert kinds == sorted(
        (k, d) for d in ("2026-03-01", "2026-03-02") for k in ("AssetMaterialization", "AssetObservation")
    )
    assert sorted(seen) == ["2026-03-01", "2026-03-02"]
    assert seen["2026-03-01"] == ticker.landing.fingerprint("2026-03-01")

    third = ticker.tick()
    assert third.asset_events == []
    why = third.skip_message
    assert why.startswith("no new or changed landing files; folders that cannot be used:")
    assert "not-a-day: its name is not a day" in why
    assert "2025-12-31: it is before the first partition 2026-01-01" in why
    assert "2026-03-05: it holds no .csv or .parquet file" in why
    assert f"{tomorrow}: it is after today" in why

    simulate(adult_spec, ml_home / "scratch", DAY2, DAY2, rows_per_day=20, seed=7)
    for f in (ml_home / "scratch" / DAY2.isoformat()).iterdir():
        f.rename(ml_home / "landing" / DAY2.isoformat() / f"late-{f.name}")
    fourth = ticker.observed(ticker.tick())
    assert list(fourth) == ["2026-03-02"] and fourth["2026-03-02"] != seen["2026-03-02"]


def test_a_sensor_switched_on_after_the_demo_observes_nothing_again(ml_home: Path, adult_spec: DatasetSpec) -> None:
    simulate(adult_spec, ml_home / "landing", DAY1, DAY2, rows_per_day=50)
    instance = DagsterInstance.ephemeral()
    observe_landing(instance, [DAY1.isoformat(), DAY2.isoformat()])  # what `ml-assets demo` records
    ticker = Ticker(adult_spec, ml_home, instance)
    result = ticker.tick()
    assert result.asset_events == [] and result.skip_message == "no new or changed landing files"
    assert sorted(json.loads(ticker.cursor)) == ["2026-03-01", "2026-03-02"], "the cursor now knows both days"
    landed = instance.get_materialized_partitions(AssetKey("landing_files"))
    assert landed == {"2026-03-01", "2026-03-02"}, "the UI counts exactly the landed days as present"


def test_a_file_removed_while_a_day_is_observed_is_left_out(tmp_path: Path, monkeypatch) -> None:
    """A writer that renames or removes a file between the listing and its stat must not crash the sensor tick."""
    from ml_assets.data.landing import landing_observation
    from resources.day_folders import DayFolders

    for zone in (
        LandingZone(root=str(tmp_path / "landing"), quarantine_root=str(tmp_path / "q")),
        DayFolders(root=str(tmp_path / "log")),
    ):
        folder = zone.day_dir("2026-03-01")
        folder.mkdir(parents=True)
        kept = folder / "a.parquet" if isinstance(zone, LandingZone) else folder / "a.jsonl"
        kept.write_bytes(b"12345")
        gone = kept.with_name("b" + kept.suffix)  # listed, then removed before its stat
        monkeypatch.setattr(type(zone), "files", lambda self, day, kept=kept, gone=gone: [kept, gone])
        only_kept = zone.fingerprint("2026-03-01")
        monkeypatch.setattr(type(zone), "files", lambda self, day, kept=kept: [kept])
        assert only_kept == zone.fingerprint("2026-03-01")
        monkeypatch.setattr(type(zone), "files", lambda self, day, kept=kept, gone=gone: [kept, gone])
        assert landing_observation(zone, "2026-03-01", only_kept).metadata["bytes"].value == 5
