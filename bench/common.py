"""Shared benchmark plumbing: a real server in its own process (so the load generator does
not share its GIL), timing helpers, table printing and JSON output."""

from __future__ import annotations

import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class ServerProcess:
    proc: subprocess.Popen[bytes]
    port: int
    data_dir: Path
    http_port: int = 0

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def http_url(self) -> str:
        """Base URL of the Honcho v3 HTTP face the same process serves."""
        return f"http://127.0.0.1:{self.http_port}"

    def rss_mb(self) -> float:
        """Resident memory of the server process (its embedded Postgres not included)."""
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        return 0.0

    def dsn(self) -> str:
        pid_file = self.data_dir / "pg" / "postmaster.pid"
        lines = pid_file.read_text().splitlines()
        return f"postgresql://postgres@127.0.0.1:{lines[3].strip()}/postgres"


@contextmanager
def server_process(command: str = "serve", **env: str) -> Iterator[ServerProcess]:
    """`honcho-grpc serve` (the server alone) or `up` (server with its embedder and the
    worker, as users run it) with a fresh embedded database in a temp dir."""
    data = Path(tempfile.mkdtemp(prefix="honcho-bench-"))
    port, http_port = free_port(), free_port()
    # A port of its own for the HTTP face too: other servers on this machine hold 8000.
    environ = {**os.environ, "SERVER_PORT": str(port), "HTTP_PORT": str(http_port),
               "DB_DATA_DIR": str(data / "pg"), "APP_LOG_LEVEL": "WARNING", **env}
    environ.pop("DB_CONNECTION_URI", None)
    os.chmod(data, 0o755)
    proc = subprocess.Popen([sys.executable, "-m", "honcho_grpc.cli", command], env=environ,
                            cwd=ROOT)
    try:
        wait_healthy(f"127.0.0.1:{port}", proc)
        yield ServerProcess(proc, port, data, http_port)
    finally:
        proc.terminate()
        proc.wait(30)


def wait_healthy(address: str, proc: subprocess.Popen[bytes], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    with grpc.insecure_channel(address) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise RuntimeError("server exited during start-up")
            try:
                if stub.Check(health_pb2.HealthCheckRequest(), timeout=1).status == 1:
                    return
            except grpc.RpcError:
                pass
            time.sleep(0.2)
    raise RuntimeError("server did not become healthy")


def percentiles(samples_ms: list[float]) -> dict[str, float]:
    ordered = sorted(samples_ms)
    q = statistics.quantiles(ordered, n=100, method="inclusive")
    return {"p50_ms": round(q[49], 2), "p95_ms": round(q[94], 2), "p99_ms": round(q[98], 2),
            "n": len(ordered)}


def print_table(title: str, rows: list[dict[str, Any]]) -> None:
    if not rows:
        return
    cols = list(rows[0])
    widths = {c: max(len(c), *(len(str(r.get(c, ""))) for r in rows)) for c in cols}
    print(f"\n{title}")
    print(" | ".join(c.ljust(widths[c]) for c in cols))
    print("-+-".join("-" * widths[c] for c in cols))
    for r in rows:
        print(" | ".join(str(r.get(c, "")).ljust(widths[c]) for c in cols))


def write_json(name: str, payload: dict[str, Any], *, merge: bool = False) -> Path:
    """Write bench/results/<name>.json; with `merge`, keys of an earlier run that this one
    did not measure are kept (a partial run does not erase the others' figures)."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}.json"
    earlier = json.loads(path.read_text()) if merge and path.exists() else {}
    payload = {**earlier,
               "machine": {"cpus": os.cpu_count(), "python": sys.version.split()[0]},
               "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), **payload}
    path.write_text(json.dumps(payload, indent=2))
    print(f"\nwrote {path.relative_to(ROOT)}")
    return path
