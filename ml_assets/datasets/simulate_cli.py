"""``ml-assets simulate``: fill the landing zone with daily files, optionally drifted or corrupted.

Examples::

    ml-assets simulate --start 2026-11-01 --end 2026-11-10
    ml-assets simulate --start 2026-11-01 --end 2026-11-10 --format csv --files-per-day 3 \\
        --drift-from 2026-11-06 --shift age=1.5 --mix sex=Female:0.8 --label-rate 0.5 \\
        --corrupt wrong_type@2026-11-04:age --corrupt unparseable_file@2026-11-05
    ml-assets simulate --next
    ml-assets simulate --labels 2      # ground truth of replayed traffic, landed two days after it was served
"""

from __future__ import annotations

import argparse
import sys
from collections import defaultdict
from collections.abc import Sequence
from datetime import date
from pathlib import Path

from ml_assets.dataset import DatasetSpec, demo_data_path
from ml_assets.datasets.simulator import (
    CORRUPTION_KINDS,
    Corruption,
    DriftConfig,
    SimulatedFile,
    SimulationError,
    replay,
)

SYNTHETIC_ROWS_PER_DAY = 5_000


def add_simulate_parser(subparsers: argparse._SubParsersAction) -> None:
    """Register the ``simulate`` subcommand; its handler is ``args.func(args) -> int``."""
    p = subparsers.add_parser(
        "simulate",
        help="write daily landing files (CSV or Parquet) from the demo data or synthetic rows",
        description="Replay a dataset into the landing zone, one folder per UTC day, deterministic by seed, "
        "with optional drift (from --drift-from on) and corruptions (kind@DAY[:column]). "
        f"Corruption kinds: {', '.join(CORRUPTION_KINDS)}.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=__doc__.split("Examples::", 1)[1],
    )
    p.add_argument("--start", type=_day, help="first day, YYYY-MM-DD (UTC)")
    p.add_argument("--end", type=_day, help="last day, YYYY-MM-DD, inclusive")
    p.add_argument(
        "--next",
        action="store_true",
        help="instead of --start/--end: land the day after the newest landed day (a later batch of today once "
        "today has landed), a typical day's rows with new ids",
    )
    p.add_argument(
        "--labels",
        type=_non_negative_int,
        default=None,
        metavar="LAG_DAYS",
        help="instead of data: land the delayed labels of every `ml-assets traffic` replay not landed yet, under "
        "labels/<day served + LAG_DAYS>/",
    )
    p.add_argument("--landing", type=Path, default=None, help="landing folder (default <ML_ASSETS_HOME>/landing)")
    p.add_argument("--spec", type=Path, default=None, help="dataset spec YAML (default: ML_ASSETS_DATASET_SPEC)")
    p.add_argument("--format", dest="fmt", choices=("parquet", "csv"), default="parquet", help="file format")
    p.add_argument("--files-per-day", type=_positive_int, default=1, help="files per day (default 1)")
    p.add_argument(
        "--rows-per-day",
        type=_positive_int,
        default=None,
        help="rows per day (default: the whole source spread over the days; "
        f"{SYNTHETIC_ROWS_PER_DAY} with --synthetic)",
    )
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument(
        "--source-time",
        choices=("scale", "keep"),
        default="scale",
        help="a source with the spec's time column lands in its time order: scale (default) maps its time span "
        "onto --start .. --end keeping order and density; keep lands each row on its real day (then --start and "
        "--end default to the source's first and last day)",
    )
    p.add_argument("--synthetic", action="store_true", help="synthetic rows of the spec instead of its demo data")
    drift = p.add_argument_group("drift (applies from --drift-from to --end)")
    drift.add_argument("--drift-from", type=_day, default=None, help="first drifted day, YYYY-MM-DD")
    drift.add_argument("--drift-ramp-days", type=int, default=0, help="reach full drift over N days (default 0)")
    drift.add_argument(
        "--shift", action="append", type=_shift, default=[], metavar="COL=STDS", help="shift a numeric column"
    )
    drift.add_argument(
        "--mix",
        action="append",
        type=_mix,
        default=[],
        metavar="COL=CAT:SHARE[,CAT:SHARE]",
        help="resample a categorical column to these shares",
    )
    drift.add_argument("--label-rate", type=float, default=None, help="resample to this positive rate")
    bad = p.add_argument_group("corruption")
    bad.add_argument(
        "--corrupt",
        action="append",
        type=_corruption,
        default=[],
        metavar="KIND@DAY[:COLUMN]",
        help=f"inject a corruption; kinds: {', '.join(CORRUPTION_KINDS)}",
    )
    bad.add_argument(
        "--corrupt-fraction", type=float, default=0.2, help="share of a day's rows hit by row-level corruption"
    )
    p.set_defaults(func=run_simulate)


# ---- argument types: argparse names the option in the error when these raise ------------------------------
def _day(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a day in YYYY-MM-DD form") from None


def _int_at_least(low: int):
    """An argparse type: a whole number no smaller than ``low``."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
        if value < low:
            raise argparse.ArgumentTypeError(f"{text!r} must be at least {low}")
        return value

    return parse


_positive_int = _int_at_least(1)
_non_negative_int = _int_at_least(0)


def _shift(text: str) -> tuple[str, float]:
    col, sep, value = text.partition("=")
    try:
        if not sep or not col:
            raise ValueError
        return col.strip(), float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not COLUMN=STDS (for example age=1.5)") from None


def _mix(text: str) -> tuple[str, dict[str, float]]:
    col, sep, rest = text.partition("=")
    try:
        if not sep or not col or not rest:
            raise ValueError
        shares = {}
        for item in rest.split(","):
            cat, colon, share = item.rpartition(":")
            if not colon or not cat:
                raise ValueError
            shares[cat] = float(share)
        return col.strip(), shares
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not COLUMN=CATEGORY:SHARE[,CATEGORY:SHARE] (for example sex=Female:0.8)"
        ) from None


def _corruption(text: str) -> Corruption:
    kind, at, rest = text.partition("@")
    if not at or kind not in CORRUPTION_KINDS:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not KIND@YYYY-MM-DD[:COLUMN] with KIND one of {', '.join(CORRUPTION_KINDS)}"
        )
    day_text, _, column = rest.partition(":")
    try:
        day = date.fromisoformat(day_text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: {day_text!r} is not a day in YYYY-MM-DD form") from None
    return Corruption(kind, day, column or None)  # type: ignore[arg-type]


# ---- the handler ----------------------------------------------------------------------------------------
class _OptionError(Exception):
    def __init__(self, option: str, problem: str):
        super().__init__(f"{option}: {problem}")


def run_simulate(args: argparse.Namespace) -> int:
    """Write the landing files and print what was written; 2 with a message naming the option if bad."""
    try:
        return _run(args)
    except _OptionError as e:
        print(f"ml-assets simulate: error: argument {e}", file=sys.stderr)
        return 2


def _run(args: argparse.Namespace) -> int:
    from ml_assets.cli_errors import one_line
    from ml_assets.dataset import SpecError, load_default_spec, load_spec
    from ml_assets.settings import paths, spec_path

    try:
        spec = load_spec(args.spec) if args.spec else load_default_spec()
    except SpecError as e:
        raise _OptionError("--spec", one_line(e, Path(args.spec) if args.spec else spec_path())) from None
    if args.labels is not None:
        return _run_labels(args, spec)
    if args.next:
        return _run_next(args, spec)
    if args.source_time == "keep" and (args.start is None or args.end is None):
        args.start, args.end = _source_span(spec, args.start, args.end)
    for option, value in (("--start", args.start), ("--end", args.end)):
        if value is None:
            raise _OptionError(option, "is required (or use --next)")
    if args.end < args.start:
        raise _OptionError("--end", f"{args.end} is before --start {args.start}")
    drift = _drift(args, spec, end=args.end)
    if not 0.0 < args.corrupt_fraction <= 1.0:
        raise _OptionError("--corrupt-fraction", f"a share of rows in (0, 1], got {args.corrupt_fraction}")
    corruptions = []
    for c in args.corrupt:
        c = Corruption(c.kind, c.day, c.column, args.corrupt_fraction)
        try:
            c.resolve(spec)
        except SimulationError as e:
            raise _OptionError("--corrupt", str(e)) from None
        if not args.start <= c.day <= args.end:
            raise _OptionError("--corrupt", f"{c.kind}@{c.day} is outside {args.start} .. {args.end}")
        corruptions.append(c)

    demo = demo_data_path(spec)
    if not args.synthetic and (demo is None or not demo.exists()):
        raise _OptionError("--spec", f"dataset {spec.name!r} ships no demo data ({demo}); add --synthetic")
    n_days = (args.end - args.start).days + 1
    rows_per_day = args.rows_per_day
    source = None
    if args.synthetic:
        from ml_assets.datasets.synthetic import synthetic_rows

        rows_per_day = rows_per_day or SYNTHETIC_ROWS_PER_DAY
        # synthetic times carry no order worth replaying: the simulator spreads the rows over each day itself
        source = synthetic_rows(spec, rows_per_day * n_days, seed=args.seed).drop(columns=[spec.time.name])
    landing = args.landing or paths().landing
    try:
        files = replay(
            spec,
            landing,
            args.start,
            args.end,
            source=source,
            rows_per_day=rows_per_day,
            files_per_day=args.files_per_day,
            fmt=args.fmt,
            seed=args.seed,
            drift=drift,
            corruptions=corruptions,
            time_mode=args.source_time,
        )
    except SimulationError as e:
        print(f"ml-assets simulate: error: {e}", file=sys.stderr)
        return 2
    _report(spec.name, landing, files, args.synthetic)
    return 0


def _source_span(spec: DatasetSpec, start: date | None, end: date | None) -> tuple[date | None, date | None]:
    """The first and last day of the demo data's time column, where --start / --end were left out."""
    from ml_assets.dataset import SpecError, read_demo_data

    try:
        source = read_demo_data(spec)
    except SpecError as e:
        raise _OptionError("--source-time", str(e)) from None
    if spec.time.name not in source.columns:
        raise _OptionError("--source-time", f"keep needs source times; the demo data has no {spec.time.name!r}")
    times = spec.typed(spec.time.name, source[spec.time.name]).dropna()
    if times.empty:
        raise _OptionError("--source-time", f"keep needs source times; {spec.time.name!r} holds none")
    return start or times.min().date(), end or times.max().date()


def _run_next(args: argparse.Namespace, spec: DatasetSpec) -> int:
    """``--next``: one more day (or a later batch of today), with new ids; drift options apply to it."""
    from ml_assets.datasets.next_day import land_next_day
    from ml_assets.settings import paths

    given = [o for o, v in (("--start", args.start), ("--end", args.end)) if v is not None]
    if given or args.corrupt or args.synthetic:
        raise _OptionError("--next", "lands one demo-data day: leave out --start/--end, --corrupt and --synthetic")
    drift = _drift(args, spec, end=None)
    landing = args.landing or paths().landing
    landed = land_next_day(spec, landing, rows_per_day=args.rows_per_day, drift=drift)
    what = "a later batch of" if landed.late_batch else "the next day,"
    print(f"ml-assets simulate --next: {what} {landed.day}: {landed.rows:,} rows in {len(landed.files)} file(s)")
    for path in landed.files:
        print(f"  {path}")
    return 0


def _run_labels(args: argparse.Namespace, spec: DatasetSpec) -> int:
    """``--labels LAG``: the ground truth ``ml-assets traffic`` kept, landed as delayed label files."""
    from ml_assets.datasets.traffic import land_labels

    given = [o for o, v in (("--start", args.start), ("--end", args.end), ("--next", args.next)) if v]
    if given or args.corrupt or args.synthetic:
        raise _OptionError("--labels", f"lands labels only: leave out {', '.join(given) or '--corrupt/--synthetic'}")
    written = land_labels(spec, args.labels)
    if not written:
        print("ml-assets simulate --labels: no traffic replay without landed labels (run `ml-assets traffic` first)")
    for path in written:
        print(f"ml-assets simulate --labels: {path}")
    return 0


def _drift(args: argparse.Namespace, spec: DatasetSpec, end: date | None) -> DriftConfig | None:
    asked = {"--shift": args.shift, "--mix": args.mix, "--label-rate": args.label_rate is not None}
    if args.drift_from is None:
        named = [opt for opt, given in asked.items() if given]
        if named:
            raise _OptionError(named[0], "needs --drift-from DAY (the first drifted day)")
        return None
    if not any(asked.values()):
        raise _OptionError("--drift-from", "give at least one of --shift, --mix, --label-rate")
    if end is not None and args.drift_from > end:
        raise _OptionError("--drift-from", f"{args.drift_from} is after --end {end}")
    parts = [
        ("--shift", DriftConfig(args.drift_from, numeric_shift=dict(args.shift))),
        ("--mix", DriftConfig(args.drift_from, category_mix=dict(args.mix))),
        ("--label-rate", DriftConfig(args.drift_from, label_shift=args.label_rate)),
        ("--drift-ramp-days", DriftConfig(args.drift_from, ramp_days=args.drift_ramp_days)),
    ]
    for option, part in parts:
        try:
            part.validate(spec)
        except SimulationError as e:
            raise _OptionError(option, str(e)) from None
    return DriftConfig(
        args.drift_from,
        numeric_shift=dict(args.shift),
        category_mix=dict(args.mix),
        label_shift=args.label_rate,
        ramp_days=args.drift_ramp_days,
    )


def _report(dataset: str, landing: Path, files: Sequence[SimulatedFile], synthetic: bool) -> None:
    by_day: dict[date, list[SimulatedFile]] = defaultdict(list)
    for f in files:
        by_day[f.day].append(f)
    source = "synthetic rows" if synthetic else "demo data"
    print(f"ml-assets simulate: {dataset} ({source}) -> {landing}")
    for day, day_files in by_day.items():
        notes = sorted({k for f in day_files for k in f.corruptions})
        drift = max(f.drift for f in day_files)
        extra = f"  drift {drift:.0%}" if drift else ""
        extra += f"  corrupt: {', '.join(notes)}" if notes else ""
        rows = sum(f.rows for f in day_files)
        print(f"  {day}  {len(day_files)} files  {rows:>9,} rows{extra}")
        written = {f.path.name for f in day_files}
        others = [p.name for p in (landing / day.isoformat()).glob("*.*") if p.is_file() and p.name not in written]
        if others:
            print(f"    note: the folder also holds {len(others)} other file(s) not written now: {sorted(others)[:3]}")
    print(f"  total: {len(by_day)} days, {len(files)} files, {sum(f.rows for f in files):,} rows")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="ml-assets")
    add_simulate_parser(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
