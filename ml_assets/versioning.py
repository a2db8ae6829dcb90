"""Code and data versions, so the Dagster UI shows what is stale and why.

An asset's code version hashes its own module, every project module it imports, transitively (found by reading
their import statements, function-level imports too), and only the parts of the dataset spec it reads (``uses``):
a new gate threshold makes the evaluation stale, not the raw data; a new category in a column makes everything that
reads columns stale; an edit of the module where raw_data's rules live makes raw_data stale. No list of modules is
kept by hand, so none can miss one.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from types import ModuleType

import pandas as pd
from dagster import DataVersion

from ml_assets.dataset import DatasetSpec
from ml_assets.module_graph import module_closure, module_source


def spec_part(spec: DatasetSpec, uses: Iterable[str]) -> str:
    """The named top-level fields of the spec as canonical JSON."""
    fields = sorted(set(uses))
    unknown = [f for f in fields if f not in DatasetSpec.model_fields]
    if unknown:
        raise KeyError(f"DatasetSpec has no fields {unknown}")
    return json.dumps(spec.model_dump(mode="json", include=set(fields)), sort_keys=True)


def code_version(spec: DatasetSpec, *modules: ModuleType, uses: Iterable[str] = ("columns",)) -> str:
    """A short hash of the modules' source with every project module they import, transitively, and the spec
    fields in ``uses``. Name the asset's own defining module (``sys.modules[__name__]``)."""
    return source_version(*modules, salt=spec_part(spec, uses))


def source_version(*modules: ModuleType, salt: str = "") -> str:
    """A short hash of the modules' source and their project imports, transitively (and ``salt``), for code that
    reads nothing of the spec."""
    digest = hashlib.sha256(salt.encode())
    for name in module_closure(*(m.__name__ for m in modules)):
        digest.update(name.encode())
        digest.update(module_source(name).encode())
    return digest.hexdigest()[:12]


def frame_version(frame: pd.DataFrame) -> DataVersion:
    """Content hash of a frame (values, columns and order), independent of where it is stored."""
    digest = hashlib.sha256(",".join(map(str, frame.columns)).encode())
    if len(frame):
        digest.update(pd.util.hash_pandas_object(frame, index=False).to_numpy().tobytes())
    return DataVersion(digest.hexdigest()[:16])
