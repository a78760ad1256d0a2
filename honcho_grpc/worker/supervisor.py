"""`honcho-grpc up`: the database and the gRPC server in this process, the worker as a child
process. The child gets a parent-death signal (it stops if we die, even by SIGKILL) and its
own session (a terminal's Ctrl-C reaches only us; we stop it, in order, before the database).
A worker that dies unexpectedly is restarted."""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import logging
import os
import signal
import subprocess
import sys

from honcho_grpc import telemetry
from honcho_grpc.settings import Settings

log = logging.getLogger(__name__)

PR_SET_PDEATHSIG = 1
RESTART_DELAY_SECONDS = 1.0
STOP_TIMEOUT_SECONDS = 20.0


def _die_with_parent() -> None:
    libc = ctypes.CDLL("libc.so.6", use_errno=True)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def spawn_worker(dsn: str) -> subprocess.Popen[bytes]:
    env = {**os.environ, "DB_CONNECTION_URI": dsn}
    return subprocess.Popen(
        [sys.executable, "-m", "honcho_grpc.cli", "worker"], env=env,
        stdin=subprocess.DEVNULL, preexec_fn=_die_with_parent, start_new_session=True)


async def stop_child(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is not None:
        return
    proc.terminate()
    try:
        await asyncio.to_thread(proc.wait, STOP_TIMEOUT_SECONDS)
    except subprocess.TimeoutExpired:
        proc.kill()
        await asyncio.to_thread(proc.wait)


class WorkerChild:
    """Keeps one worker process running until `stop()`."""

    def __init__(self, dsn: str) -> None:
        self.dsn = dsn
        self.proc: subprocess.Popen[bytes] | None = None
        self._stopping = False

    def spawn(self) -> None:
        self.proc = spawn_worker(self.dsn)

    async def watch(self) -> None:
        while not self._stopping:
            if self.proc is None or self.proc.poll() is not None:
                self.spawn()
            assert self.proc is not None
            code = await asyncio.to_thread(self.proc.wait)
            if self._stopping:
                return
            log.warning("worker exited with %s; restarting", code)
            await asyncio.sleep(RESTART_DELAY_SECONDS)

    async def stop(self) -> None:
        self._stopping = True
        if self.proc is not None:
            await stop_child(self.proc)


async def up(settings: Settings) -> None:
    """Run server and worker until SIGINT/SIGTERM, then stop server, worker, database."""
    from honcho_grpc.db.pool import open_database
    from honcho_grpc.server.app import start

    db = await open_database(settings)
    child = WorkerChild(db.dsn)
    # Forked before the gRPC server starts its threads (forking beside them is unsafe).
    child.spawn()
    # The exporters' threads start after the fork too; the worker sets up its own.
    otel = telemetry.configure(settings.telemetry, "server")
    watcher = asyncio.create_task(child.watch())
    try:
        running = await start(settings, db)
        print(f"honcho-grpc serving on {settings.server.host}:{running.port} (worker: child "
              "process)", flush=True)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await stop.wait()
        log.info("shutting down")
        await running.stop()
    finally:
        await child.stop()
        watcher.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await watcher
        await db.close()
        otel.shutdown()  # flushes the last spans and metric points
