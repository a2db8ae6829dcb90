"""Warehouse tables take their column types from the asset's declared schema, never from one partition's rows.

The local DuckDB warehouse in-process (the PostgreSQL one: tests/test_postgres_warehouse.py): a column all null on
the first day and holding text or numbers later, a table the old way typed from an all-null partition, type changes
that would lose values, rows that do not take their declared types; and every stored table of the Definitions
declares its columns.
"""

from __future__ import annotations

import re
from datetime import date, timedelta
from pathlib import Path

import duckdb
import pandas as pd
import pytest
from dagster import AssetIn, AssetKey, DailyPartitionsDefinition, TimeWindowPartitionMapping, asset, materialize

from ml_assets.data.tables import DATA_IO_MANAGER
from ml_assets.dataset import DatasetSpec
from ml_assets.definitions import build_definitions
from resources.duckdb_warehouse import DeclaredTypesDuckDBIOManager
from resources.warehouse_tables import COLUMN_SCHEMA, WarehouseError, column_schema, conform, declared_dtypes

DAYS = [date(2026, 3, 1) + timedelta(days=i) for i in range(2)]
DECLARED = {"day": "datetime64[ns]", "n": "Int64", "s": "string[pyarrow]", "flag": "boolean", "x": "float64"}


def day_rows(day: date, empty_columns: bool) -> pd.DataFrame:
    """Two rows of ``day``; the first day's n, s, flag and x are all null, as pandas reads a column never filled."""
    nothing = pd.Series([None, None], dtype=object)
    return pd.DataFrame(
        {
            "day": pd.to_datetime([day, day]),
            "n": nothing if empty_columns else [1, 2],
            "s": nothing if empty_columns else ["NO", "YES"],
            "flag": nothing if empty_columns else [True, False],
            "x": nothing if empty_columns else [0.5, 1.5],
        }
    )


def graph(rows_of):
    daily = DailyPartitionsDefinition(start_date=DAYS[0].isoformat(), end_date=(DAYS[-1] + timedelta(1)).isoformat())

    @asset(
        partitions_def=daily,
        io_manager_key="warehouse_io_manager",
        metadata={"partition_expr": "day", **column_schema(DECLARED)},
    )
    def stops(context) -> pd.DataFrame:
        return rows_of(date.fromisoformat(context.partition_key))

    @asset(
        partitions_def=daily,
        ins={"stops": AssetIn(partition_mapping=TimeWindowPartitionMapping(start_offset=-1))},
    )
    def both_days(stops: pd.DataFrame) -> pd.DataFrame:
        return stops

    return stops, both_days


def run(assets, day: date, database: Path, selection=None):
    return materialize(
        assets,
        selection=selection,
        partition_key=day.isoformat(),
        resources={"warehouse_io_manager": DeclaredTypesDuckDBIOManager(database=str(database), schema="ml")},
        raise_on_error=False,
    )


def stored_types(database: Path, table: str) -> dict[str, str]:
    with duckdb.connect(str(database), read_only=True) as db:
        return dict(
            db.execute(
                "SELECT column_name, data_type FROM information_schema.columns WHERE table_name = ? "
                "ORDER BY ordinal_position",
                [table],
            ).fetchall()
        )


def failure(result) -> str:
    event = next(e for e in result.all_events if e.is_step_failure)
    error, parts = event.step_failure_data.error, []
    while error is not None:
        parts.append(error.message)
        error = error.cause
    return "\n".join(parts)


EXPECTED = {"day": "TIMESTAMP_NS", "n": "BIGINT", "s": "VARCHAR", "flag": "BOOLEAN", "x": "DOUBLE"}


def test_a_column_all_null_on_the_first_day_takes_its_declared_type(tmp_path: Path) -> None:
    database = tmp_path / "w.duckdb"
    stops, both_days = graph(lambda day: day_rows(day, empty_columns=day == DAYS[0]))
    assert run([stops], DAYS[0], database).success
    assert stored_types(database, "stops") == EXPECTED
    assert run([stops], DAYS[1], database).success  # the library made s INTEGER and refused 'NO' here
    result = run([stops, both_days], DAYS[1], database, selection=[both_days])
    assert result.success
    read = result.output_for_node("both_days")
    assert {c: str(t) for c, t in read.dtypes.items()} == {**DECLARED, "s": "string"}
    assert read["s"].dtype.storage == "pyarrow"
    assert read.sort_values("day")["s"].tolist() == [pd.NA, pd.NA, "NO", "YES"]


def test_a_table_typed_from_an_all_null_partition_heals_on_the_next_write(tmp_path: Path) -> None:
    """What the library left behind: s INTEGER (all null) and day TIMESTAMP_S (pandas' seconds); the next write
    retypes the first and widens the second without losing a value."""
    database = tmp_path / "w.duckdb"
    with duckdb.connect(str(database)) as db:
        db.execute("CREATE SCHEMA ml")
        db.execute("CREATE TABLE ml.stops (day TIMESTAMP_S, n BIGINT, s INTEGER, flag BOOLEAN, x DOUBLE)")
        db.execute("INSERT INTO ml.stops VALUES ('2026-03-01', NULL, NULL, NULL, NULL)")
    stops, _ = graph(lambda day: day_rows(day, empty_columns=False))
    assert run([stops], DAYS[1], database).success
    assert stored_types(database, "stops") == EXPECTED
    with duckdb.connect(str(database), read_only=True) as db:
        assert db.execute("SELECT count(*), count(s) FROM ml.stops").fetchone() == (3, 2)


def test_a_type_change_that_would_lose_values_is_refused_naming_the_column(tmp_path: Path) -> None:
    database = tmp_path / "w.duckdb"
    with duckdb.connect(str(database)) as db:
        db.execute("CREATE SCHEMA ml")
        db.execute("CREATE TABLE ml.stops (day TIMESTAMP_NS, n BIGINT, s INTEGER, flag BOOLEAN, x DOUBLE)")
        db.execute("INSERT INTO ml.stops VALUES ('2026-03-01', 1, 7, true, 0.5)")
    stops, _ = graph(lambda day: day_rows(day, empty_columns=False))
    result = run([stops], DAYS[1], database)
    assert not result.success
    assert "stops, table ml.stops: column 's' is stored as INTEGER with 1 values, but declared VARCHAR" in failure(
        result
    )


@pytest.mark.parametrize(
    ("column", "values", "message"),
    [
        ("n", ["seven", None], "column 'n' (object, e.g. ['seven']) does not take its declared type Int64"),
        ("n", [1.5, None], "column 'n' (float64, e.g. [1.5]) does not take its declared type Int64"),
        ("day", pd.to_datetime(["2026-03-02"] * 2, utc=True), "column 'day' (datetime64[ns, UTC]"),
    ],
)
def test_rows_that_do_not_take_their_declared_types_are_refused(column: str, values, message: str) -> None:
    rows = day_rows(DAYS[1], empty_columns=False).assign(**{column: values})
    with pytest.raises(WarehouseError, match=re.escape(message)):
        conform(rows, DECLARED, "stops")


def test_rows_with_other_columns_than_declared_are_refused() -> None:
    rows = day_rows(DAYS[1], empty_columns=False).drop(columns=["x"]).assign(extra=1)
    with pytest.raises(
        WarehouseError, match=r"stops: the rows do not match .*missing \['x'\]; not declared \['extra'\]"
    ):
        conform(rows, DECLARED, "stops")


def test_every_stored_table_declares_its_columns_from_the_spec(adult_spec: DatasetSpec) -> None:
    """Each asset stored in the warehouse or the Parquet tables declares every column; the spec's columns in their spec types."""
    defs = build_definitions(adult_spec, env="local")
    graph_ = defs.get_repository_def().asset_graph
    stored = {}
    for key in graph_.get_all_asset_keys():
        node = graph_.get(key)
        manager = node.assets_def.get_io_manager_key_for_asset_key(key) if node.is_materializable else None
        if manager in ("warehouse_io_manager", DATA_IO_MANAGER):
            stored[key.to_user_string()] = declared_dtypes(node.metadata)
    assert set(stored) >= {"raw_data", "features", "prediction_log", "labels", "batch_predictions"}
    undeclared = [name for name, dtypes in stored.items() if dtypes is None]
    assert undeclared == [], f"stored without declared columns: {undeclared}"
    for name in ("raw_data", "features"):
        assert {c: stored[name][c] for c in adult_spec.column_names} == adult_spec.pandas_dtypes, name
    assert COLUMN_SCHEMA in graph_.get(AssetKey("raw_data")).metadata
