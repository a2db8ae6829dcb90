"""The image prod serving deploys, built in the cluster from the Bento: ``bentoml export`` then a kaniko Job.

Prod serves ``<registry>/<bento name>:<version>`` (``resources.k8s_manifests.image_ref``). Nothing outside the
cluster builds it: the step that deploys exports the Bento, with its model, as a gzipped tar onto the shared volume
(``<home>/image-contexts/``, BentoML's public ``bentoml export``, the same context ``bentoml containerize`` builds
from), and a Kubernetes Job runs the kaniko executor on it with the Dockerfile BentoML generated
(``env/docker/Dockerfile``), pushing to the registry. Kaniko needs no Docker daemon and no privilege, but it
unpacks the image's file system as root: its pod runs as root with the RuntimeDefault seccomp profile and no
privilege escalation, which the namespace's Pod Security level ``baseline`` admits (``restricted`` does not).

Whether an image exists is asked of the registry itself (the Distribution HTTP API v2: a manifest HEAD), so the
deployer refuses to roll out an image that was never pushed, naming it, instead of waiting for pods that can never
pull it.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from dagster import ConfigurableResource
from pydantic import Field

from resources.k8s_cluster import api_client, cluster_configured
from resources.k8s_manifests import dns_label, image_ref, k8s_name

KANIKO_IMAGE = "gcr.io/kaniko-project/executor:v1.23.2-slim"
CONTEXTS = "image-contexts"  # folder of the shared volume holding the exported Bentos
MANIFEST_TYPES = ", ".join(
    (
        "application/vnd.oci.image.index.v1+json",
        "application/vnd.oci.image.manifest.v1+json",
        "application/vnd.docker.distribution.manifest.list.v2+json",
        "application/vnd.docker.distribution.manifest.v2+json",
    )
)


class ImageError(RuntimeError):
    """An image that could not be built, pushed or found, naming it."""


@dataclass(frozen=True)
class ImageName:
    """``host[:port]/repository:tag`` split the way the registry API addresses it."""

    host: str
    repository: str
    tag: str

    @classmethod
    def parse(cls, image: str) -> ImageName:
        host, sep, rest = image.partition("/")
        if not sep or ("." not in host and ":" not in host and host != "localhost"):
            raise ImageError(f"image {image!r} names no registry host (expected host[:port]/repository:tag)")
        repository, sep, tag = rest.rpartition(":")
        if not sep or not repository or "/" in tag:
            raise ImageError(f"image {image!r} has no tag (expected host[:port]/repository:tag)")
        return cls(host=host, repository=repository, tag=tag)


class RegistryClient(ConfigurableResource):
    """Asks an OCI / Docker registry whether an image exists (Distribution API v2, anonymous or basic auth)."""

    scheme: str = Field("https", description="https, or http for a registry without TLS (a local one)")
    username: str = Field("", description="basic-auth user, if the registry needs one to read")
    password: str = Field("", description="basic-auth password")
    timeout_s: float = 10.0

    def exists(self, image: str) -> bool:
        """True when the registry holds a manifest for ``image``; an unreachable or refusing registry is an error."""
        name = ImageName.parse(image)
        url = f"{self.scheme}://{name.host}/v2/{name.repository}/manifests/{name.tag}"
        auth = (self.username, self.password) if self.username else None
        try:
            answer = httpx.head(url, headers={"Accept": MANIFEST_TYPES}, auth=auth, timeout=self.timeout_s)
        except httpx.HTTPError as e:
            raise ImageError(f"registry {name.host} unreachable asking for {image}: {e!r}") from e
        if answer.status_code == 200:
            return True
        if answer.status_code == 404:
            return False
        raise ImageError(f"registry {name.host} answered {answer.status_code} asking for {image} ({url})")


class KanikoImageBuilder(ConfigurableResource):
    """Builds and pushes a Bento's serving image in the cluster (a kaniko Job), when the registry lacks it."""

    registry: str = Field(description="where images are pushed (image = registry/bento name:version)")
    namespace: str = "default"
    volume_claim: str = Field("ml-assets-data", description="the shared volume the Bento is exported onto")
    home: str = Field("/data/ml-assets", description="the shared volume's mount path (ML_ASSETS_HOME)")
    bentoml_home: str = Field(description="the BentoML store the Bento is exported from")
    executor_image: str = KANIKO_IMAGE
    push_secret: str = Field(
        "", description="a kubernetes.io/dockerconfigjson Secret with push credentials (none: anonymous push)"
    )
    registry_client: RegistryClient = Field(default_factory=RegistryClient)
    cpu: str = "1"
    memory: str = "4Gi"
    timeout_s: float = 1800.0
    kubeconfig_file: str | None = None
    kube_context: str | None = None

    def image(self, bento_tag: str) -> str:
        return image_ref(self.registry, bento_tag)

    def context_path(self, bento_tag: str) -> str:
        """Where the exported Bento lies on the shared volume (the same path in every pod)."""
        return f"{self.home}/{CONTEXTS}/{bento_tag.replace(':', '-')}.tar.gz"

    def job(self, bento_tag: str) -> dict[str, Any]:
        """The kaniko Job building ``bento_tag``'s image from its exported context and pushing it."""
        name = dns_label(f"build-{k8s_name(bento_tag)}-{bento_tag.partition(':')[2]}")
        mounts = [{"name": "shared", "mountPath": f"{self.home}/{CONTEXTS}", "subPath": CONTEXTS, "readOnly": True}]
        volumes: list[dict[str, Any]] = [{"name": "shared", "persistentVolumeClaim": {"claimName": self.volume_claim}}]
        if self.push_secret:
            mounts.append({"name": "push-credentials", "mountPath": "/kaniko/.docker", "readOnly": True})
            volumes.append(
                {
                    "name": "push-credentials",
                    "secret": {
                        "secretName": self.push_secret,
                        "items": [{"key": ".dockerconfigjson", "path": "config.json"}],
                    },
                }
            )
        container = {
            "name": "kaniko",
            "image": self.executor_image,
            "args": [
                f"--context=tar://{self.context_path(bento_tag)}",
                "--dockerfile=env/docker/Dockerfile",
                f"--destination={self.image(bento_tag)}",
                "--snapshot-mode=redo",
                "--single-snapshot",
            ]
            + (["--insecure"] if self.registry_client.scheme == "http" else []),
            "resources": {"requests": {"cpu": self.cpu, "memory": self.memory}, "limits": {"memory": self.memory}},
            "securityContext": {"allowPrivilegeEscalation": False, "seccompProfile": {"type": "RuntimeDefault"}},
            "volumeMounts": mounts,
        }
        labels = {"app.kubernetes.io/part-of": "ml-assets", "app.kubernetes.io/component": "image-build"}
        return {
            "apiVersion": "batch/v1",
            "kind": "Job",
            "metadata": {
                "name": name,
                "namespace": self.namespace,
                "labels": labels,
                "annotations": {"ml-assets/bento-tag": bento_tag, "ml-assets/image": self.image(bento_tag)},
            },
            "spec": {
                "backoffLimit": 0,
                "activeDeadlineSeconds": int(self.timeout_s),
                "ttlSecondsAfterFinished": 86_400,
                "template": {
                    "metadata": {"labels": labels},
                    "spec": {
                        "restartPolicy": "Never",
                        "automountServiceAccountToken": False,
                        "containers": [container],
                        "volumes": volumes,
                    },
                },
            },
        }

    def export(self, bento_tag: str, local_home: str | None = None) -> Path:
        """``bentoml export`` of the Bento, with its model, to its context path (``local_home``: where the shared
        volume is mounted in this process, default ``home``)."""
        target = Path(self.context_path(bento_tag).replace(self.home, local_home or self.home, 1))
        target.parent.mkdir(parents=True, exist_ok=True)
        env = {**os.environ, "BENTOML_HOME": self.bentoml_home, "BENTOML_DO_NOT_TRACK": "true"}
        done = subprocess.run(
            [sys.executable, "-m", "bentoml", "export", bento_tag, str(target)], env=env, capture_output=True, text=True
        )
        if done.returncode != 0 or not target.is_file():
            raise ImageError(f"bentoml export of {bento_tag} to {target} failed: {done.stderr.strip()[-500:]}")
        return target

    def ensure(self, bento_tag: str, say: Any = None) -> str:
        """The image of ``bento_tag``, built and pushed first when the registry lacks it; raises ImageError naming
        the image when it cannot be had."""
        say = say or (lambda *_: None)
        image = self.image(bento_tag)
        if self.registry_client.exists(image):
            say(f"image {image} is in the registry")
            return image
        if not cluster_configured(self.kubeconfig_file):
            raise ImageError(f"image {image} is not in the registry and no cluster is configured to build it")
        self.export(bento_tag)
        job = self.job(bento_tag)
        say(f"building {image} in Job {job['metadata']['name']} from {self.context_path(bento_tag)}")
        self._run(job)
        if not self.registry_client.exists(image):
            raise ImageError(f"Job {job['metadata']['name']} finished but the registry has no {image}")
        return image

    def _run(self, job: dict[str, Any]) -> None:
        import kubernetes

        batch = kubernetes.client.BatchV1Api(api_client(self.kubeconfig_file, self.kube_context))
        name = job["metadata"]["name"]
        try:
            batch.create_namespaced_job(self.namespace, job)
        except kubernetes.client.ApiException as e:
            if e.status != 409:  # already there: a retry of the same Bento waits for the same Job
                raise
        started = time.monotonic()
        while time.monotonic() - started < self.timeout_s:
            status = batch.read_namespaced_job_status(name, self.namespace).status
            if status.succeeded:
                return
            if status.failed:
                raise ImageError(f"image build Job {name} failed; see `kubectl -n {self.namespace} logs job/{name}`")
            time.sleep(5.0)
        raise ImageError(f"image build Job {name} did not finish within {self.timeout_s:.0f} s")
