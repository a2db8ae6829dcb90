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


def _prepare_environment(home: str | None, env: str | None = None) -> Path:
    """Point every piece of state at the environment's folder of one home directory (``env``, default
    ML_ASSETS_ENV) before Dagster or BentoML import anything."""
    if home:
        os.environ["ML_ASSETS_HOME"] = home
    if env:
        os.environ["ML_ASSETS_ENV"] = env
    from ml_assets.settings import ml_assets_home, paths

    os.environ["ML_ASSETS_HOME"] = str(ml_assets_home())
    where = paths()  # dev honours a DAGSTER_HOME or BENTOML_HOME already set; qa and prod keep theirs in their folder
    os.environ["DAGSTER_HOME"] = str(where.dagster_home)
    os.environ["BENTOML_HOME"] = str(where.bentoml_home)
    os.environ.setdefault("BENTOML_DO_NOT_TRACK", "true")
    for folder in (where.home, where.dagster_home, where.landing, where.quarantine):
        folder.mkdir(parents=True, exist_ok=True)
    instance_config = where.dagster_home / "dagster.yaml"
    if not instance_config.exists():
        instance_config.write_text(LOCAL_INSTANCE_CONFIG)
    return where.home


def _fresh(home: Path) -> None:
    """Delete an environment's state; dev's folder is the top of ML_ASSETS_HOME, and the qa and prod folders in it
    are theirs, not dev's, so they stay."""
    from ml_assets.settings import ENVIRONMENTS, environment_home

    others = {environment_home(e) for e in ENVIRONMENTS} - {home}
    for entry in home.iterdir() if home.exists() else ():
        if entry in others:
            continue
        shutil.rmtree(entry) if entry.is_dir() and not entry.is_symlink() else entry.unlink()


def _demo(args: argparse.Namespace) -> int:
    if args.fresh:
        if args.home:
            os.environ["ML_ASSETS_HOME"] = args.home
        from ml_assets.settings import paths

        _fresh(paths().home)
    _prepare_environment(args.home)
    from ml_assets.demo import run_demo

    return run_demo(days=args.days, seed=args.seed, stages=args.stages)


def _up(args: argparse.Namespace) -> int:
    _prepare_environment(args.home)
    from ml_assets.dataset import load_default_spec
    from ml_assets.model.gates import thresholds_for
    from ml_assets.up import run_up

    thresholds_for(load_default_spec())  # a spec that cannot be used is refused before anything starts

    return run_up(host=args.host, port=args.port, replay_s=args.replay)


def _outcome(result) -> str:
    """What a champion_model run that failed says: a refusal's one line, else the innermost error's first line."""
    failure = next((e for e in result.all_events if e.is_step_failure), None)
    data = failure.step_failure_data if failure is not None else None
    if data is not None and data.user_failure_data is not None:  # a refusal: its one line
        return data.user_failure_data.description or "refused"
    error = data.error if data is not None else None
    while error is not None and error.cause is not None:
        error = error.cause
    return (error.message.strip().splitlines() or ["no error message"])[0] if error else "the run failed"


def _run_champion_job(job_name: str, run_config: dict, tags: dict[str, str]):
    """Run a job that materializes ``champion_model`` alone on the environment's instance, as the launchpad would;
    the run's log is in the instance (the UI), the terminal gets one line."""
    from dagster import DagsterInstance

    from ml_assets.definitions import build_definitions

    job = build_definitions().resolve_job_def(job_name)
    with DagsterInstance.get() as instance:
        return job.execute_in_process(
            instance=instance,
            run_config={**run_config, "loggers": {"console": {"config": {"log_level": "CRITICAL"}}}},
            raise_on_error=False,
            tags=tags,
        )


def _promote(args: argparse.Namespace) -> int:
    """Run the ``promote_model`` job in the target environment: the model that passed the source environment
    becomes the champion there, or one line says why not (exit 2)."""
    from ml_assets.settings import check_environment

    source, target = check_environment(args.source, "--from"), check_environment(args.target, "--to")
    _prepare_environment(args.home, target)
    _quiet_warnings()
    from ml_assets.model.champion import PROMOTE_JOB, promote_run_config
    from ml_assets.promotion import promoter

    by = promoter(args.by or "")
    result = _run_champion_job(
        PROMOTE_JOB,
        promote_run_config(args.tag, source, by),
        {"ml_assets/trigger": "cli", "ml_assets/promoted_by": by, "ml_assets/promoted_from": source},
    )
    if result.success:
        meta = result.asset_materializations_for_node("champion_model")[0].metadata
        print(f"ml-assets promote: {meta['why'].value} (previous champion in {target}: "
              f"{meta['previous_champion'].value}); automation rebuilds and redeploys it "
              f"(ML_ASSETS_ENV={target} ml-assets up), or launch serving_job")  # fmt: skip
        return 0
    print(f"ml-assets promote: {_outcome(result)}", file=sys.stderr)
    return 2


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
    # the URL it served on, as recorded (ML_ASSETS_SERVE_PORT may differ now from when it was deployed)
    print(f"stopped the served model, its proxy and supervisor: no process of {state.url} is left (state: "
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
    from ml_assets.model.champion import ROLLBACK_JOB, rollback_run_config

    result = _run_champion_job(ROLLBACK_JOB, rollback_run_config(args.tag or ""), {"ml_assets/trigger": "cli"})
    if result.success:
        meta = result.asset_materializations_for_node("champion_model")[0].metadata
        print(f"ml-assets rollback: {meta['why'].value}; automation rebuilds and redeploys it (ml-assets up), or "
              "launch serving_job")  # fmt: skip
        return 0
    print(f"ml-assets rollback: {_outcome(result)}", file=sys.stderr)
    return 1


def _shadow(args: argparse.Namespace) -> int:
    """``shadow export``: shadow days that passed the privacy gate into a landing folder; one line on refusal."""
    _prepare_environment(args.home)
    _quiet_warnings()
    from dagster import DagsterInstance, Failure

    from ml_assets.dataset import load_default_spec
    from ml_assets.definitions import build_definitions
    from ml_assets.shadow.export import ExportError, export_shadow

    try:
        with DagsterInstance.get() as instance:
            done = export_shadow(build_definitions(), instance, load_default_spec(), args.days, Path(args.to))
    except (ExportError, Failure) as e:
        message = e.description if isinstance(e, Failure) else str(e)
        print(f"ml-assets shadow export: {message}", file=sys.stderr)
        return 2
    print(f"exported {done.rows} shadow rows in {len(done.files)} days to {args.to} ({done.verdict.describe()})")
    return 0


def _export(args: argparse.Namespace) -> int:
    """Write a stored model with its preprocessing as one ONNX file; ``champion`` names the current champion."""
    _prepare_environment(args.home)
    from ml_assets.dataset import load_default_spec
    from ml_assets.environments import resources_for
    from ml_assets.export.onnx_model import ExportError, export_onnx
    from ml_assets.model.refs import load_stored
    from ml_assets.settings import environment
    from resources.model_store import ModelNotFoundError

    spec = load_default_spec()
    store = resources_for(environment(), spec)["model_store"]
    tag = args.tag
    try:
        if tag == "champion":
            from dagster import DagsterInstance

            from ml_assets.model.registry import current_champion_tag

            with DagsterInstance.get() as instance:
                tag = current_champion_tag(instance)
            if tag is None:
                raise ExportError(f"there is no champion yet on the instance under {os.environ['DAGSTER_HOME']}")
        tag = store.info(tag).tag  # name:latest -> the version it names
        proto = export_onnx(load_stored(store, tag), model_tag=tag)  # in the order of the spec the model carries
    except (ModelNotFoundError, ExportError) as e:
        print(f"ml-assets export: error: {e}", file=sys.stderr)
        return 2
    except ValueError as e:  # BentoML's refusal of a malformed tag
        print(f"ml-assets export: error: {args.tag!r} is not a model tag: {e}", file=sys.stderr)
        return 2
    out = Path(args.output)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(proto.SerializeToString())
    inputs = [i.name for i in proto.graph.input]
    print(f"wrote {tag} ({out.stat().st_size / 1e3:.1f} kB) to {out}: {len(inputs)} inputs ({', '.join(inputs)}), "
          "outputs probability, label, label_name")  # fmt: skip
    return 0


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
    up.add_argument(
        "--port",
        type=int,
        default=None,
        help="port of the UI (default 3030 in dev, 3031 in qa, 3032 in prod; the model serves on 3000, 3001, 3002)",
    )
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

    promote = sub.add_parser(
        "promote",
        help="promote a model that passed QA into prod (or one that passed dev into qa): it becomes the champion",
        description="Run the promote_model job in the target environment: the model arrives with its lineage and "
        "the source's evidence (gates, readiness) through BentoML's export/import, becomes the champion there and "
        "is recorded in the target's instance (who, when, what, from where). Refused in one line (exit 2) when it "
        "did not pass every blocking gate and readiness in the source. Rolling prod back is promoting the previous "
        "model again.",
    )
    promote.add_argument(
        "tag", help="the model's tag in the source environment's store (name:version), or 'champion': its champion"
    )
    promote.add_argument("--from", dest="source", required=True, help="the environment it passed: qa (or dev)")
    promote.add_argument("--to", dest="target", required=True, help="the environment it goes to: prod (or qa)")
    promote.add_argument("--by", default=None, help="who promotes (default: $USER)")
    promote.add_argument(
        "--home", help="ML_ASSETS_HOME holding both environments (default: $ML_ASSETS_HOME or ./.ml_assets)"
    )
    promote.set_defaults(func=_promote)

    shadow = sub.add_parser("shadow", help="shadow data: generated days that passed the privacy gate")
    shadow_sub = shadow.add_subparsers(dest="shadow_command", required=True)
    shadow_export = shadow_sub.add_parser(
        "export",
        help="write the newest shadow days that passed the privacy gate into a landing folder",
        description="Export the newest N days of the latest shadow_data materialization (refused unless its "
        "privacy checks passed) as <DIR>/<YYYY-MM-DD>/shadow.parquet, re-dated to end on the last complete day.",
    )
    shadow_export.add_argument("--days", type=int, required=True, help="how many of the newest shadow days")
    shadow_export.add_argument("--to", required=True, help="the landing folder to write (e.g. the dev home's landing/)")
    shadow_export.add_argument("--home", help="state directory holding shadow_data (default: $ML_ASSETS_HOME)")
    shadow_export.set_defaults(func=_shadow)

    export = sub.add_parser(
        "export",
        help="write a stored model with its preprocessing as one ONNX file an application runs with onnxruntime",
        description="Export MODEL_TAG (name:version, name:latest, or champion) from the model store under "
        "ML_ASSETS_HOME as one ONNX graph: one input per feature column of the spec, shape (rows, 1) (numbers as "
        "double, NaN missing; categories as text, '' missing), outputs probability, label and label_name.",
    )
    export.add_argument("tag", metavar="MODEL_TAG", help="a model tag, name:latest, or champion")
    export.add_argument("--format", choices=["onnx"], default="onnx", help="the file format (onnx)")
    export.add_argument("-o", "--output", required=True, metavar="FILE", help="where to write the file")
    export.add_argument("--home", help="state directory (default: $ML_ASSETS_HOME or ./.ml_assets)")
    export.set_defaults(func=_export)

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
