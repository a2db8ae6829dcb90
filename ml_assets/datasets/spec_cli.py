"""``ml-assets spec``: propose a dataset spec from a data file, and print the reference of every spec field.

Examples::

    ml-assets spec infer compas.csv.gz --target two_year_recid --positive 1 --time compas_screening_date \\
        --sensitive race,sex,age --ignore is_recid -o compas.yaml
    ml-assets spec reference > SPEC_REFERENCE.md
"""

from __future__ import annotations

import argparse
import sys
from datetime import date
from pathlib import Path


def add_spec_parser(subparsers: argparse._SubParsersAction) -> None:
    """Register ``spec infer`` and ``spec reference``; handlers are ``args.func(args) -> int``."""
    spec = subparsers.add_parser(
        "spec",
        help="infer a dataset spec from a CSV or Parquet file, or print the spec reference",
        description=__doc__.split("Examples::", 1)[0],
        epilog=__doc__.split("Examples::", 1)[1],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = spec.add_subparsers(dest="spec_command", required=True)
    infer = sub.add_parser(
        "infer",
        help="propose a spec (commented YAML) for a data file",
        description="Read DATA (CSV, gzip allowed, or Parquet) exactly as it will land and write a spec whose "
        "demo_data is that file and whose rules its own replayed days pass: types, roles, category domains, numeric "
        "ranges, nullability, integer-coded categories, label coverage and volume rules sized on the replayed days, "
        "sensitive attributes, the training window and gate defaults. Every column left out is listed with its "
        "reason on stderr and in the YAML.",
    )
    infer.add_argument("data", type=Path, help="the data file")
    infer.add_argument("--target", required=True, help="the label column (text or integer codes, two labels)")
    infer.add_argument("--positive", default=None, help="the positive label (default: the rarer one)")
    infer.add_argument("--time", default=None, help="the event-time column (default: the first timestamp column)")
    infer.add_argument("--id", dest="ident", default=None, help="the id column (default: a unique column named *id)")
    infer.add_argument("--sensitive", type=_names, default=[], help="sensitive attributes, comma separated")
    infer.add_argument("--ignore", type=_names, default=[], help="columns to leave out, comma separated")
    infer.add_argument(
        "--categorical", type=_names, default=[], help="integer columns that are category codes, comma separated"
    )
    infer.add_argument(
        "--time-origin",
        type=date.fromisoformat,
        default=None,
        metavar="YYYY-MM-DD",
        help="the --time column holds day numbers counted from this date (year numbers need no origin)",
    )
    infer.add_argument(
        "--time-format",
        default=None,
        metavar="STRFTIME",
        help="the --time column's text is in this strftime pattern, e.g. '%%d-%%m-%%Y' for 17-08-1984 (day-first "
        "and month-first dates that infer cannot tell apart; ISO 8601 needs none)",
    )
    infer.add_argument("--name", default=None, help="dataset name (default: from the file name)")
    infer.add_argument("-o", "--output", type=Path, default=None, help="write here (default: standard output)")
    infer.set_defaults(func=run_infer)
    reference = sub.add_parser("reference", help="print every spec field with its type, default and meaning")
    reference.set_defaults(func=run_reference)


def _names(text: str) -> list[str]:
    return [n.strip() for n in text.split(",") if n.strip()]


def run_infer(args: argparse.Namespace) -> int:
    from ml_assets.cli_errors import one_line
    from ml_assets.dataset import SpecError
    from ml_assets.datasets.spec_infer import InferenceError, infer_spec, render

    try:
        inferred = infer_spec(
            args.data,
            target=args.target,
            positive=args.positive,
            time=args.time,
            ident=args.ident,
            sensitive=args.sensitive,
            ignore=args.ignore,
            categorical=args.categorical,
            time_origin=args.time_origin,
            time_format=args.time_format,
            out=args.output,
            name=args.name,
        )
    except FileNotFoundError:
        print(f"ml-assets spec infer: error: {args.data} does not exist", file=sys.stderr)
        return 2
    except (InferenceError, SpecError) as e:
        print(f"ml-assets spec infer: error: {one_line(e)}", file=sys.stderr)
        return 2
    for column, why in inferred.left_out.items():  # never silent: each left-out column and why, on stderr
        print(f"ml-assets spec infer: left out {column!r}: {why}", file=sys.stderr)
    for warning in inferred.warnings:
        print(f"ml-assets spec infer: note: {warning}", file=sys.stderr)
    text = render(inferred)
    if args.output is None:
        sys.stdout.write(text)
    else:
        args.output.write_text(text)
        print(f"ml-assets spec infer: wrote {args.output} (review it, then ML_ASSETS_DATASET_SPEC={args.output})")
    return 0


def run_reference(args: argparse.Namespace) -> int:
    from ml_assets.datasets.spec_infer import spec_reference

    sys.stdout.write(spec_reference())
    return 0
