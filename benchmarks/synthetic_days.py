"""Landing days of any size for a spec with demo data, written in chunks so memory stays bounded by one chunk.

Each row draws its label from the demo rows, then every other column from a demo row of the same label, chosen
independently per column (class-conditional resampling), with fresh ids and event times over the day and
multiplicative noise on the numbers. The models learn what the columns say about the label, but no synthetic row
is a copy of a demo row: resampling whole rows of a 48,842-row sample a million times made the validation days
copies of the train days, so early-stopped boosted trees (the evaluation's reference model) memorised them for
2,000 rounds, and near-unique values such as Adult's ``fnlwgt`` each carried one label (label-purity leakage).
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import yaml

from ml_assets.dataset import DatasetSpec, Role, demo_data_path, load_spec, read_demo_data
from ml_assets.datasets.synthetic import synthetic_rows

CHUNK_ROWS = 250_000  # about 30 MB of a day in memory at a time
NUMERIC_NOISE = 0.05  # std of the log-normal factor on numeric values (an age of 40 moves by about 2)
FILE_NAME = "synthetic.parquet"


def noisy_numerics(spec: DatasetSpec, rows: pd.DataFrame, rng: np.random.Generator) -> pd.DataFrame:
    """Numeric features times a log-normal factor, rounded for integers and clipped to the column's range (zeros
    stay zero: a capital gain of 0 is a category of its own)."""
    for col in spec.columns:
        if col.role not in (Role.NUMERIC, Role.SENSITIVE) or col.dtype not in ("int64", "float64"):
            continue
        values = rows[col.name].to_numpy(dtype="float64", na_value=np.nan)
        values = values * rng.lognormal(0.0, NUMERIC_NOISE, size=len(values))
        if col.range is not None:
            values = np.clip(values, col.range.min, col.range.max)
        if col.dtype == "int64" and not np.isnan(values).any():
            rows[col.name] = np.round(values).astype(np.int64)
        else:
            rows[col.name] = values
    return rows


class DemoSampler:
    """Class-conditional draws from a spec's demo rows: a label, then each column from a demo row of that label."""

    def __init__(self, spec: DatasetSpec) -> None:
        demo = read_demo_data(spec)
        self.spec = spec
        self.label = spec.target.name
        self.columns = [c for c in spec.columns if c.role not in (Role.ID, Role.TIME, Role.TARGET)]
        labels = demo[self.label].astype("category")
        self.label_values = list(labels.cat.categories)
        self.label_codes = labels.cat.codes.to_numpy()
        # demo rows grouped by label: the rows of label k are by_label[first[k] : first[k] + size[k]]
        self.by_label = np.argsort(self.label_codes, kind="stable")
        self.size = np.bincount(self.label_codes, minlength=len(self.label_values))
        self.first = np.concatenate([[0], np.cumsum(self.size)[:-1]])
        self.values: dict[str, pd.Series] = {
            c.name: demo[c.name].astype("category") if c.dtype == "string" else demo[c.name] for c in self.columns
        }

    def draw(self, n: int, rng: np.random.Generator, start: datetime, id_start: int) -> pd.DataFrame:
        """``n`` rows with the spec's columns in its order, event times spread over the day from ``start``."""
        codes = self.label_codes[rng.integers(0, len(self.label_codes), size=n)]
        out: dict[str, pd.Series] = {}
        for col in self.columns:
            offset = (rng.random(n) * self.size[codes]).astype(np.int64)
            pick = self.by_label[self.first[codes] + offset]
            values = self.values[col.name]
            if isinstance(values.dtype, pd.CategoricalDtype):
                out[col.name] = pd.Series(
                    pd.Categorical.from_codes(values.cat.codes.to_numpy()[pick], values.cat.categories)
                )
            else:
                out[col.name] = values.iloc[pick].reset_index(drop=True)
        out[self.label] = pd.Series(pd.Categorical.from_codes(codes, self.label_values))
        frame = synthetic_rows(self.spec, n, seed=int(rng.integers(2**31)), start=start, id_start=id_start)
        for name, series in out.items():  # ids and times from synthetic_rows; every other column drawn above
            frame[name] = series
        return noisy_numerics(self.spec, frame, rng)


def land_day(
    spec: DatasetSpec, landing_root: Path, day: date, rows: int, seed: int, id_start: int, chunk_rows: int = CHUNK_ROWS
) -> Path:
    """Write ``rows`` rows for ``day`` as ``<landing_root>/<day>/synthetic.parquet``, chunk by chunk (each chunk
    one row group); ids run from ``id_start``. Written under a hidden name and renamed: never half a file landed."""
    folder = landing_root / day.isoformat()
    folder.mkdir(parents=True, exist_ok=True)
    partial, final = folder / f".{FILE_NAME}.partial", folder / FILE_NAME
    start = datetime.combine(day, time(), tzinfo=UTC)
    rng = np.random.default_rng(seed)
    sampler = DemoSampler(spec)
    writer: pq.ParquetWriter | None = None
    try:
        for offset in range(0, rows, chunk_rows):
            n = min(chunk_rows, rows - offset)
            table = pa.Table.from_pandas(sampler.draw(n, rng, start, id_start + offset), preserve_index=False)
            if writer is None:
                writer = pq.ParquetWriter(partial, table.schema)
            writer.write_table(table)
    finally:
        if writer is not None:
            writer.close()
    partial.rename(final)
    return final


def write_window_spec(spec_path: Path, out_dir: Path, window_days: int, largest_day: int) -> Path:
    """A copy of the spec at ``spec_path`` with ``training.window_days = window_days``, written to ``out_dir``.

    Changed only where the synthetic days need it: ``demo_data`` made absolute (the copy lives elsewhere);
    validation and test days cut to one each when the spec's do not leave a train day in the window; ``row_count.max``
    raised to ``largest_day`` when a day lands more rows than the spec allows. Freshness needs nothing: event times
    lie within their day and the rule measures them against the partition's end."""
    raw = yaml.safe_load(spec_path.read_text())
    source = load_spec(spec_path)
    demo = demo_data_path(source)
    if demo is not None:
        raw["demo_data"] = str(demo)
    training = raw.setdefault("training", {})
    training["window_days"] = window_days
    if source.training.validation_days + source.training.test_days >= window_days:
        training["validation_days"] = training["test_days"] = 1
    row_count = raw.setdefault("row_count", {})
    if largest_day > source.row_count.max:
        row_count["max"] = largest_day
    out_dir.mkdir(parents=True, exist_ok=True)
    out = out_dir / f"{source.name}-window-{window_days}.yaml"
    out.write_text(yaml.safe_dump(raw, sort_keys=False))
    load_spec(out)  # the copy must still be a valid spec: fail here, naming it, not in the first step
    return out
