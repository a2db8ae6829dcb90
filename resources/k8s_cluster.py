"""Reaching a Kubernetes cluster: whether one is configured here, and an API client for it.

A cluster counts as configured when this process runs in a pod (the service-account environment Kubernetes sets)
or a kubeconfig file exists (``$KUBECONFIG`` or ``~/.kube/config``). Deployers apply objects only then, and render
them otherwise; the training launcher needs one to run at all.
"""

from __future__ import annotations

import os
from pathlib import Path

import kubernetes


def kubeconfig_path(kubeconfig_file: str | None = None) -> Path:
    return Path(kubeconfig_file or os.environ.get("KUBECONFIG") or Path.home() / ".kube" / "config").expanduser()


def in_cluster() -> bool:
    return bool(os.environ.get("KUBERNETES_SERVICE_HOST"))


def cluster_configured(kubeconfig_file: str | None = None) -> bool:
    return in_cluster() or kubeconfig_path(kubeconfig_file).is_file()


def api_client(kubeconfig_file: str | None = None, context: str | None = None) -> kubernetes.client.ApiClient:
    """An API client for the configured cluster (in-cluster service account first, else the kubeconfig)."""
    if not cluster_configured(kubeconfig_file):
        raise RuntimeError(
            f"no Kubernetes cluster configured: not running in a pod and no kubeconfig at {kubeconfig_path(kubeconfig_file)}"
        )
    if in_cluster() and not kubeconfig_file:
        configuration = kubernetes.client.Configuration()
        kubernetes.config.load_incluster_config(client_configuration=configuration)
        return kubernetes.client.ApiClient(configuration)
    return kubernetes.config.new_client_from_config(config_file=str(kubeconfig_path(kubeconfig_file)), context=context)
