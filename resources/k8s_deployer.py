"""KubernetesManifestDeployer: serving in a cluster, as Deployment and Service manifests for the Bento's image."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pydantic import Field

from resources.bento_deployer import BentoDeployer
from resources.k8s_manifests import k8s_name, render_manifests, service_url, to_yaml


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


class KubernetesManifestDeployer(BentoDeployer):
    """Production: renders the Deployment and Service for the Bento's image into ``output_dir``.

    Applying them (``kubectl apply -f``, or a GitOps controller watching the folder) is the cluster's job; the
    rollout waits for ``/readyz`` on each new pod and never lowers capacity, so the old pods keep serving until
    the new ones are ready.
    """

    output_dir: str
    service_name: str = Field(description="the Bento's name (k8s objects are named after it, e.g. adult-service)")
    namespace: str = "default"
    registry: str = ""
    replicas: int = 2
    service_base_url: str = Field("", description="URL the checks call; default the in-cluster Service DNS")

    @property
    def url(self) -> str:
        return self.service_base_url or service_url(self.service_name, self.namespace)

    def deploy(
        self,
        bento_tag: str,
        model_tag: str,
        records: Sequence[dict[str, Any]],
        expected: Sequence[float],
        log: Any = None,
    ) -> dict[str, Any]:
        manifests = render_manifests(
            bento_tag, model_tag, registry=self.registry, namespace=self.namespace, replicas=self.replicas
        )
        out = Path(self.output_dir) / f"{k8s_name(bento_tag)}.yaml"
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(to_yaml(manifests))
        if log is not None:
            log.info(f"rendered {out}; apply with: kubectl apply -f {out}")
        return {
            "url": self.url,
            "manifests": str(out),
            "manifests_yaml": to_yaml(manifests),
            "current": {"bento_tag": bento_tag, "model_tag": model_tag, "live_since": now()},
        }
