"""`honcho-grpc up`: database, server and worker from one command; the README demo runs
against it; nothing is left behind when it is interrupted (SIGINT) or killed outright
(SIGKILL: parent-death signals)."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from honcho_grpc.db.embedded import free_port
from tests.conftest import ROOT, scratch_dir


def children(pid: int) -> list[int]:
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except OSError:
        return []
    return [int(p) for p in text.split()]


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    state = Path(f"/proc/{pid}/stat").read_text().split()[2] if Path(
        f"/proc/{pid}/stat").exists() else "X"
    return state != "Z"


def start_up(data: Path, port: int) -> subprocess.Popen[bytes]:
    env = {**os.environ, "DB_DATA_DIR": str(data / "pg"), "SERVER_PORT": str(port),
           "EMBEDDING_PROVIDER": "fake", "APP_LOG_LEVEL": "WARNING"}
    env.pop("DB_CONNECTION_URI", None)
    env.pop("DATABASE_URL", None)
    return subprocess.Popen([sys.executable, "-m", "honcho_grpc.cli", "up"], env=env, cwd=ROOT,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def wait_ready(proc: subprocess.Popen[bytes], port: int) -> list[int]:
    """Serving, with its two children (postgres and the worker) running; their pids."""
    deadline = time.monotonic() + 90
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        health = health_pb2_grpc.HealthStub(channel)
        while time.monotonic() < deadline:
            assert proc.poll() is None, "up exited"
            try:
                serving = health.Check(health_pb2.HealthCheckRequest(), timeout=1).status == 1
            except grpc.RpcError:
                serving = False
            kids = children(proc.pid)
            if serving and len(kids) == 2:
                return kids
            time.sleep(0.2)
    raise AssertionError("up did not become ready")


def gone(pids: list[int], within: float = 30) -> bool:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if not any(alive(p) for p in pids):
            return True
        time.sleep(0.1)
    return False


def check_demo(port: int) -> None:
    """The README's demo (examples/demo.py) against `up` with no keys: the worker derives
    conclusions, a summary and a peer card within its minute, and an answer streams."""
    demo = subprocess.run([sys.executable, str(ROOT / "examples" / "demo.py"), "--address",
                           f"127.0.0.1:{port}"], capture_output=True, text=True, timeout=90,
                          cwd=ROOT)
    assert demo.returncode == 0, demo.stderr
    out = demo.stdout
    assert "worker done" in out and "- [explicit] maya" in out, out
    assert "== short summary" in out and "ATTRIBUTE: maya" in out, out
    answer = out.split("half marathon training going?", 1)[1]
    assert "Based on what is known about maya" in answer and "half marathon" in answer, out


def test_up_runs_the_demo_and_leaves_nothing_behind() -> None:
    data = scratch_dir("honcho-up-")
    try:
        port = free_port()
        proc = start_up(data, port)
        kids = wait_ready(proc, port)
        proc.kill()  # no chance to clean up: the children must notice by themselves
        proc.wait(10)
        assert gone(kids), "children outlived a killed parent"
        proc = start_up(data, port)  # the same data directory starts again
        kids = wait_ready(proc, port)
        check_demo(port)
        proc.send_signal(signal.SIGINT)
        assert proc.wait(60) == 0
        assert gone(kids, within=5)
    finally:
        shutil.rmtree(data, ignore_errors=True)
