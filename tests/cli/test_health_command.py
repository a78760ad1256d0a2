"""`honcho-grpc health` and the liveness signals, with real processes: a `serve` and a
`worker` against the test database, asked by the command as a container's HEALTHCHECK (or
an exec probe) would ask them. Their stderr, not a terminal, is read back too: every line
is JSON, from both roles."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from honcho_grpc.db.embedded import free_port
from tests.conftest import ROOT, scratch_dir
from tests.pki import CA


@dataclass
class Proc:
    popen: subprocess.Popen[bytes]
    stderr: Path
    env: dict[str, str]


def base_env(pg_dsn: str, **extra: str) -> dict[str, str]:
    env = {**os.environ, "DB_CONNECTION_URI": pg_dsn, "EMBEDDING_PROVIDER": "fake",
           "SERVER_HOST": "127.0.0.1", "HTTP_PORT": "0", "APP_LOG_LEVEL": "INFO", **extra}
    env.pop("APP_LOG_FORMAT", None)
    return env


def launch(command: str, env: dict[str, str], folder: Path) -> Proc:
    stderr = folder / f"{command}-{len(list(folder.iterdir()))}.err"
    with stderr.open("wb") as err:
        popen = subprocess.Popen([sys.executable, "-m", "honcho_grpc.cli", command], env=env,
                                 cwd=ROOT, stdout=subprocess.DEVNULL, stderr=err)
    return Proc(popen, stderr, env)


def health(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "honcho_grpc.cli", "health", *args], env=env,
                          cwd=ROOT, capture_output=True, text=True, timeout=60)


def until_serving(proc: Proc, *args: str, within: float = 90) -> subprocess.CompletedProcess[str]:
    deadline = time.monotonic() + within
    while True:
        assert proc.popen.poll() is None, proc.stderr.read_text()
        done = health(proc.env, *args)
        if done.returncode == 0 or time.monotonic() > deadline:
            return done
        time.sleep(0.5)


def stop(proc: Proc) -> None:
    if proc.popen.poll() is None:
        proc.popen.send_signal(signal.SIGTERM)
        proc.popen.wait(30)


@pytest.fixture(scope="module")
def folder() -> Iterator[Path]:
    path = scratch_dir("honcho-health-")
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="module")
def server(pg_dsn: str, folder: Path) -> Iterator[Proc]:
    proc = launch("serve", base_env(pg_dsn, SERVER_PORT=str(free_port())), folder)
    yield proc
    stop(proc)


@pytest.fixture(scope="module")
def worker(pg_dsn: str, folder: Path) -> Iterator[Proc]:
    proc = launch("worker", base_env(pg_dsn, QUEUE_HEALTH_PORT=str(free_port())), folder)
    yield proc
    stop(proc)


def test_health_of_a_serving_server(server: Proc) -> None:
    done = until_serving(server)
    assert done.returncode == 0, done
    assert done.stdout.strip() == f"127.0.0.1:{server.env['SERVER_PORT']}: SERVING"
    live = health(server.env, "--service", "liveness")
    assert live.returncode == 0 and live.stdout.strip().endswith("'liveness': SERVING"), live


def test_health_of_nothing_fails(pg_dsn: str) -> None:
    done = health(base_env(pg_dsn, SERVER_PORT=str(free_port())), "--timeout", "1")
    assert done.returncode == 1
    assert "UNAVAILABLE" in done.stdout or "DEADLINE_EXCEEDED" in done.stdout, done


def test_worker_liveness(worker: Proc) -> None:
    done = until_serving(worker, "--worker")
    assert done.returncode == 0, (done, worker.stderr.read_text())
    assert done.stdout.strip().endswith(f":{worker.env['QUEUE_HEALTH_PORT']}: SERVING")
    stop(worker)
    gone = health(worker.env, "--worker", "--timeout", "1")
    assert gone.returncode == 1, gone


def test_worker_without_a_health_port_is_one_line(pg_dsn: str) -> None:
    done = health(base_env(pg_dsn, QUEUE_HEALTH_PORT="0"), "--worker")
    assert done.returncode == 2
    assert done.stdout.strip().startswith("honcho-grpc health: QUEUE_HEALTH_PORT is 0"), done


def test_tls_server_is_checked_on_its_plaintext_health_port(pg_dsn: str, folder: Path) -> None:
    ca = CA(folder, "health-ca")
    cert = ca.issue("health-server", server=True)
    env = base_env(pg_dsn, SERVER_PORT=str(free_port()), SERVER_TLS_CERT_FILE=str(cert.cert),
                   SERVER_TLS_KEY_FILE=str(cert.key), SERVER_TLS_CLIENT_CA_FILE=str(ca.pem),
                   SERVER_HEALTH_PORT=str(free_port()))
    proc = launch("serve", env, folder)
    try:
        done = until_serving(proc)
        assert done.returncode == 0, (done, proc.stderr.read_text())
        assert done.stdout.startswith(f"127.0.0.1:{env['SERVER_HEALTH_PORT']}: SERVING")
        # Without the health port the command cannot speak mTLS for itself: it says so.
        refused = health({**env, "SERVER_HEALTH_PORT": "0"})
        assert refused.returncode == 2 and "SERVER_HEALTH_PORT" in refused.stdout, refused
    finally:
        stop(proc)


def test_both_processes_log_json_lines(server: Proc, worker: Proc) -> None:
    until_serving(server)
    if worker.popen.poll() is None:
        until_serving(worker, "--worker")
    stop(server)
    stop(worker)
    roles = set()
    for proc in (server, worker):
        lines = proc.stderr.read_text().splitlines()
        assert lines, proc.stderr
        records = [json.loads(line) for line in lines]  # any raw line fails here
        roles |= {r["role"] for r in records}
        assert all({"time", "level", "logger", "message"} <= set(r) for r in records)
    assert roles == {"serve", "worker"}
