"""Kubernetes manifests for a Bento's image: a Deployment (readiness on /readyz) and a Service.

The image is what ``bentoml containerize <bento_tag>`` builds (tagged like the Bento unless a registry is
given). The rollout never lowers capacity (``maxUnavailable: 0``) and a pod takes traffic only once
``/readyz`` says the model is loaded and warmed up: the same promise the local blue/green deployer keeps.
"""

from __future__ import annotations

import re
from typing import Any

import yaml

CONTAINER_PORT = 3000


def k8s_name(bento_tag: str) -> str:
    """A DNS-1123 name for the Bento's objects: its name, without the version (objects outlive versions)."""
    name = re.sub(r"[^a-z0-9-]+", "-", bento_tag.split(":")[0].lower()).strip("-")
    return name[:63] or "bento"


def render_manifests(
    bento_tag: str,
    model_tag: str,
    *,
    registry: str = "",
    namespace: str = "default",
    replicas: int = 2,
    cpu: str = "1",
    memory: str = "2Gi",
    prediction_log_claim: str | None = None,
) -> list[dict[str, Any]]:
    """The Deployment and Service for ``bento_tag`` serving ``model_tag`` (plain dicts, API field names)."""
    name = k8s_name(bento_tag)
    image = f"{registry.rstrip('/')}/{bento_tag}" if registry else bento_tag
    labels = {"app.kubernetes.io/name": name, "app.kubernetes.io/part-of": "ml-assets"}
    annotations = {"ml-assets/bento-tag": bento_tag, "ml-assets/model-tag": model_tag}
    volumes: list[dict[str, Any]] = []
    mounts: list[dict[str, Any]] = []
    if prediction_log_claim:
        volumes.append({"name": "ml-assets-home", "persistentVolumeClaim": {"claimName": prediction_log_claim}})
        mounts.append({"name": "ml-assets-home", "mountPath": "/var/lib/ml-assets"})
    probe = {"port": CONTAINER_PORT}
    container = {
        "name": "bento",
        "image": image,
        "args": ["serve"],
        "ports": [{"name": "http", "containerPort": CONTAINER_PORT, "protocol": "TCP"}],
        "env": [
            {"name": "ML_ASSETS_MODEL_TAG", "value": model_tag},
            {"name": "ML_ASSETS_HOME", "value": "/var/lib/ml-assets"},
            {"name": "BENTOML_DO_NOT_TRACK", "value": "true"},
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
        "volumeMounts": mounts,
    }
    deployment = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": namespace, "labels": labels, "annotations": annotations},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app.kubernetes.io/name": name}},
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1}},
            "template": {
                "metadata": {"labels": labels, "annotations": annotations},
                "spec": {"containers": [container], "volumes": volumes},
            },
        },
    }
    service = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name, "namespace": namespace, "labels": labels},
        "spec": {
            "selector": {"app.kubernetes.io/name": name},
            "ports": [{"name": "http", "port": 80, "targetPort": "http", "protocol": "TCP"}],
            "type": "ClusterIP",
        },
    }
    return [deployment, service]


def to_yaml(manifests: list[dict[str, Any]]) -> str:
    return yaml.safe_dump_all(manifests, sort_keys=False)


def service_url(bento_tag: str, namespace: str = "default") -> str:
    return f"http://{k8s_name(bento_tag)}.{namespace}.svc.cluster.local"
