"""KubernetesTrainingLauncher: the training entrypoint under torchrun in GPU pods, reporting through Dagster Pipes.

One node is one pod requesting ``nvidia.com/gpu: N``, created by ``dagster_k8s.PipesK8sClient``, which injects
the Pipes context, streams the pod's logs into the step (Pipes messages are lines of that log) and waits for it.
Several nodes form one static torchrun rendezvous: node rank 0 is still that Pipes pod, the other nodes are an
Indexed Job (node rank = completion index + 1), and a headless Service gives the index-0 pod a stable DNS name
(``<group>-0.<group>``) the others rendezvous on. WORLD_SIZE is nodes x GPUs per node; global rank 0 lives in
the Pipes pod and is the only rank that reports, and the worker pods carry no Pipes variables at all. Every
node mounts the shared volume where ``TrainingStorage``, the checkpoints and the data plane's Parquet tables live,
so no result passes through a pod's local disk and the job names the training window by reference: each rank
streams only its own shard of it from there (or from object storage by URL, with the pods' credentials). A failed node fails the whole group (restartPolicy Never, backoffLimit 0): the step fails and
a rerun resumes from the last checkpoint.
"""

from __future__ import annotations

import secrets
import shlex
from dataclasses import dataclass
from typing import Any

from dagster import (
    AssetExecutionContext,
    Failure,
    OpExecutionContext,
    PipesClientCompletedInvocation,
)
from pydantic import Field

from resources.k8s_cluster import api_client
from resources.k8s_manifests import POD_SECURITY, RESTRICTED_CONTAINER, dns_label
from resources.launchers import LaunchSpec, TrainingLauncher, device_env

GPU = "nvidia.com/gpu"
CONTAINER = "trainer"
GROUP_LABEL = "ml-assets/training-group"
ROLE_LABEL = "ml-assets/training-role"


@dataclass(frozen=True)
class TrainingGroup:
    """The pods of one launch: ``nodes`` nodes of ``gpus_per_node`` ranks, named after ``name``."""

    name: str  # DNS label; the Service, the Job and the hostnames derive from it
    namespace: str
    nodes: int
    gpus_per_node: int
    master_port: int

    @property
    def world_size(self) -> int:
        return self.nodes * self.gpus_per_node

    @property
    def workers(self) -> str:
        """The Indexed Job of nodes 1..N-1."""
        return f"{self.name}-workers"

    @property
    def master_addr(self) -> str:
        """The index-0 pod's DNS name behind the headless Service (resolvable before it is ready)."""
        return f"{self.name}-0.{self.name}.{self.namespace}.svc.cluster.local"


def group_name(run_name: str, suffix: str = "") -> str:
    """A name for a launch's objects: a DNS-1035 label (Services need a leading letter) with room for suffixes."""
    return "-".join(part for part in ("train", dns_label(run_name)[:32].strip("-"), suffix) if part)


def torchrun_args(group: TrainingGroup, node_rank: str, module: str, args: list[str]) -> list[str]:
    """The ``torch.distributed.run`` arguments for one node (``node_rank`` may be a shell expression)."""
    if group.nodes == 1:
        rendezvous = ["--standalone", "--nnodes", "1"]
    else:  # static rendezvous: node rank r holds global ranks r*G .. r*G+G-1, so rank 0 is on node 0
        rendezvous = [
            "--nnodes", str(group.nodes), "--node-rank", node_rank,
            "--master-addr", group.master_addr, "--master-port", str(group.master_port),
        ]  # fmt: skip
    return [
        "-m", "torch.distributed.run", *rendezvous,
        "--nproc-per-node", str(group.gpus_per_node), "--max-restarts", "0",
        "-m", module, *args,
    ]  # fmt: skip


class KubernetesTrainingLauncher(TrainingLauncher):
    """Training ranks in GPU pods: one node, or several nodes as a static torchrun rendezvous."""

    image: str = Field(description="the project image (torch, DeepSpeed, ml-assets), e.g. registry/ml-assets:1.2")
    namespace: str = Field("default", description="where the training pods, Job and Service go")
    gpus_per_node: int = Field(8, description="GPUs one pod requests (nvidia.com/gpu); ranks per node")
    max_nodes: int = Field(1, description="largest group of nodes one launch may use")
    gpu_supports_bf16: bool = Field(True, description="the GPUs train in bf16 natively (Ampere and newer)")
    cpu: str = Field("16", description="CPU request per node")
    memory: str = Field("128Gi", description="memory request and limit per node")
    shm_size: str = Field("32Gi", description="in-memory /dev/shm per node (NCCL and DataLoader-free tensors)")
    threads_per_rank: int = 4
    service_account: str = ""
    node_selector: dict[str, str] = Field(default_factory=dict)
    tolerations: list[dict[str, Any]] = Field(
        default_factory=lambda: [{"key": GPU, "operator": "Exists", "effect": "NoSchedule"}]
    )
    volume_claim: str = Field("ml-assets-data", description="the shared ReadWriteMany volume every node mounts")
    mount_path: str = Field("/data/ml-assets", description="where it is mounted (TrainingStorage and checkpoints)")
    env: dict[str, str] = Field(default_factory=dict, description="extra environment, e.g. NCCL_SOCKET_IFNAME")
    master_port: int = 29500
    pod_wait_timeout_s: float = Field(24 * 3600.0, description="longest a training may run")
    kubeconfig_file: str | None = None
    kube_context: str | None = None

    # ---- what the target holds -------------------------------------------------------------------------------
    def capacity(self, device: str) -> int:
        return self.gpus_per_node * self.max_nodes if device == "cuda" else 0

    def supports_bf16(self, device: str) -> bool:
        return device == "cuda" and self.gpu_supports_bf16

    def layout_problems(self, ranks: int, device: str) -> list[str]:
        if ranks > self.gpus_per_node and ranks % self.gpus_per_node:
            return [f"ranks={ranks} does not fill whole nodes of {self.gpus_per_node} GPUs (use a multiple)"]
        return []

    def group(self, ranks: int, name: str) -> TrainingGroup:
        nodes = max(1, ranks // self.gpus_per_node) if ranks > self.gpus_per_node else 1
        per_node = ranks if nodes == 1 else self.gpus_per_node
        return TrainingGroup(name, self.namespace, nodes, per_node, self.master_port)

    # ---- objects (pure) -------------------------------------------------------------------------------------------
    def node_pod_spec(self, group: TrainingGroup, command: list[str]) -> dict[str, Any]:
        """The pod spec every node runs: the image, its GPUs, the shared volume, restricted privileges."""
        resources = {
            "requests": {"cpu": self.cpu, "memory": self.memory, GPU: str(group.gpus_per_node)},
            "limits": {"memory": self.memory, GPU: str(group.gpus_per_node)},
        }
        env = {**device_env("cuda", self.threads_per_rank), **self.env}
        spec: dict[str, Any] = {
            "restartPolicy": "Never",
            "securityContext": POD_SECURITY,
            "containers": [
                {
                    "name": CONTAINER,
                    "image": self.image,
                    "command": command,
                    "env": [{"name": k, "value": v} for k, v in env.items()],
                    "resources": resources,
                    # DeepSpeed's JIT op cache and torch's compile caches write under the image's home
                    "securityContext": {**RESTRICTED_CONTAINER, "readOnlyRootFilesystem": False},
                    "volumeMounts": [
                        {"name": "shared", "mountPath": self.mount_path},
                        {"name": "dshm", "mountPath": "/dev/shm"},
                    ],
                }
            ],
            "volumes": [
                {"name": "shared", "persistentVolumeClaim": {"claimName": self.volume_claim}},
                {"name": "dshm", "emptyDir": {"medium": "Memory", "sizeLimit": self.shm_size}},
            ],
            "tolerations": self.tolerations,
        }
        if self.node_selector:
            spec["nodeSelector"] = self.node_selector
        if self.service_account:
            spec["serviceAccountName"] = self.service_account
        if group.nodes > 1:
            spec["subdomain"] = group.name  # DNS records under the headless Service
        return spec

    def rank0_pod(self, group: TrainingGroup, spec: LaunchSpec) -> tuple[dict[str, Any], dict[str, Any]]:
        """(metadata, pod spec) of node rank 0, the pod PipesK8sClient creates and reads Pipes messages from."""
        pod = self.node_pod_spec(group, ["python", *torchrun_args(group, "0", spec.module, list(spec.args))])
        if group.nodes > 1:
            pod["hostname"] = f"{group.name}-0"
        return {"labels": self.labels(group, "rank0")}, pod

    def worker_job(self, group: TrainingGroup, spec: LaunchSpec) -> dict[str, Any]:
        """Nodes 1..N-1 as one Indexed Job; each derives its node rank from its completion index."""
        argv = torchrun_args(group, "NODE_RANK", spec.module, [])
        script = "exec python " + shlex.join(argv).replace("NODE_RANK", '"$((JOB_COMPLETION_INDEX + 1))"') + ' "$@"'
        workers = group.nodes - 1
        return {
            "apiVersion": "batch/v1",
            "kind": "Job",
            # not named like the group: an Indexed Job's pods are hostnamed <job>-<index>, and <group>-0 is rank 0
            "metadata": {"name": group.workers, "namespace": group.namespace, "labels": self.labels(group, "worker")},
            "spec": {
                "completionMode": "Indexed",
                "completions": workers,
                "parallelism": workers,
                "backoffLimit": 0,  # a lost node breaks the rendezvous: fail the group, rerun resumes
                "activeDeadlineSeconds": int(self.pod_wait_timeout_s),
                "ttlSecondsAfterFinished": 3600,
                "template": {
                    "metadata": {"labels": self.labels(group, "worker")},
                    "spec": self.node_pod_spec(group, ["/bin/sh", "-c", script, "torchrun", *spec.args]),
                },
            },
        }

    def rendezvous_service(self, group: TrainingGroup) -> dict[str, Any]:
        """Headless Service giving each node pod a DNS name; published before readiness so rendezvous can start."""
        return {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": group.name, "namespace": group.namespace, "labels": self.labels(group, "rendezvous")},
            "spec": {
                "clusterIP": "None",
                "publishNotReadyAddresses": True,
                "selector": {GROUP_LABEL: group.name},
                "ports": [{"name": "rendezvous", "port": group.master_port, "protocol": "TCP"}],
            },
        }

    def labels(self, group: TrainingGroup, role: str) -> dict[str, str]:
        return {"app.kubernetes.io/part-of": "ml-assets", GROUP_LABEL: group.name, ROLE_LABEL: role}

    def manifests(self, ranks: int, spec: LaunchSpec) -> list[dict[str, Any]]:
        """Every object one launch of ``ranks`` creates (node 0 as the Pod PipesK8sClient would create, less
        the Pipes variables it injects at run time), for inspection."""
        group = self.group(ranks, group_name(spec.run_name))
        meta, pod = self.rank0_pod(group, spec)
        rank0 = {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": f"{group.name}-0", "namespace": group.namespace, **meta},
            "spec": pod,
        }
        if group.nodes == 1:
            return [rank0]
        return [self.rendezvous_service(group), rank0, self.worker_job(group, spec)]

    # ---- running ------------------------------------------------------------------------------------------------
    def launch(
        self, context: AssetExecutionContext | OpExecutionContext, spec: LaunchSpec
    ) -> PipesClientCompletedInvocation:
        import kubernetes
        from dagster_k8s import PipesK8sClient
        from dagster_k8s.client import DagsterK8sError

        group = self.group(spec.ranks, group_name(spec.run_name, secrets.token_hex(3)))
        client = api_client(self.kubeconfig_file, self.kube_context)
        core, batch = kubernetes.client.CoreV1Api(client), kubernetes.client.BatchV1Api(client)
        meta, pod = self.rank0_pod(group, spec)
        context.log.info(
            f"launching training group {group.name} in {group.namespace}: {group.nodes} node(s) x "
            f"{group.gpus_per_node} GPU(s) = {group.world_size} ranks, image {self.image}"
        )
        try:
            if group.nodes > 1:
                core.create_namespaced_service(group.namespace, self.rendezvous_service(group))
                batch.create_namespaced_job(group.namespace, self.worker_job(group, spec))
            pipes = PipesK8sClient(kubeconfig_file=self.kubeconfig_file, kube_context=self.kube_context)
            return pipes.run(
                context=context,
                namespace=group.namespace,
                base_pod_meta=meta,
                base_pod_spec=pod,
                pod_wait_timeout=self.pod_wait_timeout_s,
            )
        except (DagsterK8sError, kubernetes.client.ApiException) as e:
            raise Failure(
                description=f"training group {group.name} ({group.nodes} node(s) x {group.gpus_per_node} GPU(s), "
                f"namespace {group.namespace}) failed: {e}. Rank 0's output is in this step's logs; the group's pods "
                "are deleted so no GPU stays held; a rerun resumes from the last checkpoint.",
                metadata={"training_group": group.name, "namespace": group.namespace},
            ) from e
        finally:  # a node left behind would hold its GPUs until the deadline
            if group.nodes > 1:
                _delete_quietly(
                    lambda: batch.delete_namespaced_job(group.workers, group.namespace, propagation_policy="Background")
                )
                _delete_quietly(lambda: core.delete_namespaced_service(group.name, group.namespace))


def _delete_quietly(delete) -> None:
    """Clean up after a group; a missing object is already what we want."""
    import kubernetes

    try:
        delete()
    except kubernetes.client.ApiException as e:
        if e.status != 404:
            raise
