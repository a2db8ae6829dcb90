"""Prod builds the image it deploys and never rolls out one that does not exist: against a real registry.

A real OCI registry runs here (CNCF Distribution, Debian's ``docker-registry``, on loopback, stopped by PID). An
image is pushed to it through the registry API as any client pushes one (blobs, then the manifest); the deployer
asks the registry before a rollout and refuses a missing image, naming it. The image build itself runs in a cluster
(a kaniko Job, validated against the Kubernetes schemas in test_k8s_render.py); here its input is checked: the
Bento exported by ``bentoml export`` with its model and the Dockerfile the Job builds.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import subprocess
import tarfile
from pathlib import Path

import httpx
import pytest

from ml_assets.dataset import DatasetSpec
from ml_assets.serving.build import build_bento
from resources.bento_deployer import DeploymentError
from resources.image_builder import ImageError, ImageName, KanikoImageBuilder, RegistryClient
from resources.k8s_deployer import KubernetesBentoDeployer
from resources.process_tree import free_port, stop_tree, wait_until
from tests.serving_support import adult_training_set, fit_logistic, save_model

pytestmark = pytest.mark.integration
LOCAL = RegistryClient(scheme="http")


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> str:
    """``127.0.0.1:<port>``: a real registry storing blobs under a temporary folder."""
    root = tmp_path_factory.mktemp("registry")
    port = free_port()
    config = root / "config.yml"
    config.write_text(
        f"version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: {root / 'data'}\n"
        f"http:\n  addr: 127.0.0.1:{port}\n"
    )
    proc = subprocess.Popen(
        ["docker-registry", "serve", str(config)], stdout=subprocess.DEVNULL, stderr=(root / "log").open("w")
    )
    host = f"127.0.0.1:{port}"
    try:
        assert wait_until(lambda: _answers(f"http://{host}/v2/") or proc.poll() is not None, 30), "registry down"
        assert proc.poll() is None, (root / "log").read_text()
        yield host
    finally:
        stop_tree(proc.pid)


def _answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def push(host: str, repository: str, tag: str) -> None:
    """Push a one-layer image the way a client does: each blob by a monolithic upload, then the manifest."""
    layer_tar = io.BytesIO()
    with tarfile.open(fileobj=layer_tar, mode="w") as tar:
        data = b"served\n"
        info = tarfile.TarInfo("hello.txt")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    layer = gzip.compress(layer_tar.getvalue())
    config = json.dumps(
        {
            "architecture": "amd64",
            "os": "linux",
            "rootfs": {"type": "layers", "diff_ids": [f"sha256:{hashlib.sha256(layer_tar.getvalue()).hexdigest()}"]},
        }
    ).encode()
    base = f"http://{host}/v2/{repository}"
    for blob in (layer, config):
        start = httpx.post(f"{base}/blobs/uploads/")
        assert start.status_code == 202, start.text
        location = httpx.URL(f"http://{host}").join(start.headers["Location"])  # it carries the upload's state
        digest = f"sha256:{hashlib.sha256(blob).hexdigest()}"
        done = httpx.put(location.copy_merge_params({"digest": digest}), content=blob)
        assert done.status_code == 201, done.text
    manifest = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
        "config": {
            "mediaType": "application/vnd.docker.container.image.v1+json",
            "size": len(config),
            "digest": f"sha256:{hashlib.sha256(config).hexdigest()}",
        },
        "layers": [
            {
                "mediaType": "application/vnd.docker.image.rootfs.diff.tar.gzip",
                "size": len(layer),
                "digest": f"sha256:{hashlib.sha256(layer).hexdigest()}",
            }
        ],
    }
    put = httpx.put(
        f"{base}/manifests/{tag}",
        content=json.dumps(manifest).encode(),
        headers={"Content-Type": manifest["mediaType"]},
    )
    assert put.status_code == 201, put.text


def deployer(tmp_path: Path, host: str, builder: KanikoImageBuilder | None = None) -> KubernetesBentoDeployer:
    return KubernetesBentoDeployer(
        output_dir=str(tmp_path / "k8s"),
        service_name="adult-service",
        registry=f"{host}/ml",
        registry_client=LOCAL,
        image_builder=builder,
    )


def test_the_registry_is_asked_whether_an_image_exists(registry: str) -> None:
    assert not LOCAL.exists(f"{registry}/ml/adult-service:v1")
    push(registry, "ml/adult-service", "v1")
    assert LOCAL.exists(f"{registry}/ml/adult-service:v1")
    assert not LOCAL.exists(f"{registry}/ml/adult-service:v2")  # another version of the same repository
    with pytest.raises(ImageError, match="unreachable"):
        RegistryClient(scheme="http", timeout_s=2).exists(f"127.0.0.1:{free_port()}/ml/x:v1")
    with pytest.raises(ImageError, match="names no registry host"):
        ImageName.parse("adult-service:v1")


def test_the_deployer_refuses_an_image_that_was_never_pushed_naming_it(
    registry: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "no-kubeconfig"))
    push(registry, "ml/adult-service", "ready")
    plain = deployer(tmp_path, registry)
    assert plain.require_image("adult-service:ready") == f"{registry}/ml/adult-service:ready"
    with pytest.raises(DeploymentError, match=rf"image {registry}/ml/adult-service:missing does not exist"):
        plain.require_image("adult-service:missing")
    builder = KanikoImageBuilder(registry=f"{registry}/ml", bentoml_home=str(tmp_path), registry_client=LOCAL)
    with pytest.raises(DeploymentError, match=r"adult-service:missing is not in the registry and no cluster"):
        deployer(tmp_path, registry, builder).require_image("adult-service:missing")
    assert deployer(tmp_path, registry, builder).require_image("adult-service:ready").endswith(":ready")


def test_the_build_context_is_the_exported_bento_with_its_model_and_dockerfile(
    tmp_path: Path, adult_spec: DatasetSpec, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BENTOML_DO_NOT_TRACK", "true")
    monkeypatch.setenv("ML_ASSETS_HOME", str(tmp_path))
    bentoml_home = tmp_path / "bentoml"
    model_tag = save_model(fit_logistic(adult_spec, adult_training_set(adult_spec, rows=1500)), bentoml_home)
    bento = build_bento(model_tag, bentoml_home)
    shared = tmp_path / "shared"
    builder = KanikoImageBuilder(registry="registry.local/ml", bentoml_home=str(bentoml_home), home=str(shared))
    context = builder.export(bento.tag)
    assert str(context) == builder.context_path(bento.tag)
    with tarfile.open(context, "r:gz") as tar:
        names = {n.removeprefix("./") for n in tar.getnames()}
    model_name, model_version = model_tag.split(":")
    assert {"bento.yaml", "env/docker/Dockerfile", "src/bento/service.py"} <= names
    assert any(n.startswith(f"models/{model_name}/{model_version}/") for n in names), sorted(names)[:20]
    job = builder.job(bento.tag)
    assert f"--context=tar://{context}" in job["spec"]["template"]["spec"]["containers"][0]["args"]
    with pytest.raises(ImageError, match="bentoml export of adult-service:nope"):
        builder.export("adult-service:nope")
