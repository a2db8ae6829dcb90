"""A trained generator (encoding + weights) and the days it generates, in the spec's landed form.

Shadow day i of n is generated at conditions spread over the i-th n-th of the training span, so the first shadow
day looks like the first real days and the last like the newest: the shadow days drift as the real ones did. Ids
are numbered afresh (never a real id), times are uniform within their day.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import Any

import numpy as np
import pandas as pd
import torch

from ml_assets.dataset import PANDAS_DTYPES, DatasetSpec, Role
from ml_assets.shadow.encoding import TabularEncoding
from ml_assets.shadow.network import ConditionalVAE, GeneratorConfig

CHUNK = 100_000  # rows decoded at a time: bounded memory whatever the request


@dataclass(frozen=True)
class ShadowGenerator:
    """What ``shadow_model`` stores: the fitted encoding, the network's shape, its weights and its training run."""

    encoding: dict[str, Any]
    network: dict[str, float]
    weights: bytes = field(repr=False)
    summary: dict[str, Any] = field(default_factory=dict)
    rows_per_day: int = 0  # the real days' mean, the default size of a shadow day

    def model(self) -> tuple[TabularEncoding, ConditionalVAE]:
        encoding = TabularEncoding.from_dict(self.encoding)
        net = ConditionalVAE(encoding.layout(), GeneratorConfig(**self.network))  # type: ignore[arg-type]
        net.load_state_dict(torch.load(io.BytesIO(self.weights), weights_only=True))
        net.eval()
        return encoding, net

    def sample(self, t: np.ndarray, seed: int = 0) -> pd.DataFrame:
        """Typed rows of the generated columns, one per condition in ``t`` (0..1 over the training span)."""
        encoding, net = self.model()
        rng = np.random.default_rng(seed)
        torch_rng = torch.Generator().manual_seed(seed)
        parts = [encoding.decode(net.sample(t[i : i + CHUNK], torch_rng), rng) for i in range(0, max(len(t), 1), CHUNK)]
        return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()


def generate_days(
    spec: DatasetSpec, generator: ShadowGenerator, days: Sequence[date], rows_per_day: int | None = None, seed: int = 0
) -> pd.DataFrame:
    """``days`` of shadow rows in the spec's landed form (its columns, in its order), the i-th day of n at
    conditions in the i-th n-th of the training span; ids numbered from 1."""
    per_day = rows_per_day or generator.rows_per_day or 1000
    n = len(days)
    rng = np.random.default_rng(seed)
    within = rng.random((n, per_day))
    t = ((np.arange(n)[:, None] + within) / max(n, 1)).ravel()
    rows = generator.sample(t, seed)
    starts = np.repeat(np.array([np.datetime64(d, "ns") for d in days]), per_day)
    times = pd.Series(starts + (within.ravel() * 86_400e9).astype("timedelta64[ns]"))
    return landed_rows(spec, rows, times)


def landed_rows(spec: DatasetSpec, typed: pd.DataFrame, times: pd.Series) -> pd.DataFrame:
    """Generated typed columns, times and fresh ids as the files land them (integer codes, year or day numbers)."""
    out: dict[str, pd.Series] = {}
    for col in spec.columns:
        if col.role == Role.ID:
            numbers = pd.Series(np.arange(1, len(typed) + 1))
            out[col.name] = numbers.astype("Int64") if col.dtype == "int64" else ("shadow-" + numbers.astype(str))
        elif col.role == Role.TIME:
            out[col.name] = _landed_time(spec, col.name, times.reset_index(drop=True))
        else:
            out[col.name] = spec.landed_form(col, typed[col.name].reset_index(drop=True))
    frame = pd.DataFrame(out)
    id_col = spec.id
    if id_col.dtype == "string":
        frame[id_col.name] = frame[id_col.name].astype(PANDAS_DTYPES["string"])
    return frame


def _landed_time(spec: DatasetSpec, name: str, times: pd.Series) -> pd.Series:
    col = spec.column(name)
    if col.unit == "year":
        return times.dt.year.astype("Int64")
    if col.unit == "day":
        return ((times - pd.Timestamp(col.origin)).dt.days).astype("Int64")
    if spec.timezone != "UTC":  # naive values land as wall-clock time in the spec's zone
        return times.dt.tz_localize("UTC").dt.tz_convert(spec.timezone).dt.tz_localize(None)
    return times
