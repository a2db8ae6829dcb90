"""PostgresPandasIOManager: the production warehouse, pandas frames as PostgreSQL tables that take concurrent writers.

One table per asset in ``db_schema``. A partitioned output replaces exactly the rows of its time window (the
asset's ``partition_expr`` column) in one transaction: DELETE of the window, then COPY of the new rows. Writers of
different partitions never wait for each other (they touch disjoint rows); writers of the same partition queue
on a transaction-scoped advisory lock, so a rerun never duplicates rows. Inputs read the time window the
partition mapping asks for (e.g. the training set's "N days ending at D"), or the whole table when unpartitioned.
Creating a table or adding columns happens in a short transaction of its own under a per-table advisory lock.

Rows travel as CSV through COPY (Arrow writes and parses it); each table's Arrow schema, with pandas' metadata, is
kept in ``<db_schema>.ml_assets_tables``, so a read returns the dtypes the asset wrote (nullable integers, Arrow
strings, timestamps; timestamps keep microseconds, PostgreSQL's resolution).

An asset that declares its columns (``resources.warehouse_tables``: the spec's types) has every write conformed
to them first, so the table's column types come from the declaration, never from one partition's rows (an
all-null column would otherwise be created as text and refuse the numbers of a later day); a column that holds
nothing but nulls is retyped to its declaration, and reads come back in the declared dtypes.
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime

import pandas as pd
import pyarrow as pa
import pyarrow.csv as pa_csv
from dagster import ConfigurableIOManager, InputContext, OutputContext
from psycopg2 import sql
from pydantic import Field

from resources.warehouse_tables import WarehouseError, conform, conform_read, declared_dtypes, dtype_name

CATALOG = "ml_assets_tables"
DTYPES_KEY = b"ml_assets_dtypes"
__all__ = ["PostgresPandasIOManager", "WarehouseError"]


def postgres_type(field: pa.Field) -> str:
    """The PostgreSQL column type for an Arrow field; unsupported types are refused by name."""
    t = field.type
    if pa.types.is_dictionary(t):
        t = t.value_type
    if pa.types.is_boolean(t):
        return "boolean"
    if pa.types.is_int8(t) or pa.types.is_int16(t) or pa.types.is_uint8(t):
        return "smallint"
    if pa.types.is_int32(t) or pa.types.is_uint16(t):
        return "integer"
    if pa.types.is_int64(t) or pa.types.is_uint32(t):
        return "bigint"
    if pa.types.is_floating(t):
        return "real" if t.bit_width <= 32 else "double precision"
    if pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_string_view(t) or pa.types.is_null(t):
        return "text"
    if pa.types.is_timestamp(t):
        return "timestamp with time zone" if t.tz else "timestamp without time zone"
    if pa.types.is_date(t):
        return "date"
    raise WarehouseError(f"column {field.name!r} has type {field.type}, which the warehouse does not store")


def csv_read_type(t: pa.DataType) -> pa.DataType:
    """The Arrow type to parse a column's CSV text as, before casting to the written type."""
    if pa.types.is_dictionary(t) or pa.types.is_null(t):
        return pa.string()
    if pa.types.is_timestamp(t):
        return pa.timestamp("us", tz=t.tz)
    return t


class PostgresPandasIOManager(ConfigurableIOManager):
    """Pandas DataFrames as PostgreSQL tables, partitioned by a time column, safe for concurrent runs."""

    url: str = Field(description="libpq URL, e.g. postgresql://user:secret@db:5432/warehouse")
    db_schema: str = Field("ml", description="PostgreSQL schema holding one table per asset")

    # ---- Dagster's IO manager interface ------------------------------------------------------------------------
    def handle_output(self, context: OutputContext, obj: pd.DataFrame) -> None:
        if not isinstance(obj, pd.DataFrame):
            raise WarehouseError(
                f"{context.asset_key.to_user_string()}: the warehouse stores DataFrames, got {type(obj)}"
            )
        table = context.asset_key.path[-1]
        declared = declared_dtypes(context.definition_metadata)
        if declared is not None:
            obj = conform(obj, declared, f"{context.asset_key.to_user_string()}, table {self.db_schema}.{table}")
        try:
            data = pa.Table.from_pandas(obj, preserve_index=False)
            # pandas' Arrow metadata does not say which storage a string column had: record the dtypes too
            dtypes = json.dumps({str(c): dtype_name(t) for c, t in obj.dtypes.items()}).encode()
            data = data.replace_schema_metadata({**data.schema.metadata, DTYPES_KEY: dtypes})
        except (pa.ArrowException, ValueError) as e:
            raise WarehouseError(
                f"{context.asset_key.to_user_string()}: cannot store the frame as table {table}: {e}"
            ) from e
        try:
            columns = {f.name: postgres_type(f) for f in data.schema}
        except WarehouseError as e:
            raise WarehouseError(f"{context.asset_key.to_user_string()}, table {self.db_schema}.{table}: {e}") from e
        window, column = None, None
        if context.has_asset_partitions:
            column = self._partition_column(context, context.definition_metadata, data.schema.names)
            window = context.asset_partitions_time_window
            self._check_rows_in_window(context, obj[column], window.start, window.end)
        with self._connect() as conn:
            self._ensure_table(conn, table, columns, data.schema, column)
            self._replace_rows(conn, table, data, column, window)
        context.add_output_metadata({"table": f"{self.db_schema}.{table}", "rows": len(obj)})

    def load_input(self, context: InputContext) -> pd.DataFrame:
        table = context.asset_key.path[-1]
        with self._connect() as conn:
            schema = self._stored_schema(conn, table)
            if schema is None:
                raise WarehouseError(
                    f"{context.asset_key.to_user_string()}: no table {self.db_schema}.{table} in the warehouse yet; "
                    "materialize it first"
                )
            where, params = sql.SQL(""), []
            if context.has_asset_partitions:
                upstream = context.upstream_output.definition_metadata if context.upstream_output else {}
                column = self._partition_column(context, upstream, schema.names)
                window = context.asset_partitions_time_window
                where = sql.SQL(" WHERE {} >= %s AND {} < %s").format(sql.Identifier(column), sql.Identifier(column))
                params = self._bounds(schema.field(column).type, window.start, window.end)
            query = (
                sql.SQL("SELECT {} FROM {}").format(
                    sql.SQL(", ").join(sql.Identifier(n) for n in schema.names), self._table(table)
                )
                + where
            )
            buffer = io.BytesIO()
            with conn.cursor() as cur:
                copy = sql.SQL("COPY ({}) TO STDOUT WITH (FORMAT csv, HEADER true)").format(query)
                cur.copy_expert(cur.mogrify(copy, params).decode(), buffer)
        frame = self._frame(buffer.getvalue(), schema)
        declared = declared_dtypes(context.upstream_output.definition_metadata if context.upstream_output else None)
        if declared is None:
            return frame
        return conform_read(frame, declared, f"{context.asset_key.to_user_string()}, table {self.db_schema}.{table}")

    # ---- writing ---------------------------------------------------------------------------------------------
    def _partition_column(self, context: InputContext | OutputContext, metadata, names: list[str]) -> str:
        column = (metadata or {}).get("partition_expr")
        asset = context.asset_key.to_user_string()
        if not column:
            raise WarehouseError(f"{asset} is partitioned but has no 'partition_expr' metadata naming its time column")
        if column not in names:
            raise WarehouseError(f"{asset}: partition column {column!r} is not among its columns {names}")
        return column

    def _check_rows_in_window(self, context: OutputContext, values: pd.Series, start: datetime, end: datetime) -> None:
        stamps = pd.to_datetime(values)
        if stamps.dt.tz is None:
            start, end = _naive_utc(start), _naive_utc(end)
        outside = int((stamps.isna() | (stamps < start) | (stamps >= end)).sum())
        if outside:
            raise WarehouseError(
                f"{context.asset_key.to_user_string()} partition {_key_range(context)}: {outside} rows "
                f"have {values.name} outside [{start}, {end}); they would land in another partition"
            )

    def _ensure_table(
        self, conn, table: str, columns: dict[str, str], schema: pa.Schema, partition_column: str | None
    ) -> None:
        """Create the table or add new columns, retype columns that hold only nulls (refusing other type changes),
        and record the written Arrow schema.

        DDL runs only when something is missing: even ``CREATE INDEX IF NOT EXISTS`` waits for every open write
        transaction on the table, which would serialize writers of different partitions.
        """
        index = f"{table}_{partition_column}_idx" if partition_column else None
        existing, has_index = self._layout(conn, table, index)
        if any(c in existing and existing[c] != t for c, t in columns.items()):
            # typed from partitions where they were all null: take the type they have now (decided under the lock)
            self._retype_empty_columns(conn, table, columns)
        if not existing or set(columns) - set(existing) or (index and not has_index):
            with conn, conn.cursor() as cur:
                cur.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (f"{self.db_schema}.{table}",))
                cur.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(self.db_schema)))
                cur.execute(
                    sql.SQL(
                        "CREATE TABLE IF NOT EXISTS {} (name text PRIMARY KEY, arrow_schema bytea NOT NULL, "
                        "updated_at timestamptz NOT NULL DEFAULT now())"
                    ).format(self._table(CATALOG))
                )
                cur.execute(
                    sql.SQL("CREATE TABLE IF NOT EXISTS {} ({})").format(
                        self._table(table),
                        sql.SQL(", ").join(
                            sql.SQL("{} {}").format(sql.Identifier(c), sql.SQL(t)) for c, t in columns.items()
                        ),
                    )
                )
                for c, t in columns.items():
                    cur.execute(
                        sql.SQL("ALTER TABLE {} ADD COLUMN IF NOT EXISTS {} {}").format(
                            self._table(table), sql.Identifier(c), sql.SQL(t)
                        )
                    )
                if index:
                    cur.execute(
                        sql.SQL("CREATE INDEX IF NOT EXISTS {} ON {} ({})").format(
                            sql.Identifier(index), self._table(table), sql.Identifier(partition_column)
                        )
                    )
        with conn, conn.cursor() as cur:
            cur.execute(
                sql.SQL(
                    "INSERT INTO {} (name, arrow_schema) VALUES (%s, %s) ON CONFLICT (name) DO UPDATE "
                    "SET arrow_schema = EXCLUDED.arrow_schema, updated_at = now()"
                ).format(self._table(CATALOG)),
                (table, schema.serialize().to_pybytes()),
            )

    def _retype_empty_columns(self, conn, table: str, columns: dict[str, str]) -> None:
        """Retype the columns whose stored type differs and that hold no value yet, deciding again under the table's
        lock in one transaction: another writer may have retyped and filled them since they were read (its values
        must survive), or filled them under their old type (then the change is refused)."""
        with conn, conn.cursor() as cur:
            cur.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (f"{self.db_schema}.{table}",))
            existing = self._column_types(cur, table)
            changed = {c: (existing[c], t) for c, t in columns.items() if c in existing and existing[c] != t}
            if not changed:
                return
            cur.execute(
                sql.SQL("SELECT {} FROM {}").format(
                    sql.SQL(", ").join(sql.SQL("count({})").format(sql.Identifier(c)) for c in changed),
                    self._table(table),
                )
            )
            held = dict(zip(changed, cur.fetchone(), strict=True))
            refused = {c: types for c, types in changed.items() if held[c]}
            if refused:
                detail = ", ".join(f"{c}: {old} -> {new}" for c, (old, new) in refused.items())
                raise WarehouseError(f"{self.db_schema}.{table}: column types changed ({detail}); migrate the table")
            for c, (_, new) in changed.items():
                cur.execute(
                    sql.SQL("ALTER TABLE {} ALTER COLUMN {} TYPE {} USING NULL").format(
                        self._table(table), sql.Identifier(c), sql.SQL(new)
                    )
                )

    def _column_types(self, cur, table: str) -> dict[str, str]:
        """The table's columns and their stored types (empty when it does not exist)."""
        cur.execute(
            "SELECT column_name, data_type FROM information_schema.columns WHERE table_schema = %s AND table_name = %s",
            (self.db_schema, table),
        )
        return dict(cur.fetchall())

    def _layout(self, conn, table: str, index: str | None) -> tuple[dict[str, str], bool]:
        """The table's columns and their types (empty when it does not exist), and whether ``index`` exists."""
        with conn, conn.cursor() as cur:
            existing = self._column_types(cur, table)
            has_index = False
            if index:
                cur.execute("SELECT to_regclass(%s)", (sql.Identifier(self.db_schema, index).as_string(cur),))
                has_index = cur.fetchone()[0] is not None
        return existing, has_index

    def _replace_rows(self, conn, table: str, data: pa.Table, column: str | None, window) -> None:
        """In one transaction: delete the window's rows (all rows when unpartitioned), copy the new ones in."""
        key = f"{window.start.isoformat()}/{window.end.isoformat()}" if window else "*"
        plain = pa.table(  # categories as their values: CSV has no dictionary type
            [c.cast(c.type.value_type) if pa.types.is_dictionary(c.type) else c for c in data.columns],
            names=data.schema.names,
        )
        csv = io.BytesIO()
        pa_csv.write_csv(plain, csv, pa_csv.WriteOptions(include_header=False))
        csv.seek(0)
        with conn, conn.cursor() as cur:
            # writers of the same window queue here; other windows go ahead in parallel
            cur.execute("SELECT pg_advisory_xact_lock(hashtext(%s), hashtext(%s))", (f"{self.db_schema}.{table}", key))
            if column is None:
                cur.execute(sql.SQL("DELETE FROM {}").format(self._table(table)))
            else:
                bounds = self._bounds(data.schema.field(column).type, window.start, window.end)
                cur.execute(
                    sql.SQL("DELETE FROM {} WHERE {} >= %s AND {} < %s").format(
                        self._table(table), sql.Identifier(column), sql.Identifier(column)
                    ),
                    bounds,
                )
            copy = sql.SQL("COPY {} ({}) FROM STDIN WITH (FORMAT csv)").format(
                self._table(table), sql.SQL(", ").join(sql.Identifier(n) for n in data.schema.names)
            )
            cur.copy_expert(copy.as_string(cur), csv)

    # ---- reading ---------------------------------------------------------------------------------------------
    def _stored_schema(self, conn, table: str) -> pa.Schema | None:
        with conn, conn.cursor() as cur:
            cur.execute("SELECT to_regclass(%s)", (sql.Identifier(self.db_schema, CATALOG).as_string(cur),))
            if cur.fetchone()[0] is None:
                return None
            cur.execute(sql.SQL("SELECT arrow_schema FROM {} WHERE name = %s").format(self._table(CATALOG)), (table,))
            row = cur.fetchone()
        return pa.ipc.read_schema(pa.py_buffer(bytes(row[0]))) if row else None

    @staticmethod
    def _frame(csv: bytes, schema: pa.Schema) -> pd.DataFrame:
        """Parse COPY's CSV as the written Arrow types, then let pandas' metadata restore the dtypes."""
        options = pa_csv.ConvertOptions(
            column_types={f.name: csv_read_type(f.type) for f in schema},
            true_values=["t"],
            false_values=["f"],
            null_values=[""],
            strings_can_be_null=True,
            quoted_strings_can_be_null=False,
        )
        parsed = pa_csv.read_csv(io.BytesIO(csv), convert_options=options)
        table = pa.Table.from_arrays(
            [parsed.column(f.name).cast(f.type) for f in schema], schema=schema.remove_metadata()
        ).replace_schema_metadata(schema.metadata)
        frame = table.to_pandas()
        for column, dtype in json.loads(schema.metadata.get(DTYPES_KEY, b"{}")).items():
            if dtype.startswith("string[") and dtype_name(frame[column].dtype) != dtype:
                frame[column] = frame[column].astype(dtype)
        return frame

    # ---- plumbing ----------------------------------------------------------------------------------------------
    def _table(self, name: str) -> sql.Composed:
        return sql.SQL("{}.{}").format(sql.Identifier(self.db_schema), sql.Identifier(name))

    @staticmethod
    def _bounds(column_type: pa.DataType, start: datetime, end: datetime) -> list[datetime]:
        """The window's bounds as the column stores them (naive UTC for columns without a time zone)."""
        if pa.types.is_timestamp(column_type) and column_type.tz:
            return [start, end]
        return [_naive_utc(start), _naive_utc(end)]

    @contextmanager
    def _connect(self) -> Iterator:
        import psycopg2

        conn = psycopg2.connect(self.url.replace("postgresql+psycopg2://", "postgresql://", 1))
        try:
            with conn.cursor() as cur:
                cur.execute("SET TIME ZONE 'UTC'")
            conn.commit()
            yield conn
        finally:
            conn.close()


def _naive_utc(moment: datetime) -> datetime:
    return moment.astimezone(UTC).replace(tzinfo=None) if moment.tzinfo else moment


def _key_range(context: OutputContext) -> str:
    keys = context.asset_partition_key_range
    return keys.start if keys.start == keys.end else f"{keys.start}..{keys.end}"
