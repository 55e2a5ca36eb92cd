"""deploy/kubernetes/ against KubeRay's CRD schemas (../shared/kuberay/, no cluster reachable
from here) and against the project's own Serve config; the Dockerfile installs as `make install`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
KUBERNETES = REPO / "deploy" / "kubernetes"
CRDS = REPO.parent / "shared" / "kuberay"
LOCAL_RAY_ENV_NAME = "RAY_SERVE_HTTP_PROXY_CALLBACK_IMPORT_PATH"


def documents(name: str) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all((KUBERNETES / name).read_text()) if d]


def strict(schema: Any) -> Any:
    """The CRD's schema, with unknown fields refused: the API server would silently prune them,
    so a misspelt field would be lost without a word."""
    if isinstance(schema, dict):
        schema = {k: strict(v) for k, v in schema.items()}
        if (
            "properties" in schema
            and "additionalProperties" not in schema
            and not schema.get("x-kubernetes-preserve-unknown-fields")
        ):
            schema["additionalProperties"] = False
        return schema
    if isinstance(schema, list):
        return [strict(item) for item in schema]
    return schema


def crd_schema(file: str, version: str = "v1") -> dict[str, Any]:
    crd = yaml.safe_load((CRDS / file).read_text())
    [served] = [v for v in crd["spec"]["versions"] if v["name"] == version]
    return strict(served["schema"]["openAPIV3Schema"])


@pytest.fixture(scope="module")
def rayservice() -> dict[str, Any]:
    [service] = documents("rayservice.yaml")
    return service


def test_the_rayservice_validates_against_kuberays_crd(rayservice: dict[str, Any]) -> None:
    assert (rayservice["apiVersion"], rayservice["kind"]) == ("ray.io/v1", "RayService")
    jsonschema.validate(rayservice, crd_schema("ray.io_rayservices.yaml"))


def test_the_strict_schema_catches_a_misspelt_field(rayservice: dict[str, Any]) -> None:
    broken = yaml.safe_load(yaml.safe_dump(rayservice))
    broken["spec"]["rayClusterConfig"]["enableInTreeAutoScaling"] = True
    with pytest.raises(jsonschema.ValidationError, match="enableInTreeAutoScaling"):
        jsonschema.validate(broken, crd_schema("ray.io_rayservices.yaml"))


def test_its_ray_cluster_validates_as_a_raycluster(rayservice: dict[str, Any]) -> None:
    cluster = {
        "apiVersion": "ray.io/v1",
        "kind": "RayCluster",
        "metadata": {"name": "linkedin-posts"},
        "spec": rayservice["spec"]["rayClusterConfig"],
    }
    jsonschema.validate(cluster, crd_schema("ray.io_rayclusters.yaml"))


def test_serve_config_v2_is_config_serve_yaml(rayservice: dict[str, Any]) -> None:
    embedded = yaml.safe_load(rayservice["spec"]["serveConfigV2"])
    assert embedded == yaml.safe_load((REPO / "config" / "serve.yaml").read_text())


def _containers(rayservice: dict[str, Any]) -> list[tuple[str, dict[str, Any], dict[str, Any]]]:
    spec = rayservice["spec"]["rayClusterConfig"]
    groups = [("head", spec["headGroupSpec"])]
    groups += [(g["groupName"], g) for g in spec["workerGroupSpecs"]]
    return [
        (name, group["template"]["spec"], container)
        for name, group in groups
        for container in group["template"]["spec"]["containers"]
    ]


def test_every_pod_runs_the_proxy_guard_and_mounts_the_keys(rayservice: dict[str, Any]) -> None:
    serve = yaml.safe_load((REPO / "config" / "serve.yaml").read_text())
    keys_file = Path(serve["applications"][0]["args"]["security"]["api_keys_file"])
    [secret] = documents("api-keys-secret.yaml")
    assert keys_file.name in secret["stringData"]
    for name, pod, container in _containers(rayservice):
        env = {e["name"]: e["value"] for e in container.get("env", [])}
        assert env[LOCAL_RAY_ENV_NAME] == "deployments.edge.proxy_guard:middlewares", name
        [mount] = [m for m in container["volumeMounts"] if m["name"] == "api-keys"]
        assert Path(mount["mountPath"]) == keys_file.parent, name
        [volume] = [v for v in pod["volumes"] if v["name"] == "api-keys"]
        assert volume["secret"]["secretName"] == secret["metadata"]["name"], name
        assert container["resources"]["requests"] == container["resources"]["limits"], name
        assert container["readinessProbe"]["failureThreshold"] * 10 >= 300, name


def test_autoscaling_and_a_gpu_group(rayservice: dict[str, Any]) -> None:
    spec = rayservice["spec"]["rayClusterConfig"]
    assert spec["enableInTreeAutoscaling"] is True
    [gpu] = [g for g in spec["workerGroupSpecs"] if g["groupName"] == "gpu"]
    [container] = gpu["template"]["spec"]["containers"]
    assert container["resources"]["limits"]["nvidia.com/gpu"] == "1"
    assert gpu["rayStartParams"]["num-gpus"] == "1"
    assert gpu["minReplicas"] == 0 < gpu["maxReplicas"]


def test_redis_is_where_the_serve_config_looks(rayservice: dict[str, Any]) -> None:
    serve = yaml.safe_load(rayservice["spec"]["serveConfigV2"])
    url = serve["applications"][0]["runtime_env"]["env_vars"]["REDIS_URL"]
    service = next(d for d in documents("redis.yaml") if d["kind"] == "Service")
    assert url == f"redis://{service['metadata']['name']}:{service['spec']['ports'][0]['port']}/0"


def test_the_image_installs_with_make_install() -> None:
    dockerfile = (REPO / "Dockerfile").read_text()
    assert "RUN make install" in dockerfile
    assert "RAY_SERVE_HTTP_PROXY_CALLBACK_IMPORT_PATH=deployments.edge.proxy_guard:middlewares" in (
        dockerfile
    )
