"""``ml-assets k8s render --env ENV --out DIR``: every object an environment creates on Kubernetes, as YAML, for
review and GitOps.

Each environment runs in its own namespace (``ml-assets`` for prod, ``ml-assets-qa`` and ``ml-assets-dev`` beside
it, unless ``--namespace`` says otherwise). The objects come from the same resources ``ML_ASSETS_RUNS_ON=kubernetes``
runs with (``ml_assets.environments``), so what is reviewed is what runs: a training launch of N nodes x G GPUs (the rank-0 pod PipesK8sClient creates, less the
Pipes variables it injects at run time, the workers' Indexed Job and the rendezvous Service), both serving slots
with the stable and preview Services, the Job that builds and pushes the served Bento's image in the cluster, the Role the run and step pods need, and the Dagster instance config and
Helm values from ``deploy/``.
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path
from typing import Any

DEPLOY = Path(__file__).resolve().parents[1] / "deploy"


def render(
    out: Path,
    home: str,
    namespace: str | None,
    nodes: int,
    gpus_per_node: int,
    bento_tag: str | None,
    model_tag: str | None,
    service_account: str,
    env: str = "prod",
) -> dict[str, list[dict[str, Any]]]:
    """Write the objects of environment ``env`` under ``out`` (one YAML file per group) and return them by file name;
    ``namespace`` None: the environment's own."""
    from ml_assets.dataset import load_default_spec
    from ml_assets.environments import kubernetes_resources
    from ml_assets.settings import kubernetes_namespace
    from resources.deepspeed_trainer import ENTRYPOINT
    from resources.k8s_manifests import SLOTS, other_slot, to_yaml, workload_rbac
    from resources.launchers import LaunchSpec

    spec = load_default_spec()
    prod = kubernetes_resources(spec, home=home, namespace=namespace or kubernetes_namespace(env), env=env)
    trainer, deployer = prod["trainer"], prod["bento_deployer"]
    launcher = trainer.launcher.model_copy(
        update={"gpus_per_node": gpus_per_node, "max_nodes": max(nodes, trainer.launcher.max_nodes)}
    )
    run_name = "example"
    launch = LaunchSpec(
        module=ENTRYPOINT,
        args=(trainer.storage.location(run_name, "job.json"),),
        ranks=nodes * gpus_per_node,
        device="cuda",
        run_name=run_name,
    )
    bento_tag = bento_tag or f"{spec.name}-service:latest"
    model_tag = model_tag or f"{spec.name}-classifier:latest"
    serving = []
    for slot in SLOTS:  # both slots as a redeploy leaves them; the stable Service on blue, the preview on green
        deployment, preview, stable = deployer.objects(bento_tag, model_tag, slot, live_slot=other_slot(slot))
        serving.append(deployment)
    serving += [preview, stable]
    groups = {
        "training.yaml": launcher.manifests(launch.ranks, launch),
        "serving.yaml": serving,
        "image-build.yaml": [deployer.image_builder.job(bento_tag)] if deployer.image_builder else [],
        "rbac.yaml": workload_rbac(deployer.namespace, service_account),
    }
    out.mkdir(parents=True, exist_ok=True)
    for name, objects in groups.items():
        (out / name).write_text(to_yaml(objects))
    (out / "helm").mkdir(exist_ok=True)
    shutil.copy(DEPLOY / "helm" / "values.yaml", out / "helm" / "values.yaml")
    shutil.copy(DEPLOY / "dagster.yaml", out / "dagster.yaml")
    return groups


def _render(args: argparse.Namespace) -> int:
    from ml_assets.settings import check_environment

    if args.nodes < 1 or args.gpus_per_node < 1:
        raise SystemExit(f"--nodes and --gpus-per-node must be >= 1, got {args.nodes} and {args.gpus_per_node}")
    groups = render(
        Path(args.out),
        args.home,
        args.namespace,
        args.nodes,
        args.gpus_per_node,
        args.bento_tag,
        args.model_tag,
        args.service_account,
        check_environment(args.env, "--env"),
    )
    for name, objects in groups.items():
        kinds = ", ".join(f"{o['kind']} {o['metadata']['name']}" for o in objects)
        print(f"{Path(args.out) / name}: {kinds}")
    print(f"{Path(args.out) / 'helm' / 'values.yaml'}, {Path(args.out) / 'dagster.yaml'}: from {DEPLOY}")
    return 0


def add_k8s_parser(sub: argparse._SubParsersAction) -> None:
    k8s = sub.add_parser("k8s", help="Kubernetes: render what an environment (prod by default) creates")
    commands = k8s.add_subparsers(dest="k8s_command", required=True)
    render_cmd = commands.add_parser(
        "render",
        help="write every object prod creates (training, serving, RBAC, Helm values) as YAML",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    render_cmd.add_argument("--out", required=True, help="folder to write the YAML files to")
    render_cmd.add_argument(
        "--home", default="/data/ml-assets", help="ML_ASSETS_HOME in the pods (default: %(default)s)"
    )
    render_cmd.add_argument("--env", default="prod", help="dev, qa or prod (default: %(default)s)")
    render_cmd.add_argument(
        "--namespace", default=None, help="where it all goes (default: ml-assets for prod, ml-assets-<env> otherwise)"
    )
    render_cmd.add_argument("--nodes", type=int, default=2, help="training nodes (default: %(default)s)")
    render_cmd.add_argument(
        "--gpus-per-node", type=int, default=8, help="GPUs per training node (default: %(default)s)"
    )
    render_cmd.add_argument("--bento-tag", help="the Bento to serve (default: <dataset>-service:latest)")
    render_cmd.add_argument("--model-tag", help="the model it serves (default: <dataset>-classifier:latest)")
    render_cmd.add_argument("--service-account", default="dagster", help="account of the run and step pods")
    render_cmd.set_defaults(func=_render)
