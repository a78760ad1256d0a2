"""What a user sees in a terminal: Ctrl-C on `up` (driven under a pseudo-terminal) stops the
server, the worker and the database in that order, without a traceback and without the
terminal's SIGINT reaching the children; gRPC core's own log lines stay off the terminal
unless the user asks for them."""

from __future__ import annotations

import errno
import os
import re
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from honcho_grpc_proto.v1 import event_pb2, event_pb2_grpc

from honcho_grpc.db.embedded import free_port
from tests.conftest import ROOT, scratch_dir
from tests.faults.up_process import Up, power_loss, up_env, wait_ready

# Started by a fresh interpreter (no fork of this threaded process running Python code): a
# new session whose controlling terminal is the pseudo-terminal on stdin, then `up`.
IN_TERMINAL = ("import fcntl, os, sys, termios\n"
               "os.setsid()\n"
               "fcntl.ioctl(0, termios.TIOCSCTTY, 0)\n"
               "os.execv(sys.argv[1], sys.argv[1:])\n")


@pytest.fixture
def scratch() -> Iterator[Path]:
    root = scratch_dir("honcho-tty-")
    yield root
    shutil.rmtree(root, ignore_errors=True)


def copy_terminal(master: int, sink: Path) -> threading.Thread:
    """Everything the terminal shows, appended to `sink` until the last writer closes it."""
    def pump() -> None:
        with open(sink, "ab", buffering=0) as out:
            while True:
                try:
                    chunk = os.read(master, 4096)
                except OSError as exc:  # EIO: the other side is closed
                    assert exc.errno == errno.EIO, exc
                    return
                if not chunk:
                    return
                out.write(chunk)

    thread = threading.Thread(target=pump, daemon=True)
    thread.start()
    return thread


def test_ctrl_c_stops_everything_in_order_without_a_traceback(scratch: Path) -> None:
    port = free_port()
    screen, nothing = scratch / "screen", scratch / "nothing"
    nothing.touch()
    master, terminal = os.openpty()
    # A drain on Ctrl-C would keep the user waiting 30 s: only SIGTERM drains.
    env = up_env(scratch / "pg", port, APP_LOG_LEVEL="INFO", SERVER_DRAIN_SECONDS="30",
                 SERVER_SHUTDOWN_GRACE_SECONDS="2")
    proc = subprocess.Popen(
        [sys.executable, "-c", IN_TERMINAL, sys.executable, "-m", "honcho_grpc.cli", "up"],
        env=env, cwd=ROOT, stdin=terminal, stdout=terminal, stderr=terminal)
    os.close(terminal)
    pump = copy_terminal(master, screen)
    up = Up(proc, port, stdout=screen, stderr=nothing)
    try:
        kids = wait_ready(up)
        for role, pid in kids.items():
            assert os.getpgid(pid) != os.getpgid(proc.pid), f"{role} would get the ^C too"
        with grpc.insecure_channel(up.address) as channel:
            # A stream in flight when ^C comes: cut at the end of the grace, quietly.
            watch = event_pb2_grpc.EventServiceStub(channel).WatchEvents(
                event_pb2.WatchEventsRequest(workspace_id="tty"))
            watch.initial_metadata()
            interrupted = time.monotonic()
            os.write(master, b"\x03")
            assert proc.wait(60) == 0
            took = time.monotonic() - interrupted
            with pytest.raises(grpc.RpcError):
                next(watch)
    finally:
        if proc.poll() is None:
            power_loss(proc.pid)
        pump.join(10)
        os.close(master)
    shown = screen.read_text(errors="replace")
    assert "Traceback" not in shown and '"level":"ERROR"' not in shown, shown
    order = [shown.find(f"{part} stopped") for part in ("server", "worker", "database")]
    assert -1 < order[0] < order[1] < order[2], shown
    assert "honcho-grpc stopped in" in shown, shown
    assert took < 15, f"stopping took {took:.1f}s"
    pg_log = (scratch / "pg" / "log" / "postgres.log").read_text()
    assert pg_log.count("received fast shutdown request") == 1, pg_log


# gRPC core's own line: "I1204 17:19:14.663200   14450 chttp2_transport.cc:1403] ..."
CORE_LOG_LINE = re.compile(r"^[IWEF]\d{4} [\d:.]+ +\d+ \S+\.cc:\d+\]", re.MULTILINE)

# A server in a process of its own, stopped with a stream open when its stdin closes.
GOING_AWAY_SERVER = """
import asyncio, sys
import grpc
from grpc_health.v1 import health, health_pb2_grpc
async def main():
    server = grpc.aio.server()
    health_pb2_grpc.add_HealthServicer_to_server(health.aio.HealthServicer(), server)
    print(server.add_insecure_port("127.0.0.1:0"), flush=True)
    await server.start()
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
    await server.stop(0)
asyncio.run(main())
"""

GOAWAY_CLIENT = """
import honcho_grpc.cli  # sets gRPC's defaults, as every honcho-grpc command does
import grpc, sys
from grpc_health.v1 import health_pb2, health_pb2_grpc
with grpc.insecure_channel(sys.argv[1]) as channel:
    watch = health_pb2_grpc.HealthStub(channel).Watch(health_pb2.HealthCheckRequest())
    next(watch)
    print("watching", flush=True)
    try:
        next(watch)
    except grpc.RpcError as err:
        print(err.code().name, flush=True)
"""


@pytest.mark.parametrize(("verbosity", "shown"), [(None, False), ("INFO", True)])
def test_grpc_core_logs_only_when_asked(verbosity: str | None, shown: bool) -> None:
    """A server that goes away with a stream open may make gRPC core log "Got goaway" in the
    client (when the GOAWAY arrives before the connection closes); our commands keep core's
    lines off the terminal, unless GRPC_VERBOSITY says otherwise (then its start-up line at
    least shows, so the check can fail)."""
    env = {k: v for k, v in os.environ.items() if k not in ("GRPC_VERBOSITY", "GRPC_TRACE")}
    server = subprocess.Popen([sys.executable, "-c", GOING_AWAY_SERVER], env=env, cwd=ROOT,
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert server.stdin is not None and server.stdout is not None
    if verbosity:
        env["GRPC_VERBOSITY"] = verbosity
    try:
        port = int(server.stdout.readline())
        client = subprocess.Popen([sys.executable, "-c", GOAWAY_CLIENT, f"127.0.0.1:{port}"],
                                  env=env, cwd=ROOT, stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True)
        assert client.stdout is not None
        assert client.stdout.readline() == "watching\n"
        server.stdin.close()  # the server stops, cancelling the stream
        out, err = client.communicate(timeout=30)
    finally:
        server.kill()
        server.wait(10)
    assert out.strip() == "UNAVAILABLE", (out, err)
    assert bool(CORE_LOG_LINE.search(err)) is shown, err
