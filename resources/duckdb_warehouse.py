"""The local warehouse: Dagster's DuckDB-pandas IO manager, with tables typed by their declared schema.

The library creates a table from the first frame it stores (``CREATE TABLE ... AS SELECT * FROM frame``), so an
all-null column of the first partition becomes INTEGER and every later partition holding text fails to insert.
Here an asset that declares its columns (``resources.warehouse_tables``) gets a table of exactly those columns
and types, whatever a partition holds: created with them, a declared column the table lacks added, a column that
still holds nothing but nulls retyped (a table the old way typed from an all-null partition heals on the next
write) or widened without loss (a timestamp in seconds to nanoseconds), any other type difference refused by
name. Reads return the declared columns in their declared dtypes. An asset that declares nothing is stored as the
library stores it.

As in the library, the partition's old rows are deleted before the new ones are written (``DbIOManager`` does it
before calling the handler), so a refused write leaves that partition empty and its materialization failed.
"""

from __future__ import annotations

from collections.abc import Sequence

import duckdb
import pandas as pd
import pyarrow as pa
from dagster import InputContext, OutputContext
from dagster_duckdb.io_manager import DuckDbClient
from dagster_duckdb_pandas import DuckDBPandasIOManager, DuckDBPandasTypeHandler

from resources.warehouse_tables import (
    DUCKDB_TYPES,
    WarehouseError,
    conform,
    conform_read,
    declared_dtypes,
    quoted,
)

ROWS_VIEW = "ml_assets_rows"  # the frame being written, registered on the connection for the INSERT
# stored type -> declared type changes that keep every value: tables the library typed from pandas' own dtypes
# (a landing day written as datetime64[s] became TIMESTAMP_S) take the declared type in place
LOSSLESS = {
    ("TIMESTAMP_S", "TIMESTAMP_NS"),
    ("TIMESTAMP_MS", "TIMESTAMP_NS"),
    ("TIMESTAMP", "TIMESTAMP_NS"),
    ("TINYINT", "BIGINT"),
    ("SMALLINT", "BIGINT"),
    ("INTEGER", "BIGINT"),
    ("FLOAT", "DOUBLE"),
}


def stored_columns(connection, schema: str, table: str) -> dict[str, str]:
    """The table's columns and their DuckDB types; empty when the table does not exist."""
    rows = connection.execute(
        "SELECT column_name, data_type FROM information_schema.columns WHERE table_schema = ? AND table_name = ? "
        "ORDER BY ordinal_position",
        [schema, table],
    ).fetchall()
    return dict(rows)


def ensure_table(connection, schema: str, table: str, declared: dict[str, str], where: str) -> None:
    """Create the table with the declared types, or bring an existing one to them (see the module docstring)."""
    name = f"{quoted(schema)}.{quoted(table)}"
    existing = stored_columns(connection, schema, table)
    if not existing:
        columns = ", ".join(f"{quoted(c)} {DUCKDB_TYPES[t]}" for c, t in declared.items())
        connection.execute(f"CREATE TABLE IF NOT EXISTS {name} ({columns})")
        return
    for column, dtype in declared.items():
        wanted = DUCKDB_TYPES[dtype]
        if column not in existing:
            connection.execute(f"ALTER TABLE {name} ADD COLUMN {quoted(column)} {wanted}")
        elif existing[column] != wanted:
            held = connection.execute(f"SELECT count({quoted(column)}) FROM {name}").fetchone()[0]
            if held and (existing[column], wanted) not in LOSSLESS:
                raise WarehouseError(
                    f"{where}: column {column!r} is stored as {existing[column]} with {held} values, but declared "
                    f"{wanted} ({dtype}); migrate the table"
                )
            try:
                connection.execute(f"ALTER TABLE {name} ALTER COLUMN {quoted(column)} SET DATA TYPE {wanted}")
            except duckdb.Error as e:
                raise WarehouseError(
                    f"{where}: column {column!r} stored as {existing[column]} cannot take its declared type "
                    f"{wanted}: {e}"
                ) from e


class DeclaredTypesDuckDBHandler(DuckDBPandasTypeHandler):
    """Stores and loads pandas frames in the table types their asset declares."""

    def handle_output(self, context: OutputContext, table_slice, obj: pd.DataFrame, connection):
        declared = declared_dtypes(context.definition_metadata)
        if declared is None:
            return super().handle_output(context, table_slice, obj, connection)
        where = f"{context.asset_key.to_user_string()}, table {table_slice.schema}.{table_slice.table}"
        rows = conform(obj, declared, where)
        ensure_table(connection, table_slice.schema, table_slice.table, declared, where)
        columns = ", ".join(quoted(c) for c in declared)
        connection.register(ROWS_VIEW, pa.Table.from_pandas(rows, preserve_index=False))
        try:
            connection.execute(
                f"INSERT INTO {quoted(table_slice.schema)}.{quoted(table_slice.table)} ({columns}) "
                f"SELECT {columns} FROM {ROWS_VIEW}"
            )
        finally:
            connection.unregister(ROWS_VIEW)
        count = "dagster/partition_row_count" if context.has_partition_key else "dagster/row_count"
        context.add_output_metadata({count: len(rows), "dagster/storage_kind": "duckdb"})

    def load_input(self, context: InputContext, table_slice, connection) -> pd.DataFrame:
        upstream = context.upstream_output.definition_metadata if context.upstream_output else None
        declared = declared_dtypes(upstream)
        if declared is None:
            return super().load_input(context, table_slice, connection)
        wanted = {c: declared[c] for c in (table_slice.columns or declared)}
        where = f"{context.asset_key.to_user_string()}, table {table_slice.schema}.{table_slice.table}"
        if table_slice.partition_dimensions and len(context.asset_partition_keys) == 0:
            return conform_read(pd.DataFrame(), wanted, where)
        existing = stored_columns(connection, table_slice.schema, table_slice.table)
        if not existing:
            raise WarehouseError(f"{where}: no such table in the warehouse yet; materialize it first")
        present = [quoted(c) for c in wanted if c in existing]
        query = DuckDbClient.get_select_statement(table_slice._replace(columns=present))
        return conform_read(connection.execute(query).fetchdf(), wanted, where)


class DeclaredTypesDuckDBIOManager(DuckDBPandasIOManager):
    """DuckDBPandasIOManager whose tables take their column types from the asset's declared schema."""

    @staticmethod
    def type_handlers() -> Sequence[DeclaredTypesDuckDBHandler]:
        return [DeclaredTypesDuckDBHandler()]
