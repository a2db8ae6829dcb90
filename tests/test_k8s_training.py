"""KubernetesTrainingLauncher's objects: GPU requests, Pipes on rank 0 only, the torchrun rendezvous, restart policy.

No cluster runs here: nothing is applied or scheduled. The objects are checked against the official Kubernetes
schemas (tests/k8s_schemas.py), the rank-0 pod is built by dagster-k8s's own pod builder (what PipesK8sClient
sends to the API server), and torchrun's command lines are parsed by torch's own argument parser.
"""

from __future__ import annotations

from typing import Any

import pytest
from dagster import build_asset_context
from dagster_k8s.pipes import build_pod_body
from dagster_pipes import DAGSTER_PIPES_CONTEXT_ENV_VAR, DAGSTER_PIPES_MESSAGES_ENV_VAR
from kubernetes.client import ApiClient
from torch.distributed.run import config_from_args, get_args_parser

from resources.deepspeed_trainer import ENTRYPOINT, DeepSpeedTrainer, TrainerConfigError
from resources.k8s_training import GPU, KubernetesTrainingLauncher, group_name
from resources.launchers import LaunchSpec
from resources.training_storage import TrainingStorage
from tests.k8s_schemas import assert_valid_object

JOB_URL = "/data/ml-assets/staging/run-1/job.json"


def launcher(**fields: Any) -> KubernetesTrainingLauncher:
    return KubernetesTrainingLauncher(image="registry.local/ml-assets:1.0", namespace="ml", **fields)


def launch(ranks: int) -> LaunchSpec:
    return LaunchSpec(module=ENTRYPOINT, args=(JOB_URL,), ranks=ranks, device="cuda", run_name="Run_1/abc")


def by_kind(objects: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {o["kind"]: o for o in objects}


def containers(obj: dict[str, Any]) -> list[dict[str, Any]]:
    spec = obj["spec"]["template"]["spec"] if obj["kind"] == "Job" else obj["spec"]
    return spec["containers"]


def torchrun_config(argv: list[str]):
    """What torch.distributed.run makes of a node's command line (after ``python -m torch.distributed.run``):
    its launch config, and the command each rank runs."""
    assert argv[:3] == ["python", "-m", "torch.distributed.run"], argv
    config, module, args = config_from_args(get_args_parser().parse_args(argv[3:]))
    return config, module, args


def test_one_node_is_one_pod_with_its_gpus() -> None:
    objects = launcher(gpus_per_node=8).manifests(4, launch(4))
    assert [o["kind"] for o in objects] == ["Pod"]
    pod = objects[0]
    assert_valid_object(pod)
    (container,) = containers(pod)
    assert container["resources"]["limits"][GPU] == container["resources"]["requests"][GPU] == "4"
    assert pod["spec"]["restartPolicy"] == "Never"
    assert "subdomain" not in pod["spec"] and "hostname" not in pod["spec"]
    config, _, args = torchrun_config(container["command"])
    assert (config.min_nodes, config.max_nodes, config.nproc_per_node) == (1, 1, 4)
    assert config.max_restarts == 0 and args[-3:] == ["-m", ENTRYPOINT, JOB_URL]


def test_two_nodes_of_eight_gpus_rendezvous_on_the_index_0_pod() -> None:
    objects = by_kind(launcher(gpus_per_node=8, max_nodes=2).manifests(16, launch(16)))
    assert set(objects) == {"Service", "Pod", "Job"}
    for obj in objects.values():
        assert_valid_object(obj)
    service, pod, job = objects["Service"], objects["Pod"], objects["Job"]
    name = service["metadata"]["name"]
    assert name == "train-run-1-abc" and pod["metadata"]["name"] == f"{name}-0"

    # headless, published before readiness, selecting every node of the group
    assert service["spec"]["clusterIP"] == "None" and service["spec"]["publishNotReadyAddresses"] is True
    assert service["spec"]["selector"].items() <= pod["metadata"]["labels"].items()
    assert service["spec"]["selector"].items() <= job["spec"]["template"]["metadata"]["labels"].items()
    master = f"{name}-0.{name}.ml.svc.cluster.local"
    assert pod["spec"]["hostname"] == f"{name}-0" and pod["spec"]["subdomain"] == name  # = the DNS name above
    assert job["spec"]["template"]["spec"]["subdomain"] == name
    assert job["metadata"]["name"] != pod["spec"]["hostname"].rsplit("-", 1)[0]  # worker hostnames never collide

    # node 0: global ranks 0-7, the rendezvous host
    rank0, _, _ = torchrun_config(containers(pod)[0]["command"])
    assert (rank0.min_nodes, rank0.max_nodes, rank0.nproc_per_node) == (2, 2, 8)  # WORLD_SIZE 16
    assert rank0.rdzv_backend == "static" and rank0.rdzv_endpoint == f"{master}:29500"
    assert rank0.rdzv_configs["rank"] == 0

    # workers: node rank = completion index + 1, the same rendezvous
    (worker,) = containers(job)
    shell, flag, script, argv0, *args = worker["command"]
    assert (shell, flag, argv0, args) == ("/bin/sh", "-c", "torchrun", [JOB_URL])
    expanded = script.replace('"$((JOB_COMPLETION_INDEX + 1))"', "1").replace('"$@"', JOB_URL)
    node1, _, worker_args = torchrun_config(expanded.removeprefix("exec ").split())
    assert node1.rdzv_configs["rank"] == 1 and node1.rdzv_endpoint == rank0.rdzv_endpoint
    assert (node1.max_nodes, node1.nproc_per_node, worker_args[-3:]) == (2, 8, ["-m", ENTRYPOINT, JOB_URL])
    assert job["spec"]["completionMode"] == "Indexed" and job["spec"]["completions"] == job["spec"]["parallelism"] == 1

    # a lost node fails the group, never restarts into a broken rendezvous
    assert job["spec"]["backoffLimit"] == 0
    assert job["spec"]["template"]["spec"]["restartPolicy"] == pod["spec"]["restartPolicy"] == "Never"
    for obj in (pod, job):
        (c,) = containers(obj)
        assert c["resources"]["limits"][GPU] == "8"
        assert {m["mountPath"] for m in c["volumeMounts"]} == {"/data/ml-assets", "/dev/shm"}
        assert c["securityContext"]["allowPrivilegeEscalation"] is False


def test_pipes_variables_reach_rank_0_only() -> None:
    """The rank-0 pod as PipesK8sClient builds it (dagster-k8s's build_pod_body with a session's bootstrap
    variables) carries the Pipes context and message channel; the worker Job carries none."""
    k8s = launcher(gpus_per_node=8, max_nodes=2)
    group = k8s.group(16, group_name("run-1"))
    meta, spec = k8s.rank0_pod(group, launch(16))
    bootstrap = {DAGSTER_PIPES_CONTEXT_ENV_VAR: "eyJ4IjogMX0=", DAGSTER_PIPES_MESSAGES_ENV_VAR: "eyJ5IjogMn0="}
    pod = ApiClient().sanitize_for_serialization(build_pod_body("pipes-pod", None, None, bootstrap, meta, spec))
    assert_valid_object({"apiVersion": "v1", "kind": "Pod", **pod})
    rank0_env = {e["name"] for e in pod["spec"]["containers"][0]["env"]}
    assert {DAGSTER_PIPES_CONTEXT_ENV_VAR, DAGSTER_PIPES_MESSAGES_ENV_VAR} <= rank0_env
    assert pod["spec"]["hostname"] == f"{group.name}-0" and pod["spec"]["restartPolicy"] == "Never"
    workers = k8s.worker_job(group, launch(16))
    assert not [e for e in containers(workers)[0]["env"] if e["name"].startswith("DAGSTER_PIPES")]


@pytest.mark.parametrize(
    ("ranks", "fields", "message"),
    [
        (12, {"gpus_per_node": 8, "max_nodes": 2}, "ranks=12 does not fill whole nodes of 8 GPUs"),
        (24, {"gpus_per_node": 8, "max_nodes": 2}, "ranks=24 exceeds the 16 GPUs available to the launcher"),
    ],
)
def test_layouts_that_do_not_fit_are_rejected_before_launch(ranks: int, fields: dict, message: str) -> None:
    trainer = DeepSpeedTrainer(launcher=launcher(**fields), storage=TrainingStorage(root="/data"), ranks=ranks)
    with pytest.raises(TrainerConfigError, match=message):
        trainer.plan()


def test_the_plan_resolves_to_gpus_in_bf16() -> None:
    trainer = DeepSpeedTrainer(launcher=launcher(max_nodes=2), storage=TrainingStorage(root="/data"), ranks=16)
    plan = trainer.plan()
    assert (plan.device, plan.precision, plan.ranks) == ("cuda", "bf16", 16)
    assert plan.deepspeed_config["train_batch_size"] == trainer.micro_batch_size * 16


def test_without_a_cluster_the_launch_fails_before_creating_anything(monkeypatch, tmp_path) -> None:
    """No cluster is configured on this machine: the launcher says so instead of launching."""
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "absent"))
    with pytest.raises(RuntimeError, match="no Kubernetes cluster configured"):
        launcher().launch(build_asset_context(), launch(8))


def test_the_schema_check_is_strict() -> None:
    """A misspelt field is an error (strict schemas), so the validations above can fail."""
    import kubernetes_validate

    pod = launcher().manifests(8, launch(8))[0]
    containers(pod)[0]["resource"] = containers(pod)[0].pop("resources")
    with pytest.raises(kubernetes_validate.ValidationError, match="resource"):
        assert_valid_object(pod)
