"""``ml-assets k8s render``: every object prod creates, valid against the official schemas.

No cluster runs here: the objects are only rendered. Kubernetes objects are checked against the schemas of a
pinned Kubernetes version in strict mode, the Helm values against the Dagster chart's values schema (both offline,
see tests/k8s_schemas.py).
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from ml_assets.cli import main
from tests.k8s_schemas import assert_valid_object, helm_values_errors


@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("rendered")
    assert main(["k8s", "render", "--out", str(out)]) == 0
    return out


def objects(path: Path) -> list[dict]:
    return list(yaml.safe_load_all(path.read_text()))


def test_every_rendered_object_is_valid(rendered: Path) -> None:
    found = {}
    for name in ("training.yaml", "serving.yaml", "image-build.yaml", "rbac.yaml"):
        for obj in objects(rendered / name):
            assert_valid_object(obj)
            found.setdefault(name, []).append(f"{obj['kind']}/{obj['metadata']['name']}")
    assert found == {
        "training.yaml": ["Service/train-example", "Pod/train-example-0", "Job/train-example-workers"],
        "serving.yaml": [
            "Deployment/adult-service-blue",
            "Deployment/adult-service-green",
            "Service/adult-service-preview",
            "Service/adult-service",
        ],
        "image-build.yaml": ["Job/build-adult-service-latest"],
        "rbac.yaml": ["Role/ml-assets-workloads", "RoleBinding/ml-assets-workloads"],
    }
    assert {o["metadata"]["namespace"] for n in found for o in objects(rendered / n)} == {"ml-assets"}


def test_the_training_group_is_two_nodes_of_eight_gpus(rendered: Path) -> None:
    service, pod, job = objects(rendered / "training.yaml")
    gpus = [pod["spec"]["containers"][0]["resources"]["limits"]["nvidia.com/gpu"]]
    gpus += [job["spec"]["template"]["spec"]["containers"][0]["resources"]["limits"]["nvidia.com/gpu"]] * job["spec"][
        "completions"
    ]
    assert gpus == ["8", "8"]
    assert "--nnodes" in pod["spec"]["containers"][0]["command"]
    assert pod["spec"]["hostname"] == "train-example-0" and service["spec"]["clusterIP"] == "None"


def test_the_helm_values_fit_the_dagster_chart(rendered: Path) -> None:
    values = yaml.safe_load((rendered / "helm" / "values.yaml").read_text())
    assert helm_values_errors(values) == []
    # the check can fail: a misspelt key where the chart forbids unknown keys, and a wrong type
    values["runLauncher"]["config"]["k8sRunLauncher"]["loadInClusterConfig"] = True
    values["dagster-user-deployments"]["deployments"][0]["port"] = "3030"
    errors = helm_values_errors(values)
    assert any("'loadInClusterConfig' was unexpected" in e for e in errors), errors
    assert any(e.startswith("dagster-user-deployments/deployments/0/port:") for e in errors), errors
    assert (rendered / "dagster.yaml").read_text().startswith("# Production Dagster instance")


def test_bad_sizes_are_refused(tmp_path: Path) -> None:
    with pytest.raises(SystemExit, match="--nodes and --gpus-per-node must be >= 1, got 0 and 8"):
        main(["k8s", "render", "--out", str(tmp_path), "--nodes", "0"])


def test_prod_builds_the_image_it_serves_from_the_exported_bento(rendered: Path) -> None:
    """The build Job pushes exactly the image the serving Deployments pull, from the Bento exported onto the
    shared volume, with the Dockerfile BentoML generated."""
    [job] = objects(rendered / "image-build.yaml")
    serving_images = {d["spec"]["template"]["spec"]["containers"][0]["image"] for d in objects(rendered / "serving.yaml")
                      if d["kind"] == "Deployment"}  # fmt: skip
    args = job["spec"]["template"]["spec"]["containers"][0]["args"]
    assert {a.split("=", 1)[1] for a in args if a.startswith("--destination=")} == serving_images
    assert "--context=tar:///data/ml-assets/image-contexts/adult-service-latest.tar.gz" in args
    assert "--dockerfile=env/docker/Dockerfile" in args
    [volume] = job["spec"]["template"]["spec"]["volumes"]
    assert volume["persistentVolumeClaim"]["claimName"] == "ml-assets-data" and job["spec"]["backoffLimit"] == 0


def test_each_environment_renders_into_its_own_namespace(tmp_path: Path) -> None:
    assert main(["k8s", "render", "--env", "qa", "--out", str(tmp_path)]) == 0
    namespaces = {o["metadata"]["namespace"] for n in ("serving.yaml", "rbac.yaml") for o in objects(tmp_path / n)}
    assert namespaces == {"ml-assets-qa"}
