"""The production warehouse (PostgresPandasIOManager) against the machine's real PostgreSQL.

Daily partitions written by separate Dagster runs, the training set's "N days ending at D" window read back
through TimeWindowPartitionMapping with the written dtypes, runs writing different partitions at the same time,
a writer of one partition never blocking another, and clear errors for bad outputs.
"""

from __future__ import annotations

import re
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import date, timedelta
from pathlib import Path

import pandas as pd
import pytest
from dagster import (
    AssetIn,
    AssetSelection,
    DagsterInstance,
    DailyPartitionsDefinition,
    TimeWindowPartitionMapping,
    asset,
    materialize,
)

from ml_assets.data.assets import build_data_assets
from ml_assets.data.window import split_counts
from ml_assets.dataset import DatasetSpec, TrainingWindow
from ml_assets.datasets.samples import demo_training_set
from ml_assets.datasets.simulator import simulate
from ml_assets.environments import local_resources
from ml_assets.partitions import LANDING_DAY
from resources.postgres_warehouse import PostgresPandasIOManager, WarehouseError

pytestmark = pytest.mark.integration

DAYS = [date(2026, 3, 1) + timedelta(days=i) for i in range(4)]
WINDOW = 3
ROWS_PER_DAY = 5_000


@pytest.fixture
def warehouse_url(postgres_database: str) -> str:
    return f"postgresql://postgres@127.0.0.1:5432/{postgres_database}"


@pytest.fixture(scope="module")
def rows(adult_spec: DatasetSpec) -> pd.DataFrame:
    """Spec-typed feature rows (nullable ints, Arrow strings, timestamps), dealt over the days."""
    frame = demo_training_set(adult_spec, ROWS_PER_DAY * len(DAYS), seed=0).drop(columns=["split", "window_end"])
    frame[LANDING_DAY] = pd.to_datetime([DAYS[i % len(DAYS)] for i in range(len(frame))])
    return frame


def day_rows(rows: pd.DataFrame, day: date) -> pd.DataFrame:
    return rows[rows[LANDING_DAY] == pd.Timestamp(day)].reset_index(drop=True)


def failure_text(result, node: str) -> str:
    """The step's error and its causes, as text."""
    error, parts = result.failure_data_for_node(node).error, []
    while error is not None:
        parts.append(error.to_string())
        error = error.cause
    return "\n".join(parts)


def build_graph(rows: pd.DataFrame, delay_s: float = 0.0):
    daily = DailyPartitionsDefinition(
        start_date=DAYS[0].isoformat(), end_date=(DAYS[-1] + timedelta(days=1)).isoformat()
    )

    @asset(partitions_def=daily, io_manager_key="warehouse_io_manager", metadata={"partition_expr": LANDING_DAY})
    def features(context) -> pd.DataFrame:
        time.sleep(delay_s)
        return day_rows(rows, date.fromisoformat(context.partition_key))

    @asset(
        partitions_def=daily,
        io_manager_key="warehouse_io_manager",
        metadata={"partition_expr": "window_end"},
        ins={"features": AssetIn(partition_mapping=TimeWindowPartitionMapping(start_offset=-(WINDOW - 1)))},
    )
    def training_set(context, features: pd.DataFrame) -> pd.DataFrame:
        out = features.copy()
        out["window_end"] = pd.Timestamp(context.partition_key)
        return out

    return features, training_set


def run(assets, partition: str, url: str, selection=None):
    return materialize(
        assets,
        selection=selection,
        partition_key=partition,
        resources={"warehouse_io_manager": PostgresPandasIOManager(url=url)},
    )


def test_daily_partitions_and_the_training_window_round_trip(warehouse_url: str, rows: pd.DataFrame) -> None:
    features, training_set = build_graph(rows)
    for day in DAYS[:WINDOW]:
        assert run([features], day.isoformat(), warehouse_url).success
    end = DAYS[WINDOW - 1].isoformat()
    result = run([features, training_set], end, warehouse_url, selection=[training_set])
    assert result.success
    window = result.output_for_node("training_set")
    expected = pd.concat([day_rows(rows, d) for d in DAYS[:WINDOW]], ignore_index=True)
    got = window.sort_values("record_id").reset_index(drop=True).drop(columns=["window_end"])
    pd.testing.assert_frame_equal(got, expected.sort_values("record_id").reset_index(drop=True))
    assert (window["window_end"] == pd.Timestamp(end)).all()

    # a rerun of one day replaces exactly that day's rows
    assert run([features], DAYS[0].isoformat(), warehouse_url).success
    again = run([features, training_set], end, warehouse_url, selection=[training_set]).output_for_node("training_set")
    assert len(again) == len(expected) and again["record_id"].is_unique


def test_concurrent_runs_write_different_partitions(warehouse_url: str, rows: pd.DataFrame) -> None:
    """Four runs, one per day, released together; a fifth writes a day a second time at the same moment."""
    features, training_set = build_graph(rows)
    start = threading.Barrier(len(DAYS) + 1)

    def one(day: date) -> bool:
        start.wait()
        return run([features], day.isoformat(), warehouse_url).success

    with ThreadPoolExecutor(len(DAYS) + 1) as pool:
        done = list(pool.map(one, [*DAYS, DAYS[1]]))
    assert all(done)
    for end in (DAYS[2], DAYS[3]):
        result = run([features, training_set], end.isoformat(), warehouse_url, selection=[training_set])
        window = result.output_for_node("training_set")
        days = [end - timedelta(days=k) for k in range(WINDOW)]
        assert sorted(window["record_id"]) == sorted(pd.concat([day_rows(rows, d) for d in days])["record_id"])


def test_a_writer_of_one_partition_does_not_block_another(warehouse_url: str, rows: pd.DataFrame) -> None:
    """A transaction holding day 1's rows (as a slow writer would) lets day 2 commit, and makes day 1 wait."""
    import psycopg2

    features, _ = build_graph(rows)
    for day in DAYS[:2]:
        assert run([features], day.isoformat(), warehouse_url).success
    holder = psycopg2.connect(warehouse_url)
    try:
        with holder.cursor() as cur:
            cur.execute("DELETE FROM ml.features WHERE landing_day = %s", (DAYS[0],))  # row locks on day 1, open
        assert run([features], DAYS[1].isoformat(), warehouse_url).success  # another day: not blocked
        with ThreadPoolExecutor(1) as pool:
            same_day = pool.submit(run, [features], DAYS[0].isoformat(), warehouse_url)
            time.sleep(1.5)
            assert not same_day.done()  # waits for the open transaction on its rows
            holder.rollback()
            assert same_day.result(timeout=60).success
    finally:
        holder.close()
    with psycopg2.connect(warehouse_url) as conn, conn.cursor() as cur:
        cur.execute("SELECT landing_day::date, count(*) FROM ml.features GROUP BY 1 ORDER BY 1")
        assert cur.fetchall() == [(d, len(day_rows(rows, d))) for d in DAYS[:2]]


def test_bad_outputs_are_refused_with_the_asset_and_column(warehouse_url: str, rows: pd.DataFrame) -> None:
    daily = DailyPartitionsDefinition(start_date=DAYS[0].isoformat())

    @asset(
        name="features",
        partitions_def=daily,
        io_manager_key="warehouse_io_manager",
        metadata={"partition_expr": LANDING_DAY},
    )
    def wrong_day() -> pd.DataFrame:
        return day_rows(rows, DAYS[1])  # rows of another day

    result = materialize(
        [wrong_day],
        partition_key=DAYS[0].isoformat(),
        resources={"warehouse_io_manager": PostgresPandasIOManager(url=warehouse_url)},
        raise_on_error=False,
    )
    assert not result.success
    error = failure_text(result, "features")
    assert WarehouseError.__name__ in error
    assert "features partition 2026-03-01: 5000 rows have landing_day outside [2026-03-01 00:00:00" in error


@pytest.mark.parametrize(
    ("frame", "message"),
    [
        (pd.DataFrame({"x": [b"raw"]}), "table ml.table: column 'x' has type binary, which the warehouse does not"),
        (pd.DataFrame({"x": ["text"]}), r"column types changed \(x: bigint -> text\)"),
    ],
)
def test_unsupported_and_changed_column_types(warehouse_url: str, frame: pd.DataFrame, message: str) -> None:
    @asset(io_manager_key="warehouse_io_manager")
    def table() -> pd.DataFrame:
        return pd.DataFrame({"x": [1, 2]})

    resources = {"warehouse_io_manager": PostgresPandasIOManager(url=warehouse_url)}
    assert materialize([table], resources=resources).success

    @asset(name="table", io_manager_key="warehouse_io_manager")
    def changed() -> pd.DataFrame:
        return frame

    result = materialize([changed], resources=resources, raise_on_error=False)
    assert not result.success
    assert re.search(message, failure_text(result, "table"))


def test_the_real_data_assets_run_on_the_postgres_warehouse(
    warehouse_url: str, ml_home: Path, adult_spec: DatasetSpec
) -> None:
    """raw_data -> features (with their GX checks) per day, then the training window, with the Postgres warehouse
    configured: raw_data and features are Parquet files per day (the tables resource), never SQL tables; the
    window is cut from them."""
    spec = adult_spec.model_copy(update={"training": TrainingWindow(window_days=3, validation_days=1, test_days=1)})
    simulate(spec, ml_home / "landing", DAYS[0], DAYS[2], rows_per_day=600, files_per_day=2, fmt="csv")
    resources = {**local_resources(spec), "warehouse_io_manager": PostgresPandasIOManager(url=warehouse_url)}
    data = build_data_assets(spec)
    instance = DagsterInstance.ephemeral()
    for day in DAYS[:3]:
        result = materialize(
            [data.raw_data, data.features, data.features_checks],
            partition_key=day.isoformat(),
            instance=instance,
            resources=resources,
        )
        assert result.success and all(e.passed for e in result.get_asset_check_evaluations())
    result = materialize(
        list(data),
        selection=AssetSelection.assets("training_set") | AssetSelection.checks_for_assets("training_set"),
        partition_key=DAYS[2].isoformat(),
        instance=instance,
        resources=resources,
    )
    assert result.success
    training = result.output_for_node("training_set")
    assert {s: c.rows for s, c in split_counts(training).items()} == {"train": 600, "validation": 600, "test": 600}
    failed = [e.check_name for e in result.get_asset_check_evaluations() if not e.passed]
    assert failed in ([], ["drift"]), failed  # drift compares with a previous training set: there is none
    assert all(f.endswith(".parquet") for f in training.rows.files)
    import psycopg2

    with psycopg2.connect(warehouse_url) as conn, conn.cursor() as cur:
        cur.execute("SELECT table_name FROM information_schema.tables WHERE table_schema = 'ml'")
        assert not {"raw_data", "features"} & {name for (name,) in cur.fetchall()}


def test_a_column_all_null_on_the_first_day_takes_its_declared_type(warehouse_url: str) -> None:
    """The declared schema, not the first partition, types the table: an all-null first day (pandas: object of
    Nones, Arrow: null, once created as text) and numbers and text later; reads come back in the declared dtypes."""
    import psycopg2

    from tests.test_warehouse_tables import DAYS as TWO_DAYS
    from tests.test_warehouse_tables import DECLARED, day_rows, graph

    stops, both_days = graph(lambda day: day_rows(day, empty_columns=day == TWO_DAYS[0]))
    for day in TWO_DAYS:
        assert run([stops], day.isoformat(), warehouse_url).success
    result = run([stops, both_days], TWO_DAYS[1].isoformat(), warehouse_url, selection=[both_days])
    read = result.output_for_node("both_days").sort_values("day")
    assert {c: str(t) for c, t in read.dtypes.items()} == {**DECLARED, "s": "string"}
    assert read["n"].tolist() == [pd.NA, pd.NA, 1, 2] and read["s"].tolist() == [pd.NA, pd.NA, "NO", "YES"]
    with psycopg2.connect(warehouse_url) as conn, conn.cursor() as cur:
        cur.execute(
            "SELECT column_name, data_type FROM information_schema.columns WHERE table_name = 'stops' "
            "ORDER BY ordinal_position"
        )
        assert dict(cur.fetchall()) == {
            "day": "timestamp without time zone",
            "n": "bigint",
            "s": "text",
            "flag": "boolean",
            "x": "double precision",
        }


def test_a_column_typed_from_an_all_null_partition_heals_and_one_holding_values_is_refused(
    warehouse_url: str,
) -> None:
    """A table an undeclared write typed from an all-null day (n text) takes the declared bigint on the next
    write; a column that holds values of another type is refused by name."""
    import psycopg2

    from tests.test_warehouse_tables import DAYS as TWO_DAYS
    from tests.test_warehouse_tables import day_rows, graph

    stops, _ = graph(lambda day: day_rows(day, empty_columns=False))
    with psycopg2.connect(warehouse_url) as conn, conn.cursor() as cur:
        cur.execute("CREATE SCHEMA ml")
        cur.execute("CREATE TABLE ml.stops (day timestamp, n text, s text, flag boolean, x double precision)")
        cur.execute("INSERT INTO ml.stops VALUES ('2026-03-01', NULL, 'NO', NULL, NULL)")
    assert run([stops], TWO_DAYS[1].isoformat(), warehouse_url).success
    with psycopg2.connect(warehouse_url) as conn, conn.cursor() as cur:
        cur.execute("SELECT data_type FROM information_schema.columns WHERE table_name = 'stops' AND column_name = 'n'")
        assert cur.fetchone() == ("bigint",)
        cur.execute("ALTER TABLE ml.stops ALTER COLUMN x TYPE text")
        cur.execute("UPDATE ml.stops SET x = 'half' WHERE s = 'NO'")
    result = materialize(
        [stops],
        partition_key=TWO_DAYS[1].isoformat(),
        resources={"warehouse_io_manager": PostgresPandasIOManager(url=warehouse_url)},
        raise_on_error=False,
    )
    assert not result.success
    assert "ml.stops: column types changed (x: text -> double precision); migrate the table" in failure_text(
        result, "stops"
    )


def test_two_writers_healing_the_same_column_keep_each_others_values(warehouse_url: str) -> None:
    """Two runs write their days at once into a table whose column an all-null day typed as text: each retypes it
    under the table's lock after looking again, so neither wipes the values the other wrote (nor is refused)."""
    import psycopg2

    from tests.test_warehouse_tables import DAYS as TWO_DAYS
    from tests.test_warehouse_tables import day_rows, graph

    stops, _ = graph(lambda day: day_rows(day, empty_columns=False))
    for _ in range(3):  # the race needs both to read the old type before either retypes it: try it a few times
        with psycopg2.connect(warehouse_url) as conn, conn.cursor() as cur:
            cur.execute("CREATE SCHEMA IF NOT EXISTS ml")
            cur.execute("DROP TABLE IF EXISTS ml.stops")
            cur.execute("CREATE TABLE ml.stops (day timestamp, n text, s text, flag boolean, x double precision)")
        with ThreadPoolExecutor(2) as pool:
            results = list(pool.map(lambda day: run([stops], day.isoformat(), warehouse_url).success, TWO_DAYS))
        assert results == [True, True]
        with psycopg2.connect(warehouse_url) as conn, conn.cursor() as cur:
            cur.execute("SELECT count(n), count(*) FROM ml.stops")
            assert cur.fetchone() == (4, 4)
