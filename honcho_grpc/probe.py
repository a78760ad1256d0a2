"""`honcho-grpc health`: ask a server's (or a worker's) grpc.health.v1 whether it serves.

The image's HEALTHCHECK runs it: it reads the same settings as the process it checks
(SERVER_PORT, SERVER_HEALTH_PORT, QUEUE_HEALTH_PORT), so a container started with another
port is checked on that port. Exit status 0 when SERVING, 1 otherwise, with one line saying
what was asked and what answered.
"""

from __future__ import annotations

from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from honcho_grpc.settings import Settings


class ProbeConfigError(ValueError):
    """Nothing to ask: the settings name no reachable health endpoint."""


def local_host(host: str) -> str:
    """Where a process listening on `host` is reached from the same machine or container."""
    if host in ("", "0.0.0.0"):
        return "127.0.0.1"
    if host in ("::", "[::]"):
        return "[::1]"
    return f"[{host}]" if ":" in host and not host.startswith("[") else host


def default_address(settings: Settings, worker: bool) -> str:
    host = local_host(settings.server.host)
    if worker:
        if not settings.queue.health_port:
            raise ProbeConfigError("QUEUE_HEALTH_PORT is 0: the worker serves no health "
                                   "endpoint; set it (the image sets 50052)")
        return f"{host}:{settings.queue.health_port}"
    if settings.server.health_port:
        return f"{host}:{settings.server.health_port}"
    if settings.server.tls_cert_file:
        raise ProbeConfigError(
            "the server speaks TLS on SERVER_PORT: set SERVER_HEALTH_PORT for a plaintext "
            "health listener (the kubelet's gRPC probes need one too), or pass --address")
    return f"{host}:{settings.server.port}"


def container_command(cmdline: Path = Path("/proc/1/cmdline")) -> str:
    """The honcho-grpc command that process 1 runs (`serve`, `worker`...), or "" when
    process 1 is not honcho-grpc. In a container it is the entrypoint, so one HEALTHCHECK
    serves both kinds of container of the same image."""
    try:
        words = [w.decode(errors="replace") for w in cmdline.read_bytes().split(b"\0") if w]
    except OSError:
        return ""
    for i, word in enumerate(words[:-1]):
        if Path(word).name == "honcho-grpc" or word == "honcho_grpc.cli":
            return words[i + 1]
    return ""


def check(address: str, service: str = "", timeout: float = 3.0) -> str:
    """The status name the endpoint answers, or why there is none."""
    with grpc.insecure_channel(address) as channel:
        try:
            answer = health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(service=service), timeout=timeout)
        except grpc.RpcError as exc:
            return f"{exc.code().name}: {exc.details()}"
    return str(health_pb2.HealthCheckResponse.ServingStatus.Name(answer.status))


def run(settings: Settings, *, worker: bool, address: str | None, service: str,
        timeout: float) -> int:
    worker = worker or (address is None and container_command() == "worker")
    try:
        target = address or default_address(settings, worker)
    except ProbeConfigError as exc:
        print(f"honcho-grpc health: {exc}")
        return 2
    status = check(target, service, timeout)
    what = f"{target} {service!r}" if service else target
    print(f"{what}: {status}")
    return 0 if status == "SERVING" else 1
