"""Kubernetes objects for serving a Bento's image blue/green, and the restricted security settings all pods share.

Each Bento name gets two Deployments, ``<name>-blue`` and ``<name>-green`` (slots), and two Services: ``<name>``,
the stable one applications call, selects the live slot; ``<name>-preview`` selects the other slot, where a new
version is validated before the stable selector switches to it. The previous version stays in its slot for
rollback. Pods run non-root on a read-only root file system without privilege escalation or capabilities (the
Pod Security "restricted" profile), take traffic only once ``/readyz`` says the model is loaded and warmed up, and
write the prediction log to the shared volume (the ``prediction_log`` folder of ML_ASSETS_HOME, nothing else).
The image is the Bento's, built in the cluster and pushed to ``registry`` (``resources.image_builder``).
"""

from __future__ import annotations

import re
from typing import Any

import yaml

CONTAINER_PORT = 3000
SLOTS = ("blue", "green")
SLOT_LABEL = "ml-assets/slot"
NAME_LABEL = "app.kubernetes.io/name"
# Every pod that touches the shared volume runs as this uid and group (the Dagster pods too, see
# deploy/helm/values.yaml): the prediction log's files are owner-only, and the prediction_log asset reads them.
SHARED_UID = 1000

POD_SECURITY: dict[str, Any] = {
    "runAsNonRoot": True,
    "runAsUser": SHARED_UID,
    "runAsGroup": SHARED_UID,
    "fsGroup": SHARED_UID,
    "seccompProfile": {"type": "RuntimeDefault"},
}
RESTRICTED_CONTAINER: dict[str, Any] = {
    "allowPrivilegeEscalation": False,
    "readOnlyRootFilesystem": True,
    "capabilities": {"drop": ["ALL"]},
}


def dns_label(name: str) -> str:
    """``name`` as a DNS-1123 label (lowercase alphanumerics and '-', at most 63 characters)."""
    label = re.sub(r"[^a-z0-9-]+", "-", name.lower()).strip("-")[:63].strip("-")
    return label or "ml-assets"


def k8s_name(bento_tag: str) -> str:
    """The name of a Bento's objects: its name, without the version (objects outlive versions)."""
    return dns_label(bento_tag.split(":")[0])[:50]  # room for the -green / -preview suffixes


def image_ref(registry: str, bento_tag: str) -> str:
    """The serving image of a Bento: ``<registry>/<bento name>:<version>`` (the tag alone without a registry)."""
    return f"{registry.rstrip('/')}/{bento_tag}" if registry else bento_tag


def other_slot(slot: str) -> str:
    if slot not in SLOTS:
        raise ValueError(f"unknown serving slot {slot!r}; expected one of {SLOTS}")
    return SLOTS[1 - SLOTS.index(slot)]


def serving_deployment(
    name: str,
    bento_tag: str,
    model_tag: str,
    slot: str,
    *,
    registry: str = "",
    namespace: str = "default",
    replicas: int = 2,
    cpu: str = "1",
    memory: str = "2Gi",
    volume_claim: str = "ml-assets-data",
    home: str = "/data/ml-assets",
) -> dict[str, Any]:
    """The Deployment ``<name>-<slot>`` of ``bento_tag``'s image, serving ``model_tag``."""
    other_slot(slot)  # validates the slot
    image = image_ref(registry, bento_tag)
    labels = {NAME_LABEL: name, SLOT_LABEL: slot, "app.kubernetes.io/part-of": "ml-assets"}
    annotations = {"ml-assets/bento-tag": bento_tag, "ml-assets/model-tag": model_tag}
    probe = {"port": "http"}
    container = {
        "name": "bento",
        "image": image,
        "args": ["serve"],
        "ports": [{"name": "http", "containerPort": CONTAINER_PORT, "protocol": "TCP"}],
        "env": [
            {"name": "ML_ASSETS_MODEL_TAG", "value": model_tag},
            {"name": "ML_ASSETS_HOME", "value": home},
            {"name": "BENTOML_DO_NOT_TRACK", "value": "true"},
            {"name": "TMPDIR", "value": "/tmp"},
        ],
        "readinessProbe": {
            "httpGet": {"path": "/readyz", **probe},
            "initialDelaySeconds": 5,
            "periodSeconds": 5,
            "failureThreshold": 3,
        },
        "livenessProbe": {
            "httpGet": {"path": "/livez", **probe},
            "initialDelaySeconds": 30,
            "periodSeconds": 10,
            "failureThreshold": 3,
        },
        "resources": {"requests": {"cpu": cpu, "memory": memory}, "limits": {"memory": memory}},
        "securityContext": RESTRICTED_CONTAINER,
        "volumeMounts": [
            {"name": "tmp", "mountPath": "/tmp"},
            {"name": "shared", "mountPath": f"{home}/prediction_log", "subPath": "prediction_log"},
        ],
    }
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": f"{name}-{slot}", "namespace": namespace, "labels": labels, "annotations": annotations},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {NAME_LABEL: name, SLOT_LABEL: slot}},
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1}},
            "template": {
                "metadata": {"labels": labels, "annotations": annotations},
                "spec": {
                    "securityContext": POD_SECURITY,
                    "automountServiceAccountToken": False,
                    "containers": [container],
                    "volumes": [
                        {"name": "tmp", "emptyDir": {"sizeLimit": "1Gi"}},
                        {"name": "shared", "persistentVolumeClaim": {"claimName": volume_claim}},
                    ],
                },
            },
        },
    }


def serving_service(name: str, slot: str, *, preview: bool = False, namespace: str = "default") -> dict[str, Any]:
    """The stable Service ``name`` (or ``name-preview``) selecting the pods of ``slot``."""
    other_slot(slot)
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {
            "name": f"{name}-preview" if preview else name,
            "namespace": namespace,
            "labels": {NAME_LABEL: name, "app.kubernetes.io/part-of": "ml-assets"},
        },
        "spec": {
            "selector": {NAME_LABEL: name, SLOT_LABEL: slot},
            "ports": [{"name": "http", "port": 80, "targetPort": "http", "protocol": "TCP"}],
            "type": "ClusterIP",
        },
    }


def workload_rbac(namespace: str, service_account: str) -> list[dict[str, Any]]:
    """The Role the run and step pods' service account needs beyond the Dagster chart's own: training pods, their
    worker Job and rendezvous Service (PipesK8sClient creates, watches, reads and deletes the rank-0 pod), and the
    serving Deployments and Services the deployer applies and switches."""
    verbs_crud = ["create", "get", "list", "watch", "update", "patch", "delete"]
    role = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "Role",
        "metadata": {"name": "ml-assets-workloads", "namespace": namespace},
        "rules": [
            {"apiGroups": [""], "resources": ["pods", "services"], "verbs": verbs_crud},
            {"apiGroups": [""], "resources": ["pods/log"], "verbs": ["get", "list", "watch"]},
            {"apiGroups": ["batch"], "resources": ["jobs"], "verbs": verbs_crud},
            {"apiGroups": ["apps"], "resources": ["deployments"], "verbs": verbs_crud},
            {"apiGroups": ["apps"], "resources": ["deployments/status"], "verbs": ["get"]},
            {"apiGroups": ["apps"], "resources": ["deployments/scale"], "verbs": ["get", "update", "patch"]},
        ],
    }
    binding = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "RoleBinding",
        "metadata": {"name": "ml-assets-workloads", "namespace": namespace},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "ml-assets-workloads"},
        "subjects": [{"kind": "ServiceAccount", "name": service_account, "namespace": namespace}],
    }
    return [role, binding]


def service_url(name: str, namespace: str = "default", preview: bool = False) -> str:
    return f"http://{name}{'-preview' if preview else ''}.{namespace}.svc.cluster.local"


def to_yaml(manifests: list[dict[str, Any]]) -> str:
    return yaml.safe_dump_all(manifests, sort_keys=False)
