"""Great Expectations 1.x driven directly (dagster-ge does not support GX 1.x), fast.

An ephemeral context, a pandas datasource, and ``batch.validate(suite)`` per batch: one batch per frame, or per
column for large frames (see GxOptions). Each rule's expectations are tagged ``meta={"check": <name>}`` and results
are matched back by that tag, never by order. GX costs seconds to import, so it is imported only inside the
functions that validate.

This is also the one adapter to GX internals, two speed-ups with no public option, each guarded by a test in
``tests/test_expectations.py`` that fails loudly when GX changes:
- ``_batch_fingerprint`` switches off the pandas execution engine's batch hashing (module constant
  ``HASH_THRESHOLD``);
- ``_configurations_built_once``: ``Expectation.configuration`` is a property that rebuilds the configuration from
  a pydantic dump on every access, and a validate reads it once per metric keyword (about 80 times per
  expectation: 40% of all validation time on small frames). While a validate runs, nothing changes an
  expectation, so each is built once.
"""

from collections import defaultdict
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import pandas as pd

from ml_assets.data.rules import LANDED, Expect, Rule
from ml_assets.dataset import with_columns

PER_COLUMN_ROWS = 20_000


@dataclass(frozen=True)
class GxOptions:
    """How GX is driven. The defaults are the fast settings found by benchmarks/checks.py.

    per_column: one batch per column instead of one per frame. GX's pandas map metrics filter the whole batch
    frame by the column's non-null mask for every expectation (copying every column), so one wide batch costs
    columns x expectations full copies; a one-column batch copies only that column. Each batch has a fixed cost
    (about 20 ms), so None (auto) uses per-column batches only from PER_COLUMN_ROWS rows up.
    fingerprint: let GX hash every batch (it does so twice per validate, only to label the batch); at 1e6 rows
    that hashing alone costs more than every rule together.
    result_format: SUMMARY gives counts, a few unexpected values and their row index (for the sample).
    """

    per_column: bool | None = None
    fingerprint: bool = False
    result_format: str = "SUMMARY"


def run_gx(
    frames: Mapping[str, pd.DataFrame], rules: Sequence[Rule], options: GxOptions | None = None
) -> dict[str, list[Any]]:
    """Validate frames against their rules' expectations with GX; results grouped by check name."""
    import great_expectations as gx
    from great_expectations.data_context.types.base import (
        DataContextConfig,
        InMemoryStoreBackendDefaults,
        ProgressBarsConfig,
    )

    options = options or GxOptions()
    config = DataContextConfig(
        store_backend_defaults=InMemoryStoreBackendDefaults(init_temp_docs_sites=False),
        analytics_enabled=False,  # no usage statistics from pipeline runs
        progress_bars=ProgressBarsConfig(globally=False),
    )
    ctx = gx.get_context(mode="ephemeral", project_config=config)
    # one asset and batch definition for every batch: the frame is a batch parameter, and each added asset
    # re-serialises the datasource config (cost grows with the number of assets)
    frames_def = (
        ctx.data_sources.add_pandas("ml_assets")
        .add_dataframe_asset("frames")
        .add_batch_definition_whole_dataframe("all")
    )
    found: dict[str, list[Any]] = defaultdict(list)
    result_format = {"result_format": options.result_format, "partial_unexpected_count": 20}
    with _batch_fingerprint(options.fingerprint), _configurations_built_once():
        for i, (data, batch_rules) in enumerate(_batches(frames, rules, options.per_column)):
            expectations = [
                getattr(gx.expectations, e.type)(**e.kwargs, meta={"check": r.name}) for r, e in batch_rules
            ]
            batch = frames_def.get_batch(batch_parameters={"dataframe": data})
            suite = gx.ExpectationSuite(name=f"batch_{i}", expectations=expectations)
            for r in batch.validate(suite, result_format=result_format).results:
                found[r.expectation_config.meta["check"]].append(r)
    return found


def _batches(
    frames: Mapping[str, pd.DataFrame], rules: Sequence[Rule], per_column: bool | None
) -> Iterator[tuple[pd.DataFrame, list[tuple[Rule, Expect]]]]:
    """Group expectations into batches: table-level ones on the whole frame, column ones per column."""
    for frame_name, frame in frames.items():
        split = per_column if per_column is not None else len(frame) >= PER_COLUMN_ROWS
        groups: dict[str | None, list[tuple[Rule, Expect]]] = defaultdict(list)
        for r in rules:
            if r.frame != frame_name:
                continue
            for e in r.expects:
                column = e.kwargs.get("column")
                if column is None or not split or _schema_level(e, frame):
                    groups[None].append((r, e))
                elif column in frame.columns:  # a missing column fails its ExpectColumnToExist instead
                    groups[column].append((r, e))
        for column, group in groups.items():
            if column is None:
                group = [(r, e) for r, e in group if not _skip(e, frame)]
                # expectations that read only the schema get the schema: no rows to convert or scan
                schema_only = split and all(_schema_level(e, frame) for _, e in group)
                if split and frame_name != LANDED and not schema_only:
                    # table-level rules (row count) need rows but not every column: convert only those named
                    named = [c for c in dict.fromkeys(e.kwargs.get("column") for _, e in group) if c in frame.columns]
                    data = _fast_dtypes(frame[named or list(frame.columns[:1])])
                else:
                    data = _gx_comparable(frame.iloc[:0] if schema_only else frame)
            elif frame_name == LANDED:
                data = _gx_comparable(frame[[column]])
            else:  # the typed frame has spec dtypes only: straight to GX-fast ones, no detour via Python strings
                data = _fast_dtypes(frame[[column]])
            if group:
                yield data, group


@contextmanager
def _batch_fingerprint(enabled: bool) -> Iterator[None]:
    """Switch GX's per-batch pandas fingerprint (a full-frame hash used only as a batch label) on or off."""
    from great_expectations.execution_engine import pandas_execution_engine as engine

    if enabled:
        yield
        return
    saved = engine.HASH_THRESHOLD
    engine.HASH_THRESHOLD = 0  # the engine hashes only frames smaller than this many bytes
    try:
        yield
    finally:
        engine.HASH_THRESHOLD = saved


@contextmanager
def _configurations_built_once() -> Iterator[None]:
    """While validating, ``Expectation.configuration`` returns one object per expectation instead of a new one."""
    from great_expectations.expectations.expectation import Expectation

    rebuilt = Expectation.__dict__["configuration"]
    built: dict[int, tuple[Any, Any]] = {}

    def configuration(self: Any) -> Any:
        hit = built.get(id(self))
        if hit is None or hit[0] is not self:  # ids are reused only once an object is gone: compare identity
            hit = built[id(self)] = (self, rebuilt.fget(self))
        return hit[1]

    Expectation.configuration = property(configuration)
    try:
        yield
    finally:
        Expectation.configuration = rebuilt


def _fast_dtypes(frame: pd.DataFrame) -> pd.DataFrame:
    """Value-preserving dtypes on which GX's pandas metrics are vectorised.

    Nullable integers become numpy numbers (GX's range metric maps a Python function over every value of an
    extension dtype; ints stay exact below 2**53). Text becomes categorical: GX calls isna/notnull several times
    per expectation, a Python-level scan on object and python-string arrays but a code comparison on categories.
    """
    fixes: dict[str, pd.Series] = {}
    for name, s in frame.items():
        if isinstance(s.dtype, pd.api.extensions.ExtensionDtype) and s.dtype.kind in "iuf":
            fixes[name] = s.astype("float64" if s.hasnans else s.dtype.numpy_dtype)
        elif isinstance(s.dtype, pd.StringDtype) or s.dtype == object:
            codes, uniques = pd.factorize(s)  # Arrow strings factorize natively; categories as plain Python str
            fixes[name] = pd.Series(
                pd.Categorical.from_codes(codes, categories=uniques.astype(object)), index=s.index, name=name
            )
    return with_columns(frame, fixes)


def _schema_level(e: Expect, frame: pd.DataFrame) -> bool:
    """An expectation GX answers from column names and dtypes alone (not per value, as on object columns)."""
    if e.type == "ExpectColumnToExist":
        return True
    column = e.kwargs.get("column")
    return e.type == "ExpectColumnValuesToBeInTypeList" and column in frame.columns and frame[column].dtype != object


def _skip(e: Expect, frame: pd.DataFrame) -> bool:
    """A value rule on a column that is not there: ExpectColumnToExist already says so; GX would raise."""
    column = e.kwargs.get("column")
    return e.type != "ExpectColumnToExist" and column is not None and column not in frame.columns


def _gx_comparable(frame: pd.DataFrame) -> pd.DataFrame:
    """Dtypes GX cannot match by name (pyarrow, categorical, tz-aware) mapped to their numpy kin.

    The kind is kept (text stays text, numbers stay numbers, times stay times), so type rules still judge how a
    column landed; untouched frames pass through without a copy.
    """
    fixes: dict[str, pd.Series] = {}
    for name, s in frame.items():
        dt = s.dtype
        if isinstance(dt, pd.CategoricalDtype):
            fixes[name] = s.astype(dt.categories.dtype)
        elif isinstance(dt, pd.DatetimeTZDtype):
            fixes[name] = s.dt.tz_convert("UTC").dt.tz_localize(None)
        elif isinstance(dt, pd.StringDtype) and dt.storage != "python":
            fixes[name] = s.astype("string[python]")
        elif isinstance(dt, pd.ArrowDtype):
            kind = dt.kind
            if kind in "OSU":
                fixes[name] = s.astype("string[python]")
            elif kind == "M":  # Arrow timestamps, with or without a zone: naive UTC like the typed frame
                if getattr(dt.pyarrow_dtype, "tz", None):
                    s = s.dt.tz_convert(None)
                fixes[name] = s.astype("datetime64[ns]")
            else:
                fixes[name] = s.astype(dt.numpy_dtype if s.notna().all() else "float64")
    return with_columns(frame, fixes)
