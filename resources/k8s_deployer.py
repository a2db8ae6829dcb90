"""KubernetesBentoDeployer: blue/green serving in a cluster, validated before it takes traffic.

A new Bento goes into the slot the stable Service does not select (``resources.k8s_manifests``): its Deployment
is applied, the preview Service points at it, the deployer waits for the rollout (every replica ready on
``/readyz``), then sends the fixed sample through the preview Service and requires the offline predictions back
(same model tag, |online - offline| within the deployer's ``SKEW_TOLERANCE``). Only then does the stable Service's selector switch to
the new slot; the previous version keeps running in the other slot for rollback (deploying its Bento again
switches back once it validates). A Bento that fails leaves the stable Service untouched and its own Deployment
scaled to zero for inspection. Objects are applied through the kubernetes client when a cluster is configured
(in-cluster service account or a kubeconfig); otherwise they are only rendered into ``output_dir``, nothing is
validated, and the returned state says so. Either way the rendered objects are written to ``output_dir``.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from pydantic import Field

from resources.bento_deployer import BentoDeployer, DeploymentError, served_skew, skew_message
from resources.deployment_record import DeploymentRecord, ServedBento, Validation
from resources.image_builder import ImageError, KanikoImageBuilder, RegistryClient
from resources.k8s_cluster import api_client, cluster_configured
from resources.k8s_manifests import (
    SLOT_LABEL,
    SLOTS,
    dns_label,
    image_ref,
    other_slot,
    service_url,
    serving_deployment,
    serving_service,
    to_yaml,
)


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def rollout_complete(deployment: dict[str, Any]) -> bool:
    """Whether a Deployment (API dict) has rolled out its current spec: every replica updated and ready."""
    spec, status = deployment.get("spec") or {}, deployment.get("status") or {}
    want = spec.get("replicas", 1)
    generation = (deployment.get("metadata") or {}).get("generation", 0)
    return (
        status.get("observedGeneration", 0) >= generation
        and status.get("updatedReplicas", 0) == want
        and status.get("readyReplicas", 0) == want
        and status.get("availableReplicas", 0) == want
        and status.get("replicas", 0) == want  # no old pods left
    )


class KubernetesBentoDeployer(BentoDeployer):
    """Production serving: blue/green Deployments of the Bento's image behind a stable Service."""

    output_dir: str = Field(description="rendered objects and the deployment state go here")
    service_name: str = Field(description="the Bento's name; objects are named after it (e.g. adult-service)")
    namespace: str = "default"
    registry: str = Field("", description="where `bentoml containerize` images are pushed (image = registry/tag)")
    replicas: int = 2
    cpu: str = "1"
    memory: str = "2Gi"
    volume_claim: str = Field("ml-assets-data", description="shared volume holding the prediction log")
    home: str = Field("/data/ml-assets", description="ML_ASSETS_HOME in the pods (the volume's mount path)")
    rollout_timeout_s: float = 600.0
    service_base_url: str = Field("", description="URL the checks call; default the stable Service's DNS name")
    preview_base_url: str = Field("", description="URL validation calls; default the preview Service's DNS name")
    kubeconfig_file: str | None = None
    kube_context: str | None = None
    registry_client: RegistryClient = Field(
        default_factory=RegistryClient, description="asks the registry whether the image exists before a rollout"
    )
    image_builder: KanikoImageBuilder | None = Field(
        None, description="builds the Bento's image in the cluster when the registry lacks it (none: only check)"
    )

    @property
    def name(self) -> str:
        return dns_label(self.service_name)

    @property
    def url(self) -> str:
        return self.service_base_url or service_url(self.name, self.namespace)

    @property
    def folder(self) -> Path:
        return Path(self.output_dir) / self.name

    # ---- rendering --------------------------------------------------------------------------------------------
    def objects(self, bento_tag: str, model_tag: str, slot: str, live_slot: str) -> list[dict[str, Any]]:
        """The new slot's Deployment, the preview Service on it and the stable Service on ``live_slot``."""
        deployment = serving_deployment(
            self.name,
            bento_tag,
            model_tag,
            slot,
            registry=self.registry,
            namespace=self.namespace,
            replicas=self.replicas,
            cpu=self.cpu,
            memory=self.memory,
            volume_claim=self.volume_claim,
            home=self.home,
        )
        return [
            deployment,
            serving_service(self.name, slot, preview=True, namespace=self.namespace),
            serving_service(self.name, live_slot, namespace=self.namespace),
        ]

    def write(self, objects: list[dict[str, Any]], state: dict[str, Any]) -> Path:
        """Write one file per object (the slot's Deployment replaces its previous version) and the state."""
        self.folder.mkdir(parents=True, exist_ok=True)
        for obj in objects:
            (self.folder / f"{obj['kind'].lower()}-{obj['metadata']['name']}.yaml").write_text(to_yaml([obj]))
        (self.folder / "state.json").write_text(json.dumps(state, indent=1))
        return self.folder

    def recorded_state(self) -> dict[str, Any]:
        try:
            return json.loads((self.folder / "state.json").read_text())
        except FileNotFoundError:
            return {"live_slot": None, "slots": {}}

    # ---- deploying --------------------------------------------------------------------------------------------
    def deploy(
        self,
        bento_tag: str,
        model_tag: str,
        records: Sequence[dict[str, Any]],
        expected: Sequence[float],
        log: Any = None,
    ) -> DeploymentRecord:
        """Serve ``bento_tag`` behind the stable Service if it validates (render only without a cluster)."""
        say = log.info if log is not None else lambda *_: None
        if len(records) != len(expected) or not records:
            raise DeploymentError(f"validation needs a non-empty sample, got {len(records)} records")
        if not cluster_configured(self.kubeconfig_file):
            return self._render_only(bento_tag, model_tag, say)
        self.require_image(bento_tag, say)
        return self._apply(bento_tag, model_tag, records, expected, say)

    def require_image(self, bento_tag: str, say: Any = None) -> str:
        """The Bento's image, built in the cluster first when the builder is configured and the registry lacks it;
        a DeploymentError naming the image when it does not exist (nothing is applied: the champion serves on)."""
        image = image_ref(self.registry, bento_tag)
        try:
            if self.image_builder is not None:
                return self.image_builder.ensure(bento_tag, say)
            if self.registry_client.exists(image):
                return image
        except ImageError as e:
            raise DeploymentError(f"not deploying {bento_tag}: {e}") from e
        raise DeploymentError(
            f"not deploying {bento_tag}: image {image} does not exist in the registry (build it first)"
        )

    def _render_only(self, bento_tag: str, model_tag: str, say: Any) -> DeploymentRecord:
        state = self.recorded_state()
        previous = state["slots"].get(state["live_slot"]) if state["live_slot"] else None
        if previous and previous["bento_tag"] == bento_tag:
            say(f"{bento_tag} is already the live slot {state['live_slot']}; nothing to render")
            return self._result([], {**previous, "validated": None}, None)
        slot = other_slot(state["live_slot"]) if state["live_slot"] else SLOTS[0]
        objects = self.objects(bento_tag, model_tag, slot, live_slot=slot)
        current = {"bento_tag": bento_tag, "model_tag": model_tag, "slot": slot, "rendered_at": now()}
        state = {"live_slot": slot, "slots": {**state["slots"], slot: current}, "applied": False}
        if self.image_builder is not None:  # the image is built in the cluster before the Deployment rolls out
            objects = [self.image_builder.job(bento_tag), *objects]
        folder = self.write(objects, state)
        say(
            f"no Kubernetes cluster configured: rendered {bento_tag} into slot {slot} in {folder} (nothing "
            "applied or validated; a GitOps sync must validate through the preview Service before the switch)"
        )
        return self._result(objects, {**current, "validated": None}, previous)

    def _apply(
        self, bento_tag: str, model_tag: str, records: Sequence[dict[str, Any]], expected: Sequence[float], say: Any
    ) -> DeploymentRecord:
        import kubernetes

        client = api_client(self.kubeconfig_file, self.kube_context)
        core, apps = kubernetes.client.CoreV1Api(client), kubernetes.client.AppsV1Api(client)
        live = self._live_slot(core)
        slot = other_slot(live) if live else SLOTS[0]
        previous = self._slot_info(apps, live) if live else None
        if previous and previous["bento_tag"] == bento_tag:
            say(f"{bento_tag} already serves {self.url} from slot {live}; nothing to do")
            return self._result([], {**previous, "validated": None}, None)
        deployment, preview, stable = self.objects(bento_tag, model_tag, slot, live_slot=slot)
        _upsert(
            apps.read_namespaced_deployment,
            apps.create_namespaced_deployment,
            apps.replace_namespaced_deployment,
            deployment,
        )
        _upsert(core.read_namespaced_service, core.create_namespaced_service, core.patch_namespaced_service, preview)
        say(f"applied {deployment['metadata']['name']} ({bento_tag}); waiting for its rollout")
        try:
            ready_s = self._wait_for_rollout(apps, deployment["metadata"]["name"])
            validated = self._validate(bento_tag, model_tag, records, expected)
        except DeploymentError:
            apps.patch_namespaced_deployment_scale(
                deployment["metadata"]["name"], self.namespace, {"spec": {"replicas": 0}}
            )
            raise
        _upsert(core.read_namespaced_service, core.create_namespaced_service, core.patch_namespaced_service, stable)
        say(
            f"switched {stable['metadata']['name']} to slot {slot} ({bento_tag}); {live or 'no'} slot kept for rollback"
        )
        current = {"bento_tag": bento_tag, "model_tag": model_tag, "slot": slot, "live_since": now()}
        state = {"live_slot": slot, "slots": {**self.recorded_state()["slots"], slot: current}, "applied": True}
        self.write([deployment, preview, stable], state)
        return self._result(
            [deployment, preview, stable],
            {**current, "validated": validated.model_copy(update={"ready_s": ready_s})},
            previous,
        )

    def _result(
        self, objects: list[dict[str, Any]], current: dict[str, Any], previous: dict | None
    ) -> DeploymentRecord:
        return DeploymentRecord(
            url=self.url,
            manifests=str(self.folder),
            manifests_yaml=to_yaml(objects),
            current=ServedBento(**current),
            previous=ServedBento(**previous) if previous else None,
        )

    def _live_slot(self, core: Any) -> str | None:
        import kubernetes

        try:
            service = core.read_namespaced_service(self.name, self.namespace)
        except kubernetes.client.ApiException as e:
            if e.status == 404:
                return None
            raise
        slot = (service.spec.selector or {}).get(SLOT_LABEL)
        return slot if slot in SLOTS else None

    def _slot_info(self, apps: Any, slot: str) -> dict[str, Any] | None:
        import kubernetes

        try:
            deployment = apps.read_namespaced_deployment(f"{self.name}-{slot}", self.namespace)
        except kubernetes.client.ApiException as e:
            if e.status == 404:
                return None
            raise
        annotations = deployment.metadata.annotations or {}
        return {
            "slot": slot,
            "bento_tag": annotations.get("ml-assets/bento-tag", ""),
            "model_tag": annotations.get("ml-assets/model-tag", ""),
        }

    def _wait_for_rollout(self, apps: Any, name: str) -> float:
        started = time.monotonic()
        while True:
            status = apps.api_client.sanitize_for_serialization(
                apps.read_namespaced_deployment_status(name, self.namespace)
            )
            if rollout_complete(status):
                return round(time.monotonic() - started, 1)
            if time.monotonic() - started > self.rollout_timeout_s:
                raise DeploymentError(
                    f"{name} did not become ready within {self.rollout_timeout_s:.0f} s (status {status.get('status')}); "
                    "the stable Service still selects the previous slot"
                )
            time.sleep(2.0)

    def _validate(
        self, bento_tag: str, model_tag: str, records: Sequence[dict[str, Any]], expected: Sequence[float]
    ) -> Validation:
        """The new slot, through the preview Service, answers and reproduces the offline predictions."""
        base = self.preview_base_url or service_url(self.name, self.namespace, preview=True)
        try:
            ready = httpx.get(base + "/readyz", timeout=10)
        except httpx.HTTPError as e:
            raise DeploymentError(f"{bento_tag} unreachable through {base}: {e!r}") from e
        if ready.status_code != 200:
            raise DeploymentError(f"{bento_tag} answered /readyz through {base} with {ready.status_code}")
        report = served_skew(base, records, expected)
        if not report.passed(model_tag):
            raise DeploymentError(f"{skew_message(bento_tag, model_tag, report)} (through {base})")
        return Validation(sample=len(records), preview_url=base, max_abs_diff=report.max_abs_diff)


def _upsert(read: Any, create: Any, update: Any, obj: dict[str, Any]) -> None:
    """Create ``obj`` or bring the existing object of that name to it."""
    import kubernetes

    name, namespace = obj["metadata"]["name"], obj["metadata"]["namespace"]
    try:
        read(name, namespace)
    except kubernetes.client.ApiException as e:
        if e.status != 404:
            raise
        create(namespace, obj)
        return
    update(name, namespace, obj)
