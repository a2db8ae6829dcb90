"""Markdown for the Dagster UI and benchmark output: one table writer and one way to embed a small plot.

Every table in asset metadata, check metadata, the demo and the benchmarks goes through ``table``, so they all
format numbers and nulls the same way; every picture goes through ``figure`` (a PNG embedded as a data URI,
which the UI's markdown renderer shows inline).
"""

from __future__ import annotations

import base64
import io
import math
from collections.abc import Mapping, Sequence
from typing import Any

import pandas as pd

Align = str  # "left" or "right" per column


def cell(value: Any, digits: int = 4) -> str:
    """One cell: floats rounded to ``digits``, NaN and nulls as ``-``, everything else as ``str``."""
    if value is None:
        return "-"
    if isinstance(value, float):
        return "-" if math.isnan(value) else f"{value:.{digits}f}"
    try:
        if pd.isna(value):
            return "-"
    except (TypeError, ValueError):  # lists and other containers
        pass
    return str(value).replace("|", "\\|").replace("\n", " ")


def table(
    rows: Sequence[Mapping[str, Any]] | pd.DataFrame,
    columns: Sequence[str] | None = None,
    *,
    digits: int = 4,
    right: Sequence[str] = (),
    index: str | None = None,
    empty: str = "(none)",
) -> str:
    """A markdown table of ``rows`` (mappings, or a frame whose index becomes column ``index`` when named).

    ``columns`` picks and orders the columns (default: the keys of the first row); ``right`` aligns numbers.
    """
    if isinstance(rows, pd.DataFrame):
        frame = rows.reset_index(names=index) if index else rows
        records: list[Mapping[str, Any]] = frame.to_dict("records")
        columns = list(columns or map(str, frame.columns))
    else:
        records = list(rows)
        columns = list(columns or (list(records[0]) if records else []))
    if not columns:
        return empty
    head = "| " + " | ".join(columns) + " |"
    rule = "|" + "|".join("---:" if c in right else "---" for c in columns) + "|"
    if not records:
        return "\n".join([head, rule, "| " + " | ".join([empty] + [""] * (len(columns) - 1)) + " |"])
    body = ["| " + " | ".join(cell(r.get(c), digits) for c in columns) + " |" for r in records]
    return "\n".join([head, rule, *body])


def figure(fig: Any, alt: str) -> str:
    """A matplotlib figure as an inline markdown image (PNG, base64); the figure is closed."""
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    return f"![{alt}](data:image/png;base64,{base64.b64encode(buf.getvalue()).decode('ascii')})"


def new_figure(width: float = 4.0, height: float = 3.2, dpi: int = 72, bottom: float = 0.5) -> tuple[Any, Any]:
    """A headless (Agg) matplotlib figure and axes, sized for the UI's metadata panel.

    Margins are fixed in inches (``bottom`` grows for rotated tick labels) rather than fitted by ``tight_layout``,
    which draws the figure once more and doubled the cost of every plot an evaluation writes.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(width, height), dpi=dpi)
    fig.subplots_adjust(left=0.6 / width, right=1 - 0.15 / width, bottom=bottom / height, top=1 - 0.3 / height)
    return fig, ax
