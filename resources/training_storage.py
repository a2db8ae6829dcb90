"""TrainingStorage: the one place a training launch's inputs and outputs live, reachable from both sides.

The launching step stages a job description there, and the rows to fit when it was handed a frame (a window
handed as a TableScan is read where it lies, on the same volume or object store); every training process (a local
torchrun rank, or a rank in a pod on another node) reads them from there, and rank 0 writes its outputs there
for the step to read back. Nothing goes through the launching machine's local disk, so the local launcher
exercises the same path as the Kubernetes one. ``root`` is a directory (locally under ML_ASSETS_HOME, in a
cluster on a volume every training pod mounts) or any fsspec URL whose backend is installed (``s3://...``
with s3fs, ``gs://...`` with gcsfs).
"""

from __future__ import annotations

import io
import json
import posixpath
from typing import Any

import fsspec
import pandas as pd
from dagster import ConfigurableResource
from fsspec.implementations.local import LocalFileSystem
from pydantic import Field

from resources.parquet_tables import BATCH_ROWS, TableScan, TableWriter


class TrainingStorage(ConfigurableResource):
    """A directory or object-store prefix shared by the launching step and the training processes."""

    root: str = Field(description="directory on a shared volume, or an fsspec URL such as s3://bucket/prefix")

    def location(self, *parts: str) -> str:
        """The URL of ``parts`` under ``root`` (a plain path for local roots, so ranks can open it either way)."""
        fs, base = fsspec.core.url_to_fs(self.root)
        path = posixpath.join(base, *parts)
        return path if isinstance(fs, LocalFileSystem) else fs.unstrip_protocol(path)

    def put_frame(self, url: str, frame: pd.DataFrame) -> str:
        buffer = io.BytesIO()
        frame.to_parquet(buffer, index=False)
        return self.put_bytes(url, buffer.getvalue())

    def put_rows(self, url: str, frame: pd.DataFrame) -> TableScan:
        """``frame`` as a Parquet file of row groups (the unit ranks shard by), readable as a TableScan; its columns
        keep their kind (integers, floats, booleans, naive times) and anything else is stored as text."""
        dtypes = {str(name): storable_dtype(frame[name]) for name in frame.columns}
        with TableWriter(url, dtypes, f"training rows {url}") as writer:
            for start in range(0, len(frame), BATCH_ROWS):
                writer.write(frame.iloc[start : start + BATCH_ROWS].set_axis([str(c) for c in frame.columns], axis=1))
            return writer.close()

    def put_json(self, url: str, value: Any) -> str:
        return self.put_bytes(url, json.dumps(value).encode())

    def put_bytes(self, url: str, data: bytes) -> str:
        fs, path = fsspec.core.url_to_fs(url)
        fs.makedirs(posixpath.dirname(path), exist_ok=True)
        fs.pipe_file(path, data)
        return url

    def read_all(self, url: str) -> dict[str, bytes]:
        """Every file directly under ``url``, by name (raw bytes: decoding is the caller's business)."""
        fs, path = fsspec.core.url_to_fs(url)
        if not fs.isdir(path):
            return {}
        return {posixpath.basename(p): fs.cat_file(p) for p in fs.ls(path, detail=False) if fs.isfile(p)}

    def remove(self, url: str) -> None:
        fs, path = fsspec.core.url_to_fs(url)
        if fs.exists(path):
            fs.rm(path, recursive=True)


def storable_dtype(column: pd.Series) -> str:
    """The TableScan dtype a frame column is staged as (nullable integers and booleans, float64, ns times, text)."""
    kind = column.dtype
    if pd.api.types.is_bool_dtype(kind):
        return "boolean"
    if pd.api.types.is_integer_dtype(kind):
        return "Int64"
    if pd.api.types.is_float_dtype(kind):
        return "float64"
    if pd.api.types.is_datetime64_dtype(kind):
        return "datetime64[ns]"
    return "string[pyarrow]"
