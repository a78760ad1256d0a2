"""`honcho-grpc up` as a real process, for the restart and terminal tests: start it on a data
directory, wait until it serves with its two children (PostgreSQL and the worker), write and
read through it, and crash it the ways a machine can."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import grpc
import psutil
from grpc_health.v1 import health_pb2, health_pb2_grpc
from honcho_grpc_proto.v1 import (
    message_pb2,
    message_pb2_grpc,
    workspace_pb2,
    workspace_pb2_grpc,
)

from tests.conftest import ROOT

READY_TIMEOUT = 120.0


def up_env(data_dir: Path | str, port: int, **extra: str) -> dict[str, str]:
    env = {**os.environ, "DB_DATA_DIR": str(data_dir), "SERVER_PORT": str(port), "HTTP_PORT": "0",
           "EMBEDDING_PROVIDER": "fake", "APP_LOG_LEVEL": "WARNING", **extra}
    env.pop("DB_CONNECTION_URI", None)
    env.pop("DATABASE_URL", None)
    return env


@dataclass
class Up:
    proc: subprocess.Popen[bytes]
    port: int
    stdout: Path
    stderr: Path

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def output(self) -> str:
        """What it printed and logged so far (stdout, then stderr)."""
        return (self.stdout.read_text(errors="replace") + "\n"
                + self.stderr.read_text(errors="replace"))

    def children(self) -> dict[str, int]:
        """Its live children by role: `postgres` and `worker`."""
        kids: dict[str, int] = {}
        for child in psutil.Process(self.proc.pid).children():
            try:
                if child.status() == psutil.STATUS_ZOMBIE:
                    continue
                role = "postgres" if child.name() == "postgres" else "worker"
            except psutil.NoSuchProcess:
                continue
            kids[role] = child.pid
        return kids

    def stop(self, sig: signal.Signals = signal.SIGINT, timeout: float = 90) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"up did not stop within {timeout}s:\n{self.output()}") from None


def start_up(data_dir: Path | str, port: int, logs: Path, *, cwd: Path = ROOT,
             **extra: str) -> Up:
    """Start `up`; `logs` is a directory for its output (each run gets new files)."""
    run = len(list(logs.glob("stdout-*"))) + 1
    stdout, stderr = logs / f"stdout-{run}", logs / f"stderr-{run}"
    with open(stdout, "wb") as out, open(stderr, "wb") as err:
        proc = subprocess.Popen([sys.executable, "-m", "honcho_grpc.cli", "up"],
                                env=up_env(data_dir, port, **extra), cwd=cwd,
                                stdin=subprocess.DEVNULL, stdout=out, stderr=err)
    return Up(proc, port, stdout, stderr)


def wait_ready(up: Up, timeout: float = READY_TIMEOUT) -> dict[str, int]:
    """Serving, with both children running; returns their pids. Fails at once if `up` exits:
    a restart must come up on the first attempt."""
    deadline = time.monotonic() + timeout
    with grpc.insecure_channel(up.address) as channel:
        health = health_pb2_grpc.HealthStub(channel)
        while time.monotonic() < deadline:
            assert up.proc.poll() is None, f"up exited with {up.proc.returncode}:\n{up.output()}"
            try:
                serving = health.Check(health_pb2.HealthCheckRequest(), timeout=1).status == 1
            except grpc.RpcError:
                serving = False
            kids = up.children()
            if serving and len(kids) == 2:
                return kids
            time.sleep(0.2)
    raise AssertionError(f"up did not become ready:\n{up.output()}")


def power_loss(pid: int) -> list[int]:
    """The machine loses power under `pid` and everything it started: every process of the
    tree is frozen first (none sees another die, none runs any clean-up), then killed.
    Returns the pids."""
    root = psutil.Process(pid)
    tree = [root, *root.children(recursive=True)]
    for sig in (signal.SIGSTOP, signal.SIGKILL):
        for proc in tree:
            # A short-lived child (initdb's helpers) may end between the listing and the
            # signal: it is off already.
            with contextlib.suppress(psutil.NoSuchProcess):
                proc.send_signal(sig)
    psutil.wait_procs(tree, timeout=10)
    return [p.pid for p in tree]


def gone(pids: list[int], within: float = 30) -> bool:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if not any(alive(p) for p in pids):
            return True
        time.sleep(0.1)
    return False


def alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def write(address: str, ws: str, texts: list[str]) -> list[str]:
    """CreateMessages in session `s`; returns the acknowledged message ids."""
    with grpc.insecure_channel(address) as channel:
        reply = message_pb2_grpc.MessageServiceStub(channel).CreateMessages(
            message_pb2.CreateMessagesRequest(workspace_id=ws, session_id="s", messages=[
                message_pb2.MessageInput(peer_id="ann", content=t) for t in texts]),
            timeout=30)
    return [m.id for m in reply.messages]


def stored(address: str, ws: str) -> list[str]:
    """The contents of session `s`, oldest first (one page: tests write fewer than 100)."""
    with grpc.insecure_channel(address) as channel:
        reply = message_pb2_grpc.MessageServiceStub(channel).ListMessages(
            message_pb2.ListMessagesRequest(workspace_id=ws, session_id="s", page_size=100),
            timeout=30)
    return [m.content for m in reply.messages]


def worker_done(address: str, ws: str, within: float = 60) -> None:
    """The worker processed every job of the workspace (some completed, none left)."""
    deadline = time.monotonic() + within
    with grpc.insecure_channel(address) as channel:
        stub = workspace_pb2_grpc.WorkspaceServiceStub(channel)
        while True:
            totals = stub.GetQueueStatus(workspace_pb2.GetQueueStatusRequest(
                workspace_id=ws), timeout=10).totals
            if totals.completed and not totals.pending and not totals.in_progress:
                return
            assert time.monotonic() < deadline, f"the worker left {totals} after {within}s"
            time.sleep(0.25)
