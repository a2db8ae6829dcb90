"""Code and data versions, so the Dagster UI shows what is stale and why."""

from __future__ import annotations

import hashlib
import inspect
from types import ModuleType

import pandas as pd
from dagster import DataVersion

from ml_assets.dataset import DatasetSpec


def code_version(spec: DatasetSpec, *modules: ModuleType) -> str:
    """A short hash of the modules' source and the spec: changes when the code or the rules change."""
    digest = hashlib.sha256(spec.model_dump_json().encode())
    for module in modules:
        digest.update(inspect.getsource(module).encode())
    return digest.hexdigest()[:12]


def frame_version(frame: pd.DataFrame) -> DataVersion:
    """Content hash of a frame (values, columns and order), independent of where it is stored."""
    digest = hashlib.sha256(",".join(map(str, frame.columns)).encode())
    if len(frame):
        digest.update(pd.util.hash_pandas_object(frame, index=False).to_numpy().tobytes())
    return DataVersion(digest.hexdigest()[:16])
