"""Blue/green serving objects and the Kubernetes deployer's decisions.

No cluster runs here: nothing is applied and no pod starts. The deployer runs in its render-only mode (no
kubeconfig, not in a pod), every object it writes is checked against the official Kubernetes schemas in strict
mode, and the decisions it takes against a cluster (rollout complete, predictions match) are tested on the API
objects and numbers they take.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from resources.bento_deployer import DeploymentError, SkewReport, skew_message
from resources.k8s_deployer import KubernetesBentoDeployer, rollout_complete
from resources.k8s_manifests import SLOT_LABEL, dns_label, workload_rbac
from tests.k8s_schemas import assert_valid_object

RECORDS = [{"age": 39}, {"age": 50}]
EXPECTED = [0.25, 0.75]


@pytest.fixture
def no_cluster(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "no-kubeconfig"))


def deployer(tmp_path: Path) -> KubernetesBentoDeployer:
    return KubernetesBentoDeployer(
        output_dir=str(tmp_path / "k8s"),
        service_name="adult-service",
        namespace="ml",
        registry="registry.local/ml",
    )


def written(folder: Path) -> dict[str, dict]:
    objects = {}
    for path in sorted(folder.glob("*.yaml")):
        (obj,) = yaml.safe_load_all(path.read_text())
        assert_valid_object(obj)
        objects[f"{obj['kind']}/{obj['metadata']['name']}"] = obj
    return objects


def test_the_deployment_is_restricted_ready_on_readyz_and_logs_to_the_volume(tmp_path: Path, no_cluster) -> None:
    d = deployer(tmp_path)
    deployment, preview, stable = d.objects("adult-service:v1", "adult-classifier:v1", "blue", live_slot="green")
    for obj in (deployment, preview, stable):
        assert_valid_object(obj)
    pod = deployment["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert container["image"] == "registry.local/ml/adult-service:v1"
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
    assert container["ports"][0]["name"] == "http"
    assert container["resources"]["requests"] == {"cpu": "1", "memory": "2Gi"}
    assert pod["securityContext"]["runAsNonRoot"] is True and pod["securityContext"]["runAsUser"] > 0
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert container["securityContext"] == {
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "capabilities": {"drop": ["ALL"]},
    }
    mounts = {m["mountPath"]: m for m in container["volumeMounts"]}
    env = {e["name"]: e["value"] for e in container["env"]}
    assert mounts[f"{env['ML_ASSETS_HOME']}/prediction_log"]["subPath"] == "prediction_log"
    assert {"emptyDir": {"sizeLimit": "1Gi"}}.items() <= next(v for v in pod["volumes"] if v["name"] == "tmp").items()
    assert mounts["/tmp"]["name"] == "tmp" and env["ML_ASSETS_MODEL_TAG"] == "adult-classifier:v1"
    assert deployment["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"] == 0
    # the Services: stable on the live slot, preview on the new one; both select only this Bento's pods
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert (
        preview["spec"]["selector"].items() <= labels.items() and preview["metadata"]["name"] == "adult-service-preview"
    )
    assert stable["spec"]["selector"] == {**preview["spec"]["selector"], SLOT_LABEL: "green"}
    assert deployment["spec"]["selector"]["matchLabels"] == preview["spec"]["selector"]


def test_redeploys_alternate_slots_and_keep_the_previous_one(tmp_path: Path, no_cluster) -> None:
    """Render-only mode (no cluster configured): each Bento lands in the other slot, the stable Service moves to
    it, and the previous Bento's Deployment stays rendered for rollback."""
    d = deployer(tmp_path)
    first = d.deploy("adult-service:v1", "adult-classifier:v1", RECORDS, EXPECTED)
    assert first.current.slot == "blue" and first.current.validated is None
    assert first.previous is None and first.url == "http://adult-service.ml.svc.cluster.local"
    second = d.deploy("adult-service:v2", "adult-classifier:v2", RECORDS, EXPECTED)
    assert second.current.slot == "green" and second.previous.bento_tag == "adult-service:v1"
    objects = written(d.folder)
    assert set(objects) == {
        "Deployment/adult-service-blue",
        "Deployment/adult-service-green",
        "Service/adult-service",
        "Service/adult-service-preview",
    }
    assert objects["Service/adult-service"]["spec"]["selector"][SLOT_LABEL] == "green"
    annotations = objects["Deployment/adult-service-blue"]["metadata"]["annotations"]
    assert annotations["ml-assets/bento-tag"] == "adult-service:v1"  # kept for rollback
    same = d.deploy("adult-service:v2", "adult-classifier:v2", RECORDS, EXPECTED)  # already live: no change
    assert same.current.slot == "green" and same.manifests_yaml == ""
    third = d.deploy("adult-service:v1", "adult-classifier:v1", RECORDS, EXPECTED)  # the rollback path
    assert third.current.slot == "blue" and third.previous.bento_tag == "adult-service:v2"
    assert "kind: Deployment" in third.manifests_yaml


def test_an_empty_validation_sample_is_refused(tmp_path: Path, no_cluster) -> None:
    with pytest.raises(DeploymentError, match="non-empty sample"):
        deployer(tmp_path).deploy("adult-service:v1", "adult-classifier:v1", [], [])


def test_the_skew_verdict_and_its_message() -> None:
    """The one skew comparison (the local and the Kubernetes deployer both judge with it)."""
    good = SkewReport(rows=2, max_abs_diff=1e-7, rows_over_tolerance=0, worst_row=0, served_model_tags=["m:1"])
    assert good.passed("m:1") and not good.passed("m:0")
    skewed = SkewReport(rows=2, max_abs_diff=0.05, rows_over_tolerance=1, worst_row=1, served_model_tags=["m:1"])
    assert not skewed.passed("m:1")
    assert "max |online - offline| = 0.05 > 1e-05 (1 of 3 predictions; worst at sample 1)" in skew_message(
        "adult-service:v2", "m:1", skewed
    )
    other = SkewReport(rows=2, max_abs_diff=0.0, rows_over_tolerance=0, worst_row=0, served_model_tags=["m:0"])
    assert skew_message("adult-service:v2", "m:1", other) == "adult-service:v2 serves model ['m:0'], expected m:1"


def test_a_rollout_is_complete_only_when_every_replica_runs_the_new_spec() -> None:
    done = {
        "metadata": {"generation": 3},
        "spec": {"replicas": 2},
        "status": {
            "observedGeneration": 3,
            "replicas": 2,
            "updatedReplicas": 2,
            "readyReplicas": 2,
            "availableReplicas": 2,
        },
    }
    assert rollout_complete(done)
    for status in (
        {"observedGeneration": 2},  # the controller has not seen the new spec yet
        {"updatedReplicas": 1},  # half rolled out
        {"readyReplicas": 1},  # a new pod not ready on /readyz
        {"replicas": 3},  # an old pod still running
    ):
        assert not rollout_complete({**done, "status": {**done["status"], **status}}), status


def test_the_workload_role_validates_and_binds_the_run_pods_account() -> None:
    role, binding = workload_rbac("ml", "dagster")
    for obj in (role, binding):
        assert_valid_object(obj)
    rules = {(r["apiGroups"][0], res) for r in role["rules"] for res in r["resources"]}
    assert {("", "pods"), ("", "pods/log"), ("batch", "jobs"), ("apps", "deployments"), ("", "services")} <= rules
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "dagster", "namespace": "ml"}]


@pytest.mark.parametrize(("name", "label"), [("Adult_Service", "adult-service"), ("--x--", "x"), ("", "ml-assets")])
def test_names_become_dns_labels(name: str, label: str) -> None:
    assert dns_label(name) == label
