"""Pictures and tables that the Dagster UI shows in place, on the asset's page, without a click.

Why this form: Dagster 1.13 has no image metadata type. Its UI renders a markdown metadata entry *in the metadata
table itself* when the text is shorter than 1,000 characters (ui-core ``MetadataEntry``: ``expandSmallValues &&
mdStr.length < 1000``, used by the asset's latest-materialization and events tables), and otherwise only behind
"[Show Markdown]" in a small modal; its sanitizer allows ``data:`` image sources. A PNG plot is tens of kilobytes,
so it always lands behind the click; a line chart drawn as a small SVG (integer coordinates, a few short
elements) fits in the limit as a ``data:image/svg+xml;base64`` image. A link to a report file (``MetadataValue.url``
or ``.path``) still needs a click and a server for the file. So every picture a person should see at a glance is a
compact SVG here (the detailed PNG stays beside it for the modal), and every table that matters is kept under the
limit too (few columns, worst rows first), so it is readable in place and never cut on the right.
"""

from __future__ import annotations

import base64
import math
from collections.abc import Mapping, Sequence
from typing import Any

from ml_assets import markdown

INLINE_MAX_CHARS = 999  # the UI shows markdown in place below 1,000 characters
COLORS = ("blue", "red", "green", "purple")  # named colors: shorter than hex, and no "#" to escape


def fits(md: str) -> bool:
    """Whether the UI renders ``md`` in place."""
    return len(md) <= INLINE_MAX_CHARS


def _finite(v: float | None) -> bool:
    return v is not None and not (isinstance(v, float) and math.isnan(v))


def _path(points: list[tuple[int, int]]) -> str:
    """An SVG path through ``points``: an absolute move, then relative line-tos (short: "M30,63l8,2 8,-1")."""
    (x0, y0), rest = points[0], points[1:]
    steps = " ".join(f"{x - px},{y - py}" for (px, py), (x, y) in zip(points, rest, strict=False))
    return f"M{x0},{y0}" + (f"l{steps}" if rest else "h1")


def _svg(
    series: Mapping[str, Sequence[float | None]],
    labels: Sequence[str],
    limit: float | None,
    width: int,
    height: int,
    limit_name: str = "",
) -> str:
    values = [v for ys in series.values() for v in ys if _finite(v)] + ([limit] if limit is not None else [])
    lo, hi = (min(values), max(values)) if values else (0.0, 1.0)
    if hi - lo < 1e-9:
        lo, hi = lo - 0.5, hi + 0.5
    left, top, bottom = 30, 12, height - 12
    n = max(len(labels), 1)

    def x(i: int) -> int:
        return left + (round(i * (width - left - 4) / (n - 1)) if n > 1 else (width - left) // 2)

    def y(v: float) -> int:
        return round(bottom - (v - lo) * (bottom - top) / (hi - lo))

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" font-size="9" fill="none">',
        f'<g fill="#000"><text y="{top + 3}">{hi:.3g}</text><text y="{bottom}">{lo:.3g}</text>',
    ]
    if labels:
        parts.append(f'<text x="{left}" y="{height - 1}">{labels[0]}</text>')
        if n > 1:
            parts.append(f'<text x="{width - 30}" y="{height - 1}">{labels[-1]}</text>')
    parts.append("</g>")
    if limit is not None:
        parts.append(f'<path d="M{left},{y(limit)}H{width}" stroke="gray" stroke-dasharray="3"/>')
        if limit_name:
            parts.append(f'<text x="{left + 4 + 64 * len(series)}" y="9" fill="gray">{limit_name}</text>')
    for k, (name, ys) in enumerate(series.items()):
        color = COLORS[k % len(COLORS)]
        points = [(x(i), y(v)) for i, v in enumerate(ys) if _finite(v)]
        if points:
            parts.append(f'<path d="{_path(points)}" stroke="{color}"/>')
        parts.append(f'<text x="{left + 4 + 64 * k}" y="9" fill="{color}">{name}</text>')
    parts.append("</svg>")
    return "".join(parts)


def line_chart(
    title: str,
    labels: Sequence[str],
    series: Mapping[str, Sequence[float | None]],
    *,
    limit: float | None = None,
    limit_name: str = "",
    width: int = 260,
    height: int = 90,
) -> str:
    """A small line chart (one line per series over ``labels``, a dashed line at ``limit`` named ``limit_name``)
    as a markdown image short enough to render in place; the oldest points are dropped until it fits (two series
    fit 30 days, three about 17)."""
    labels = list(labels)
    data = {k: list(v) for k, v in series.items()}
    while True:
        svg = _svg(data, labels, limit, width, height, limit_name)
        md = f"![{title}](data:image/svg+xml;base64,{base64.b64encode(svg.encode()).decode('ascii')})"
        if fits(md) or len(labels) <= 2:
            return md
        labels = labels[1:]
        data = {k: v[1:] for k, v in data.items()}


def table(
    rows: Sequence[Mapping[str, Any]], columns: Sequence[str], *, right: Sequence[str] = (), digits: int = 3
) -> str:
    """A markdown table that renders in place: rows are kept in the order given (put the worst first) and the last
    ones are dropped, with a final row saying how many, until it fits."""
    rows = list(rows)
    keep = len(rows)
    while True:
        shown = rows[:keep]
        if keep < len(rows):
            shown = [*shown, {columns[0]: f"... {len(rows) - keep} more"}]
        md = markdown.table(shown, columns, right=right, digits=digits)
        if fits(md) or keep == 0:
            return md
        keep -= 1


def alerts_table(
    alerts: Sequence[Mapping[str, Any]], prefix: str | tuple[str, ...] = "", day: str | None = None, limit: int = 5
) -> str:
    """The latest alerts (``resources.alerts`` records) whose kind starts with ``prefix`` (and of ``day`` when
    given), newest first, as a table that renders in place; "no alert" when there is none."""
    mine = [a for a in alerts if str(a.get("kind", "")).startswith(prefix) and (day is None or a.get("day") == day)]
    rows = [
        {"time": str(a.get("time", ""))[5:16], "alert": f"{a.get('kind')}: {str(a.get('message', ''))[:110]}"}
        for a in reversed(mine[-limit:])
    ]
    return table(rows, ["time", "alert"]) if rows else "no alert"


ROC_GRID = tuple(i / 10 for i in range(11))  # false positive rates the in-place ROC is drawn at


def roc_chart(title: str, curves: Mapping[str, tuple[Sequence[float], Sequence[float]]]) -> str:
    """ROC curves (name -> (false positive rates, true positive rates), increasing) as a small in-place chart: each
    curve read at every tenth of the false positive rate, so three curves fit the limit."""
    import numpy as np

    series = {name: [float(np.interp(x, fpr, tpr)) for x in ROC_GRID] for name, (fpr, tpr) in curves.items()}
    labels = ["fpr 0", *(f"{x:g}" for x in ROC_GRID[1:])]  # the chart labels its first and last point
    return line_chart(title, labels, series, width=200, height=110)
