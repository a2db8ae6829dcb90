"""Declared column types of warehouse tables, shared by the DuckDB and the PostgreSQL IO managers.

A table takes its column types from its asset's declared schema (Dagster's standard ``dagster/column_schema``
definition metadata, which the asset builds from the dataset spec), never from the rows of one partition: a
partition where a column is all null (a column recorded only from July on) would otherwise fix the column's type
from nothing (DuckDB makes it INTEGER, pandas an ``object`` of Nones), and the first partition holding text would
fail to write. Declared types are pandas dtypes; each warehouse maps them to its SQL types. Writes are conformed to
the declared schema (refused, naming the column, when a value cannot take its type); reads come back in it.
"""

from __future__ import annotations

from collections.abc import Mapping

import pandas as pd
from dagster import TableColumn, TableSchema, TableSchemaMetadataValue

COLUMN_SCHEMA = "dagster/column_schema"

# declared type (a pandas dtype) -> DuckDB type; PostgreSQL's come from the Arrow type of the conformed frame
DUCKDB_TYPES: dict[str, str] = {
    "Int64": "BIGINT",
    "int64": "BIGINT",
    "Int8": "TINYINT",
    "int8": "TINYINT",
    "float64": "DOUBLE",
    "string[pyarrow]": "VARCHAR",
    "datetime64[ns]": "TIMESTAMP_NS",
    "boolean": "BOOLEAN",
}


def quoted(name: str) -> str:
    """A column or table name as a SQL identifier (DuckDB and PostgreSQL quote alike)."""
    return '"' + name.replace('"', '""') + '"'


class WarehouseError(ValueError):
    """An output or input the warehouse cannot take, naming the asset, table and column."""


def table_schema(dtypes: Mapping[str, str]) -> TableSchema:
    """The declared schema of a table: its columns in order, each with its pandas dtype."""
    unknown = {c: t for c, t in dtypes.items() if t not in DUCKDB_TYPES}
    if unknown:
        raise ValueError(f"undeclarable column types {unknown}; a warehouse column is one of {list(DUCKDB_TYPES)}")
    return TableSchema(columns=[TableColumn(name, dtype) for name, dtype in dtypes.items()])


def column_schema(dtypes: Mapping[str, str]) -> dict[str, TableSchema]:
    """Definition metadata declaring a table's columns (merge it into the asset's ``metadata``)."""
    return {COLUMN_SCHEMA: table_schema(dtypes)}


def declared_dtypes(metadata: Mapping[str, object] | None) -> dict[str, str] | None:
    """The declared column dtypes in an asset's definition metadata, or None when it declares none."""
    value = (metadata or {}).get(COLUMN_SCHEMA)
    if isinstance(value, TableSchemaMetadataValue):
        value = value.schema
    if not isinstance(value, TableSchema):
        return None
    return {c.name: c.type for c in value.columns}


def dtype_name(dtype: object) -> str:
    """A dtype's name, with the storage of string columns (``str()`` says only "string")."""
    return f"string[{dtype.storage}]" if isinstance(dtype, pd.StringDtype) else str(dtype)


def conform(frame: pd.DataFrame, declared: Mapping[str, str], where: str) -> pd.DataFrame:
    """``frame`` with exactly the declared columns, in order, each cast to its declared dtype.

    A frame whose columns differ from the declared ones, or a value that does not take its column's type (text
    in a number column, a fraction in an integer column, a time zone on a naive timestamp), is refused with a
    WarehouseError naming ``where`` and the column: a table never silently changes what a column holds.
    """
    missing = [c for c in declared if c not in frame.columns]
    undeclared = [str(c) for c in frame.columns if c not in declared]
    if missing or undeclared:
        raise WarehouseError(
            f"{where}: the rows do not match the table's declared columns"
            + (f"; missing {missing}" if missing else "")
            + (f"; not declared {undeclared}" if undeclared else "")
        )
    out = {}
    for name, dtype in declared.items():
        values = frame[name]
        if dtype_name(values.dtype) == dtype:
            out[name] = values
            continue
        try:
            out[name] = values.astype(dtype)
        except (TypeError, ValueError) as e:
            sample = values.dropna().head(3).tolist()
            raise WarehouseError(
                f"{where}: column {name!r} ({dtype_name(values.dtype)}, e.g. {sample}) does not take its "
                f"declared type {dtype}: {e}"
            ) from e
    return pd.DataFrame(out, index=frame.index)


def conform_read(frame: pd.DataFrame, declared: Mapping[str, str], where: str) -> pd.DataFrame:
    """Rows read back in the declared schema: a declared column the table lacks (added to the spec after these
    rows were written) comes back all null, a stored column no longer declared is left out."""
    frame = frame.copy()
    for name, dtype in declared.items():
        if name not in frame.columns:
            frame[name] = pd.Series(index=frame.index, dtype=dtype)
    return conform(frame[list(declared)], declared, where)
