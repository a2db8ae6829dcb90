"""``ml-assets traffic``: replay a simulated day to the served model over HTTP, optionally with drift and labels.

A past --day is replayed time-true: its predictions are filed under that day (each log line keeps the real serving
time), so monitoring shows one partition per replayed day.

Examples::

    ml-assets traffic --day 2026-11-20                                   # a day's rows, as fast as the model answers
    ml-assets traffic --day 2026-11-21 --rows 3000 --rate 200 --shift age=2 --labels-lag-days 0
    # a drift ramp: age drifts from 2026-11-22 on, reaching +2 standard deviations on 2026-11-25
    for d in 22 23 24 25; do
      ml-assets traffic --day 2026-11-$d --shift age=2 --drift-from 2026-11-22 --drift-ramp-days 4 --labels-lag-days 0
    done
"""

from __future__ import annotations

import argparse
import sys
from datetime import date


def add_traffic_parser(subparsers: argparse._SubParsersAction) -> None:
    from ml_assets.datasets.simulate_cli import _mix, _shift

    p = subparsers.add_parser(
        "traffic",
        help="send a simulated day's rows to the served model over HTTP (ground truth kept for delayed labels)",
        description=__doc__.splitlines()[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=__doc__.split("Examples::", 1)[1],
    )
    p.add_argument("--day", required=True, type=date.fromisoformat, help="whose rows to send, YYYY-MM-DD")
    p.add_argument("--rows", type=int, default=None, help="rows to send (default: a typical demo day)")
    p.add_argument("--rate", type=float, default=None, help="at most this many rows per second (default: no limit)")
    p.add_argument("--batch", type=int, default=50, help="records per predict_batch request (default 50)")
    p.add_argument("--url", default=None, help="served model (default http://127.0.0.1:$ML_ASSETS_SERVE_PORT)")
    p.add_argument("--seed", type=int, default=None, help="random seed (default: from the clock)")
    p.add_argument(
        "--shift", action="append", type=_shift, default=[], metavar="COL=STDS", help="shift a numeric column"
    )
    p.add_argument("--mix", action="append", type=_mix, default=[], metavar="COL=CAT:SHARE[,CAT:SHARE]",
                   help="resample a categorical column to these shares")  # fmt: skip
    p.add_argument("--label-rate", type=float, default=None, help="resample to this positive rate")
    p.add_argument("--drift-from", type=date.fromisoformat, default=None,
                   help="first drifted day (default --day: the drift at full strength)")  # fmt: skip
    p.add_argument("--drift-ramp-days", type=int, default=0,
                   help="reach full drift strength linearly over this many days from --drift-from")  # fmt: skip
    p.add_argument(
        "--labels-lag-days", type=int, default=None, metavar="DAYS",
        help="also land the true labels of the answered rows under labels/<day + DAYS>/ (a past --day is "
        "filed as itself, today and later as today)",
    )  # fmt: skip
    p.set_defaults(func=run_traffic)


def traffic_drift(args: argparse.Namespace):
    """The drift of the day's rows: none, full strength from ``--day``, or a ramp from ``--drift-from``."""
    from ml_assets.datasets.simulator import DriftConfig, SimulationError

    if not (args.shift or args.mix or args.label_rate is not None):
        if args.drift_from is not None or args.drift_ramp_days:
            raise SimulationError("--drift-from/--drift-ramp-days need a drift: --shift, --mix or --label-rate")
        return None
    return DriftConfig(args.drift_from or args.day, numeric_shift=dict(args.shift), category_mix=dict(args.mix),
                       label_shift=args.label_rate, ramp_days=args.drift_ramp_days)  # fmt: skip


def run_traffic(args: argparse.Namespace) -> int:
    from ml_assets.dataset import load_default_spec
    from ml_assets.datasets.simulator import SimulationError
    from ml_assets.datasets.traffic import land_labels, send_traffic
    from ml_assets.settings import serve_port

    spec = load_default_spec()
    try:
        drift = traffic_drift(args)
        if drift is not None:
            drift.validate(spec)
    except SimulationError as e:
        print(f"ml-assets traffic: error: {e}", file=sys.stderr)
        return 2
    url = args.url or f"http://127.0.0.1:{serve_port()}"
    run = send_traffic(
        spec, url, args.day, rows=args.rows, drift=drift, rate=args.rate, batch=args.batch, seed=args.seed
    )
    print(
        f"ml-assets traffic: {run.sent} rows of {run.day} to {url}: {run.answered} answered, {run.errors} errors, "
        f"{run.answered / max(run.seconds, 1e-9):,.0f} rows/s; logged under {run.served_on}; ground truth "
        f"{run.ground_truth}"
    )
    if args.labels_lag_days is not None:
        for path in land_labels(spec, args.labels_lag_days):
            print(f"  labels landed: {path}")
    return 1 if run.answered == 0 else 0
