"""Benchmark: the raw_data Great Expectations rules against the same rules computed directly in pandas.

Rows are real UCI Adult rows sampled with replacement, with fresh ids and event times inside one day. Three landed
shapes are timed: as read from Parquet, and one CSV file read by pandas' default parser (text as Python objects,
times as text) and by its pyarrow engine with pyarrow dtypes. Both engines must agree on every rule before a
timing counts.

    python benchmarks/checks.py [--rows 100000 1000000] [--repeat 2] [--variants]

"GX plain" drives GX the obvious way (one batch per frame, GX's batch fingerprint on); "GX" is the shipped
setting (see GxOptions); --variants also times each setting on its own, to show where the time goes.
"""

from __future__ import annotations

import argparse
import io
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ml_assets.data.expectations import validate_raw_data
from ml_assets.data.gx_runner import GxOptions
from ml_assets.data.rules import partition_end, raw_data_rules
from ml_assets.dataset import DatasetSpec, demo_data_path, load_default_spec

DAY = "2026-01-05"


def synthetic_rows(spec: DatasetSpec, n: int, seed: int = 0) -> pd.DataFrame:
    """n real rows sampled with replacement, fresh unique ids, event times spread over DAY (Parquet-shaped)."""
    rng = np.random.default_rng(seed)
    real = pd.read_parquet(demo_data_path(spec))
    rows = real.iloc[rng.integers(0, len(real), n)].reset_index(drop=True)
    rows[spec.id.name] = np.arange(1, n + 1, dtype="int64")
    seconds = np.sort(rng.integers(0, 86_400, n))
    rows[spec.time.name] = pd.Timestamp(DAY) + pd.to_timedelta(seconds, unit="s")
    return rows[spec.column_names]


def landed_shapes(rows: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """The rows as each landing format gives them: Parquet as is, and one CSV file read two ways."""
    data = rows.to_csv(index=False).encode()
    return {
        "parquet": rows,
        "csv": pd.read_csv(io.BytesIO(data), low_memory=False),  # text as Python objects, times as text
        "csv (pyarrow)": pd.read_csv(io.BytesIO(data), engine="pyarrow", dtype_backend="pyarrow"),
    }


# ---- the same rules, directly in pandas --------------------------------------------------------------------


def _text(s: pd.Series) -> bool:
    if pd.api.types.is_string_dtype(s.dtype) and s.dtype != object:
        return True
    return s.dtype == object and pd.api.types.infer_dtype(s, skipna=True) in ("string", "empty")


def _numbers(s: pd.Series) -> bool:
    if pd.api.types.is_numeric_dtype(s.dtype) and not pd.api.types.is_bool_dtype(s.dtype):
        return True
    return s.dtype == object and pd.api.types.infer_dtype(s, skipna=True) in (
        "integer",
        "floating",
        "mixed-integer-float",
        "empty",
    )


def _landed_ok(s: pd.Series, dtype: str) -> bool:
    if dtype in ("int64", "float64"):
        return _numbers(s)
    if dtype == "datetime":
        return pd.api.types.is_datetime64_any_dtype(s.dtype) or _text(s)
    return _text(s)


def _share_ok(bad: pd.Series, considered: pd.Series, mostly: float) -> tuple[bool, int]:
    n_bad, n = int(bad.sum()), int(considered.sum())
    return (n == 0 or (n - n_bad) / n >= mostly), n_bad


def direct_raw_checks(
    spec: DatasetSpec,
    landed: pd.DataFrame,
    typed: pd.DataFrame,
    cast_failures: Mapping[str, int],
    partition_key: str | None,
) -> dict[str, bool]:
    """Every raw_data rule in plain pandas: pass/fail per check, plus counts and a sample index on failure."""
    out: dict[str, bool] = {}
    for rule in raw_data_rules(spec, partition_end(partition_key)):
        if not rule.expects:  # judged in pandas by the project itself (volume, unexpected columns, duplicates)
            continue
        col = spec.column(rule.column) if rule.column else None
        s = typed[col.name] if col is not None else None
        if rule.kind == "type":
            ok = col.name in landed.columns and _landed_ok(landed[col.name], col.dtype)
            ok = ok and not cast_failures.get(col.name)
        elif rule.kind == "not_null":
            bad = s.isna()
            ok, _ = not bad.any(), bad[bad].index[:5]
        elif rule.kind == "in_domain":
            present = s.notna()
            bad = present & ~s.isin(col.categories)
            ok, _ = _share_ok(bad, present, col.mostly)
        elif rule.kind == "in_range":
            present = s.notna()
            lo, hi = col.range.min, col.range.max
            bad = present & (((s < lo) if lo is not None else False) | ((s > hi) if hi is not None else False))
            ok, _ = _share_ok(bad.fillna(False), present, col.mostly)
        elif rule.kind == "row_count":
            ok = spec.row_count.min <= len(typed) <= spec.row_count.max
        elif rule.kind == "unique":
            dup = s.duplicated(keep=False) & s.notna()
            ok = not dup.any()
        elif rule.kind == "label":
            ok = len(s) > 0 and s.notna().all() and s.isin(col.categories).all()
        elif rule.kind == "freshness":
            end = partition_end(partition_key)
            newest = s.max()
            ok = end is None or (pd.notna(newest) and newest >= end - pd.Timedelta(hours=spec.freshness_hours))
        else:
            raise ValueError(f"benchmark has no direct version of rule kind {rule.kind!r}")
        out[rule.name] = bool(ok)
    return out


# ---- timing --------------------------------------------------------------------------------------------------


def _best(fn: Callable[[], object], repeat: int) -> tuple[float, object]:
    best, value = float("inf"), None
    for _ in range(repeat):
        t = time.perf_counter()
        value = fn()
        best = min(best, time.perf_counter() - t)
    return best, value


PLAIN = GxOptions(per_column=False, fingerprint=True)
VARIANTS = {
    "one batch per frame": GxOptions(per_column=False),
    "with fingerprint": GxOptions(fingerprint=True),
    "result BASIC": GxOptions(result_format="BASIC"),
    "result BOOLEAN_ONLY": GxOptions(result_format="BOOLEAN_ONLY"),
}


def run(rows: list[int], repeat: int, variants: bool = False) -> list[dict[str, object]]:
    spec = load_default_spec()
    import great_expectations  # noqa: F401  (import once, outside the timings: it costs seconds)

    table = []
    for n in rows:
        for shape, landed in landed_shapes(synthetic_rows(spec, n)).items():
            typed, failures = spec.coerce(landed)

            def gx(options: GxOptions, landed=landed, typed=typed, failures=failures) -> list:
                return validate_raw_data(spec, landed, typed, failures, DAY, options)

            gx(GxOptions())  # warm GX's lazy imports and caches
            gx_s, gx_results = _best(lambda gx=gx: gx(GxOptions()), repeat)
            plain_s, _ = _best(lambda gx=gx: gx(PLAIN), 1)
            direct_s, direct = _best(
                lambda landed=landed, typed=typed, failures=failures: direct_raw_checks(
                    spec, landed, typed, failures, DAY
                ),
                repeat,
            )
            passed = {r.check_name: r.passed for r in gx_results if r.check_name in direct}
            if passed != direct:
                diff = {k: (passed.get(k), direct.get(k)) for k in passed.keys() | direct.keys()}
                diff = {k: v for k, v in diff.items() if v[0] != v[1]}
                raise AssertionError(f"GX and direct pandas disagree at {n} rows ({shape}): {diff}")
            row = {
                "rows": n,
                "landed": shape,
                "checks": len(passed),
                "failed": sum(not v for v in passed.values()),
                "plain_s": plain_s,
                "gx_s": gx_s,
                "direct_s": direct_s,
            }
            if variants:
                row["variants"] = {k: _best(lambda o=o, gx=gx: gx(o), 1)[0] for k, o in VARIANTS.items()}
            table.append(row)
    return table


def print_table(table: list[dict[str, object]]) -> None:
    from ml_assets import markdown

    rows = [
        {
            "rows": f"{r['rows']:,}",
            "landed": r["landed"],
            "checks": r["checks"],
            "failed": r["failed"],
            "GX plain s": f"{r['plain_s']:.2f}",
            "GX s": f"{r['gx_s']:.2f}",
            "pandas s": f"{r['direct_s']:.2f}",
            "GX / pandas": f"{r['gx_s'] / r['direct_s']:.1f}x",
        }
        for r in table
    ]
    print(markdown.table(rows, right=[c for c in rows[0] if c != "landed"] if rows else ()))
    with_variants = [r for r in table if "variants" in r]
    if with_variants:
        variants = [
            {"rows": f"{r['rows']:,}", "landed": r["landed"], "GX s": f"{r['gx_s']:.2f}",
             **{f"{n} s": f"{r['variants'][n]:.2f}" for n in VARIANTS}}
            for r in with_variants
        ]  # fmt: skip
        print("\n" + markdown.table(variants, right=[c for c in variants[0] if c != "landed"]))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--variants", action="store_true", help="also time each GX setting on its own")
    args = parser.parse_args(argv)
    print_table(run(args.rows, args.repeat, args.variants))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
