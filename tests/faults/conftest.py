"""Fault-test plumbing: a `honcho-grpc serve` process against the session's PostgreSQL, and
the retry hint of a failed call. (`own_postgres`, a database a test may restart, is in
tests/conftest.py.)"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass

import grpc
import pytest
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from bench.common import wait_healthy
from honcho_grpc.db.embedded import free_port
from tests.conftest import ROOT


@dataclass
class ServeProcess:
    proc: subprocess.Popen[bytes]
    port: int

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def output(self) -> str:
        """What it logged (only once it has exited)."""
        assert self.proc.stderr is not None
        return self.proc.stderr.read().decode(errors="replace")


def start_serve(dsn: str, grace: float, drain: float = 0.0) -> ServeProcess:
    """`honcho-grpc serve` on a free port against `dsn`, once it reports SERVING. The embedding
    backlog stays with the tests (`drain_backlog`), as for the in-process server. `drain`:
    seconds still served after SIGTERM (none unless a test is about it)."""
    port = free_port()
    env = {**os.environ, "DB_CONNECTION_URI": dsn, "SERVER_HOST": "127.0.0.1",
           "SERVER_PORT": str(port), "HTTP_PORT": "0", "SERVER_SHUTDOWN_GRACE_SECONDS": str(grace),
           "SERVER_DRAIN_SECONDS": str(drain),
           "SERVER_EMBED_IN_SERVER": "false", "EMBEDDING_PROVIDER": "fake",
           "APP_LOG_LEVEL": "WARNING"}
    proc = subprocess.Popen([sys.executable, "-m", "honcho_grpc.cli", "serve"], env=env,
                            cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        wait_healthy(f"127.0.0.1:{port}", proc, timeout=30)
    except BaseException:
        proc.kill()
        proc.wait(10)
        raise
    return ServeProcess(proc, port)


@pytest.fixture
def serve_processes() -> Iterator[list[ServeProcess]]:
    """Servers appended here are killed after the test if still running."""
    started: list[ServeProcess] = []
    yield started
    for server in started:
        if server.proc.poll() is None:
            server.proc.kill()
        server.proc.wait(10)


def retry_delay(error: grpc.aio.AioRpcError) -> float | None:
    """The RetryInfo delay a failed call carries, in seconds (None: no RetryInfo)."""
    status = rpc_status.from_call(error)
    for detail in status.details if status else []:
        if detail.Is(error_details_pb2.RetryInfo.DESCRIPTOR):
            info = error_details_pb2.RetryInfo()
            detail.Unpack(info)
            return float(info.retry_delay.ToNanoseconds()) / 1e9
    return None
