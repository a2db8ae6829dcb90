"""Pictures and tables the UI renders in place: every one fits under the UI's 1,000-character limit, the SVG is
well-formed, and what does not fit is cut from the old or unimportant end, saying so."""

from __future__ import annotations

import base64
import xml.etree.ElementTree as ET

from ml_assets import inline


def svg_of(md: str) -> ET.Element:
    assert md.startswith("![") and "](data:image/svg+xml;base64," in md and md.endswith(")")
    return ET.fromstring(base64.b64decode(md.split(",", 1)[1][:-1]))


def test_a_month_of_two_series_fits_and_three_keep_the_newest_days() -> None:
    days = [f"11-{d:02d}" for d in range(1, 31)]
    two = inline.line_chart("q", days, {"a": [0.8 + d / 100 for d in range(30)], "b": [None] * 5 + [0.8] * 25},
                            limit=0.85, limit_name="evaluation")  # fmt: skip
    assert inline.fits(two)
    texts = [t.text for t in svg_of(two).iter("{http://www.w3.org/2000/svg}text")]
    assert "11-01" in texts and "11-30" in texts and "evaluation" in texts, "all 30 days, the reference named"
    three = inline.line_chart("q", days, {k: [0.5 + d / 100 for d in range(30)] for k in "abc"})
    texts = [t.text for t in svg_of(three).iter("{http://www.w3.org/2000/svg}text")]
    assert inline.fits(three) and "11-30" in texts and "11-01" not in texts, "the oldest days are dropped first"


def test_a_long_table_keeps_its_first_rows_and_says_how_many_are_left_out() -> None:
    rows = [{"feature": f"f{i}", "psi": 1 / (i + 1)} for i in range(200)]
    md = inline.table(rows, ["feature", "psi"], right=["psi"])
    assert inline.fits(md) and "| f0 | 1.000 |" in md
    kept = md.count("\n| f")
    assert f"... {200 - kept} more" in md


def test_alerts_table_newest_first_filtered_by_kind_and_day() -> None:
    alerts = [
        {"time": "2026-12-01T10:00:00+00:00", "kind": "monitoring.input_drift", "message": "old", "day": "2026-12-01"},
        {"time": "2026-12-02T10:00:00+00:00", "kind": "retrain", "message": "asked", "day": "2026-12-02"},
        {"time": "2026-12-02T11:00:00+00:00", "kind": "monitoring.input_drift", "message": "new", "day": "2026-12-02"},
    ]
    md = inline.alerts_table(alerts, prefix="monitoring.")
    assert md.index("new") < md.index("old") and "asked" not in md
    assert "old" not in inline.alerts_table(alerts, prefix="monitoring.", day="2026-12-02")
    assert inline.alerts_table([], prefix="x") == "no alert"
