"""``ml-assets``: the single entry point of the whole pipeline (``demo``) and the landing simulator (``simulate``)."""

from __future__ import annotations

import argparse
import os
import shutil
import sys
from collections.abc import Sequence
from pathlib import Path

# The embedded instance (SQLite under DAGSTER_HOME), sized for a 2-core machine: at most two runs at a time from the
# queue (sensors and automation included), one step per pool (the training pool: ranks take every core), and the
# freshness daemon that judges the model-age policies. No telemetry.
LOCAL_INSTANCE_CONFIG = """\
telemetry:
  enabled: false
concurrency:
  runs:
    max_concurrent_runs: 2
  pools:
    default_limit: 1
freshness:
  enabled: true
"""


def _prepare_environment(home: str | None) -> Path:
    """Point every piece of state at one home directory before Dagster or BentoML import anything."""
    if home:
        os.environ["ML_ASSETS_HOME"] = home
    from ml_assets.settings import paths

    where = paths()
    os.environ["ML_ASSETS_HOME"] = str(where.home)
    os.environ.setdefault("DAGSTER_HOME", str(where.home / "dagster"))
    os.environ.setdefault("BENTOML_HOME", str(where.home / "bentoml"))
    os.environ.setdefault("BENTOML_DO_NOT_TRACK", "true")
    for folder in (where.home, where.dagster_home, where.landing, where.quarantine):
        folder.mkdir(parents=True, exist_ok=True)
    instance_config = where.dagster_home / "dagster.yaml"
    if not instance_config.exists():
        instance_config.write_text(LOCAL_INSTANCE_CONFIG)
    return where.home


def _demo(args: argparse.Namespace) -> int:
    from ml_assets.settings import ml_assets_home

    home = Path(args.home).resolve() if args.home else ml_assets_home()
    if args.fresh and home.exists():
        shutil.rmtree(home)
    _prepare_environment(str(home))
    from ml_assets.demo import run_demo

    return run_demo(days=args.days, seed=args.seed, stages=args.stages)


def _up(args: argparse.Namespace) -> int:
    _prepare_environment(args.home)
    from ml_assets.dataset import load_default_spec
    from ml_assets.model.gates import thresholds_for
    from ml_assets.up import run_up

    thresholds_for(load_default_spec())  # a spec that cannot be used is refused before anything starts

    return run_up(host=args.host, port=args.port, replay_s=args.replay)


def _stop(args: argparse.Namespace) -> int:
    _prepare_environment(args.home)
    from ml_assets.settings import paths, serve_port
    from resources.bento_deployer import DeploymentError, LocalBentoDeployer

    where = paths()
    deployer = LocalBentoDeployer(home=str(where.home), bentoml_home=str(where.bentoml_home), port=serve_port())
    try:
        state = deployer.stop()
    except DeploymentError as e:
        print(f"ml-assets stop: {e}", file=sys.stderr)
        return 1
    last = state.previous.bento_tag if state.previous else "none"
    print(f"stopped the served model, its proxy and supervisor: no process of {deployer.url} is left (state: "
          f"{deployer.folder}); last served: {last}")  # fmt: skip
    return 0


STAGES = ("data", "model", "serving")


def _stages(text: str) -> str:
    """``all`` or a comma list of STAGES (argparse names the option when one is unknown)."""
    unknown = [s for s in text.split(",") if s not in STAGES] if text != "all" else []
    if unknown:
        raise argparse.ArgumentTypeError(f"unknown stage(s) {unknown}; choose from {', '.join(STAGES)} or all")
    return text


def _rollback(args: argparse.Namespace) -> int:
    """Run the ``rollback_champion`` job on the instance, as the launchpad would: to TAG, or to the champion before
    the current one; one line saying what happened or why it was refused."""
    _prepare_environment(args.home)
    _quiet_warnings()
    from dagster import DagsterInstance

    from ml_assets.definitions import build_definitions
    from ml_assets.model.champion import ROLLBACK_JOB, rollback_run_config

    job = build_definitions().resolve_job_def(ROLLBACK_JOB)
    with DagsterInstance.get() as instance:
        result = job.execute_in_process(
            instance=instance,
            # the run's log is in the instance (the UI); the terminal gets one line
            run_config={
                **rollback_run_config(args.tag or ""),
                "loggers": {"console": {"config": {"log_level": "CRITICAL"}}},
            },
            raise_on_error=False,
            tags={"ml_assets/trigger": "cli"},
        )
    if result.success:
        meta = result.asset_materializations_for_node("champion_model")[0].metadata
        print(f"ml-assets rollback: {meta['why'].value}; automation rebuilds and redeploys it (ml-assets up), or "
              "launch serving_job")  # fmt: skip
        return 0
    failure = next((e for e in result.all_events if e.is_step_failure), None)
    data = failure.step_failure_data if failure is not None else None
    if data is not None and data.user_failure_data is not None:  # a refusal: its one line
        message = data.user_failure_data.description or "refused"
    else:  # anything else: the innermost error's first line
        error = data.error if data is not None else None
        while error is not None and error.cause is not None:
            error = error.cause
        message = (error.message.strip().splitlines() or ["no error message"])[0] if error else "the run failed"
    print(f"ml-assets rollback: {message}", file=sys.stderr)
    return 1


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ml-assets", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    demo = sub.add_parser(
        "demo",
        help="seed the landing zone from the demo data and materialize the whole graph headless",
        description="Seed a landing zone from the shipped demo data (the days ending yesterday) and materialize "
        "every asset for them on the embedded default instance, printing progress and a summary. Exits non-zero "
        "if a blocking check failed.",
    )
    demo.add_argument("--home", help="state directory (default: $ML_ASSETS_HOME or ./.ml_assets)")
    demo.add_argument("--days", type=int, default=None, help="days of data to land (default: training window + 2)")
    demo.add_argument("--seed", type=int, default=0, help="seed of the landing simulator")
    demo.add_argument("--fresh", action="store_true", help="delete the state directory first")
    demo.add_argument(
        "--stages",
        default="all",
        type=_stages,
        help="comma list of stages to run: data,model,serving (default: all that exist)",
    )
    demo.set_defaults(func=_demo)

    up = sub.add_parser(
        "up",
        help="start the Dagster UI and daemon on the embedded instance; the graph then refreshes itself",
        description="Start the Dagster webserver and daemon (127.0.0.1) on the instance under ML_ASSETS_HOME, with "
        "the landing, automation and health sensors on; Ctrl-C stops both (whole process trees).",
    )
    up.add_argument("--home", help="state directory (default: $ML_ASSETS_HOME or ./.ml_assets)")
    up.add_argument("--host", default="127.0.0.1", help="address of the UI (default 127.0.0.1)")
    up.add_argument("--port", type=int, default=3030, help="port of the UI (default 3030; the model serves on 3000)")
    up.add_argument(
        "--replay", type=float, default=None, metavar="SECONDS", help="land the next simulated day every SECONDS"
    )
    up.set_defaults(func=_up)

    stop = sub.add_parser("stop", help="stop the model server and proxy that the demo (or deployment) started")
    stop.add_argument("--home", help="state directory (default: $ML_ASSETS_HOME or ./.ml_assets)")
    stop.set_defaults(func=_stop)

    rollback = sub.add_parser(
        "rollback",
        help="make the champion before the current one (or TAG, a former champion) current again",
        description="Run the rollback_champion job on the instance under ML_ASSETS_HOME: without TAG, roll back to "
        "the champion before the current one (refused when there is none); with TAG, to that former champion. It "
        "never promotes a candidate; automation then redeploys the restored champion.",
    )
    rollback.add_argument("tag", nargs="?", default=None, help="a former champion's model tag (default: the previous)")
    rollback.add_argument("--home", help="state directory (default: $ML_ASSETS_HOME or ./.ml_assets)")
    rollback.set_defaults(func=_rollback)

    from ml_assets.datasets.simulate_cli import add_simulate_parser

    add_simulate_parser(sub)
    from ml_assets.datasets.traffic_cli import add_traffic_parser

    add_traffic_parser(sub)
    from ml_assets.k8s_cli import add_k8s_parser

    add_k8s_parser(sub)
    from ml_assets.datasets.spec_cli import add_spec_parser

    add_spec_parser(sub)
    return parser


def _quiet_warnings() -> None:
    """Dagster flags preview/beta parameters (partitioned check specs, data versions) on every load."""
    import warnings

    from dagster import BetaWarning, PreviewWarning

    warnings.filterwarnings("ignore", category=PreviewWarning)
    warnings.filterwarnings("ignore", category=BetaWarning)


def dispatch(args: argparse.Namespace) -> int:
    """Run the parsed command. The project's own errors about the user's input (a spec that cannot be used, ...:
    ``ml_assets.cli_errors``) are one line on stderr and exit 2; anything else is a bug and keeps its traceback."""
    from ml_assets.cli_errors import is_user_error, one_line

    try:
        return int(args.func(args) or 0)
    except Exception as e:
        if not is_user_error(e):
            raise
        from ml_assets.settings import spec_path

        print(f"ml-assets {args.command}: error: {one_line(e, spec_path())}", file=sys.stderr)
        return 2


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    _quiet_warnings()
    if args.command in ("simulate", "traffic"):
        _prepare_environment(None)
    return dispatch(args)


if __name__ == "__main__":
    sys.exit(main())
