"""deploy/k8s (kustomize), validated offline: the kustomization is rendered (`kubectl
kustomize` when kubectl is on PATH, else the small renderer below, which must agree with it),
every object is checked against the Kubernetes API schemas (kubernetes-validate, strict: an
unknown or misplaced field fails), and the objects against each other and the code: every
configured name is a real setting, selectors find the pods, probes ask the ports the
configuration opens. Then a server and a worker started with the ConfigMap's settings answer
the very probes of their Deployments, as the kubelet would ask them."""

from __future__ import annotations

import copy
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import grpc
import kubernetes_validate
import pytest
import yaml
from grpc_health.v1 import health_pb2, health_pb2_grpc

from honcho_grpc import settings as settings_module
from honcho_grpc.db.embedded import free_port
from honcho_grpc.server.app import LIVENESS_SERVICE
from tests.conftest import ROOT

K8S = ROOT / "deploy" / "k8s"
KUBECTL = shutil.which("kubectl")
# The oldest Kubernetes still supported upstream when this was written, and the newest the
# schemas know: gRPC probes are GA since 1.27, autoscaling/v2 since 1.23.
VERSIONS = ["1.30.0", kubernetes_validate.latest_version() + ".0"]
Doc = dict[str, Any]


def render_in_python(folder: Path) -> list[Doc]:
    """What `kustomize build` makes of this kustomization: its resources, the `labels` pairs
    added to every object's metadata, `images` tags set. Any other field is refused, so
    that the kustomization cannot grow past what is checked here."""
    kustomization = yaml.safe_load((folder / "kustomization.yaml").read_text())
    unknown = set(kustomization) - {"apiVersion", "kind", "labels", "resources", "images"}
    assert not unknown, f"render_in_python does not know {unknown}"
    docs = [doc for name in kustomization["resources"]
            for doc in yaml.safe_load_all((folder / name).read_text()) if doc]
    for entry in kustomization.get("labels", []):
        assert set(entry) == {"pairs"}, entry  # no selectors or templates
        for doc in docs:
            doc.setdefault("metadata", {}).setdefault("labels", {}).update(entry["pairs"])
    images = {i["name"]: i for i in kustomization.get("images", [])}
    for doc in docs:
        for container in containers(doc):
            image = images.get(container["image"].split(":")[0])
            if image:
                name = image.get("newName", image["name"])
                container["image"] = f"{name}:{image['newTag']}" if "newTag" in image else name
    return docs


def render() -> list[Doc]:
    docs = render_in_python(K8S)
    if KUBECTL:
        out = subprocess.run([KUBECTL, "kustomize", str(K8S)], capture_output=True, text=True,
                             check=True, timeout=120).stdout
        built = [d for d in yaml.safe_load_all(out) if d]
        key = lambda d: (d["kind"], d["metadata"]["name"])  # noqa: E731
        assert sorted(built, key=key) == sorted(docs, key=key)
    return docs


def containers(doc: Doc) -> list[Doc]:
    spec = doc.get("spec", {}).get("template", {}).get("spec", {})
    return list(spec.get("containers", []))


@pytest.fixture(scope="module")
def docs() -> list[Doc]:
    return render()


def by_kind(docs: list[Doc], kind: str) -> dict[str, Doc]:
    return {d["metadata"]["name"]: d for d in docs if d["kind"] == kind}


@pytest.mark.parametrize("version", VERSIONS)
def test_every_object_is_valid_for_kubernetes(docs: list[Doc], version: str) -> None:
    for doc in docs:
        try:
            kubernetes_validate.validate(copy.deepcopy(doc), version, strict=True)
        except kubernetes_validate.ValidationError as exc:
            pytest.fail(f"{doc['kind']}/{doc['metadata']['name']} (Kubernetes {version}): "
                        f"{exc.message} at {'.'.join(map(str, exc.path))}")


def test_what_is_deployed(docs: list[Doc]) -> None:
    kinds = sorted((d["kind"], d["metadata"]["name"]) for d in docs)
    assert kinds == sorted([
        ("ConfigMap", "honcho-grpc-config"), ("Secret", "honcho-grpc-secrets"),
        ("Deployment", "honcho-grpc-server"), ("Deployment", "honcho-grpc-worker"),
        ("Service", "honcho-grpc"), ("Service", "honcho-grpc-headless"),
        ("PodDisruptionBudget", "honcho-grpc-server"),
        ("PodDisruptionBudget", "honcho-grpc-worker"),
        ("HorizontalPodAutoscaler", "honcho-grpc-server"),
        ("HorizontalPodAutoscaler", "honcho-grpc-worker")])


def setting_names() -> set[str]:
    return {f"{section.section.upper()}_{name.upper()}"
            for section in settings_module._Section.__subclasses__()
            for name in section.model_fields}


def test_configuration_names_real_settings(docs: list[Doc]) -> None:
    config = by_kind(docs, "ConfigMap")["honcho-grpc-config"]["data"]
    secret = by_kind(docs, "Secret")["honcho-grpc-secrets"]["stringData"]
    assert not (set(config) | set(secret)) - setting_names()
    assert not set(config) & set(secret)
    assert secret["DB_CONNECTION_URI"].startswith("postgresql://")  # the external database
    assert all(isinstance(v, str) for v in (*config.values(), *secret.values()))
    for deployment in by_kind(docs, "Deployment").values():
        (container,) = containers(deployment)
        refs = {(k, v["name"]) for ref in container["envFrom"] for k, v in ref.items()}
        assert refs == {("configMapRef", "honcho-grpc-config"),
                        ("secretRef", "honcho-grpc-secrets")}


def test_probes_ask_the_ports_the_configuration_opens(docs: list[Doc]) -> None:
    config = by_kind(docs, "ConfigMap")["honcho-grpc-config"]["data"]
    deployments = by_kind(docs, "Deployment")
    (server,) = containers(deployments["honcho-grpc-server"])
    (worker,) = containers(deployments["honcho-grpc-worker"])
    assert server["args"] == ["serve"] and worker["args"] == ["worker"]
    server_port, worker_port = int(config["SERVER_PORT"]), int(config["QUEUE_HEALTH_PORT"])
    assert [p["containerPort"] for p in server["ports"]] == [server_port,
                                                              int(config["HTTP_PORT"])]
    assert [p["containerPort"] for p in worker["ports"]] == [worker_port]
    for container, port in ((server, server_port), (worker, worker_port)):
        for probe in ("startupProbe", "livenessProbe"):
            assert container[probe]["grpc"]["port"] == port
    assert server["readinessProbe"]["grpc"] == {"port": server_port}  # overall status
    assert server["livenessProbe"]["grpc"]["service"] == LIVENESS_SERVICE
    assert config["SERVER_HOST"] == "0.0.0.0"  # the kubelet probes the pod's address
    # SIGTERM: the drain, then the grace for calls in flight, before the kubelet's SIGKILL.
    spec = deployments["honcho-grpc-server"]["spec"]["template"]["spec"]
    stopping = (float(config["SERVER_DRAIN_SECONDS"])
                + float(config["SERVER_SHUTDOWN_GRACE_SECONDS"]))
    assert spec["terminationGracePeriodSeconds"] > stopping


def test_selectors_find_the_pods(docs: list[Doc]) -> None:
    deployments = by_kind(docs, "Deployment")
    pods = {name: d["spec"]["template"]["metadata"]["labels"] for name, d in deployments.items()}
    for name, d in deployments.items():
        assert d["spec"]["selector"]["matchLabels"].items() <= pods[name].items()

    def selected(selector: dict[str, str]) -> set[str]:
        return {name for name, labels in pods.items() if selector.items() <= labels.items()}

    (server,) = containers(deployments["honcho-grpc-server"])
    named = {p["name"] for p in server["ports"]}
    for service in by_kind(docs, "Service").values():
        assert selected(service["spec"]["selector"]) == {"honcho-grpc-server"}
        assert service["spec"]["ports"][0]["targetPort"] == "grpc"
        assert {p["targetPort"] for p in service["spec"]["ports"]} <= named
    for name, pdb in by_kind(docs, "PodDisruptionBudget").items():
        assert selected(pdb["spec"]["selector"]["matchLabels"]) == {name}
    for name, hpa in by_kind(docs, "HorizontalPodAutoscaler").items():
        target = hpa["spec"]["scaleTargetRef"]
        assert (target["kind"], target["name"]) == ("Deployment", name)
        (container,) = containers(deployments[name])
        assert container["resources"]["requests"]["cpu"]  # Utilization needs a request
    server_hpa = by_kind(docs, "HorizontalPodAutoscaler")["honcho-grpc-server"]
    assert server_hpa["spec"]["minReplicas"] > by_kind(docs, "PodDisruptionBudget")[
        "honcho-grpc-server"]["spec"]["minAvailable"]


def test_pods_run_as_the_image_user(docs: list[Doc]) -> None:
    uid = int(re.search(r"useradd .*--uid (\d+)", (ROOT / "Dockerfile").read_text())[1])
    for deployment in by_kind(docs, "Deployment").values():
        assert deployment["spec"]["template"]["spec"]["securityContext"]["runAsUser"] == uid
        (container,) = containers(deployment)
        assert container["image"] == "honcho-grpc:0.1.0"


def check(port: int, service: str) -> str:
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        try:
            answer = health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(service=service), timeout=2)
        except grpc.RpcError as exc:
            return str(exc.code().name)
    return str(health_pb2.HealthCheckResponse.ServingStatus.Name(answer.status))


def test_the_probes_are_answered_by_processes_so_configured(docs: list[Doc],
                                                            pg_dsn: str) -> None:
    """The ConfigMap's settings (ports moved to free ones, the test database and embedder),
    a `serve` and a `worker` process: every probe of their Deployments answers SERVING."""
    config = dict(by_kind(docs, "ConfigMap")["honcho-grpc-config"]["data"])
    ports = {int(config["SERVER_PORT"]): free_port(), int(config["QUEUE_HEALTH_PORT"]): free_port()}
    env = {**os.environ, **config, "SERVER_HOST": "127.0.0.1", "DB_CONNECTION_URI": pg_dsn,
           "HTTP_PORT": "0",
           "EMBEDDING_PROVIDER": "fake", "SERVER_PORT": str(ports[int(config["SERVER_PORT"])]),
           "QUEUE_HEALTH_PORT": str(ports[int(config["QUEUE_HEALTH_PORT"])]),
           "APP_LOG_LEVEL": "WARNING"}
    procs = {name: subprocess.Popen([sys.executable, "-m", "honcho_grpc.cli", command],
                                    cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                                    stderr=subprocess.DEVNULL)
             for name, command in (("honcho-grpc-server", "serve"),
                                   ("honcho-grpc-worker", "worker"))}
    try:
        for name, deployment in by_kind(docs, "Deployment").items():
            (container,) = containers(deployment)
            for kind in ("startupProbe", "readinessProbe", "livenessProbe"):
                if kind not in container:
                    continue
                probe = container[kind]["grpc"]
                port, service = ports[probe["port"]], probe.get("service", "")
                deadline = time.monotonic() + 90
                while (status := check(port, service)) != "SERVING":
                    assert procs[name].poll() is None, f"{name} exited"
                    assert time.monotonic() < deadline, f"{name} {kind}: {status}"
                    time.sleep(0.5)
    finally:
        for proc in procs.values():
            proc.terminate()
            proc.wait(30)


def test_connections_at_the_autoscalers_maxima_fit_the_stated_database(docs: list[Doc]) -> None:
    """configmap.yaml asks for a PostgreSQL with max_connections of at least 200: the pools
    of every pod the autoscalers may start must fit in it (a worker has two pools and its
    LISTEN connection)."""
    config = by_kind(docs, "ConfigMap")["honcho-grpc-config"]["data"]
    hpas = by_kind(docs, "HorizontalPodAutoscaler")
    servers = hpas["honcho-grpc-server"]["spec"]["maxReplicas"]
    workers = hpas["honcho-grpc-worker"]["spec"]["maxReplicas"]
    total = (servers * int(config["DB_POOL_MAX_SIZE"])
             + workers * (2 * int(config["QUEUE_POOL_MAX_SIZE"]) + 1))
    assert "at least 200" in (K8S / "configmap.yaml").read_text()
    assert total <= 200, total
