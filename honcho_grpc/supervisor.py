"""`honcho-grpc up`: the database and the gRPC server in this process, the worker as a child
process, for a laptop or a single machine.

Children get a parent-death signal (they stop if we die, even by SIGKILL) and their own
session: a terminal's Ctrl-C reaches only us, and we stop them in order — server, worker,
database. A worker or an embedded PostgreSQL that dies unexpectedly is started again
(PostgreSQL with its crash recovery, on the same port: the server's pool reconnects).

It sits above both the server and the worker (it imports the server; the worker imports
neither).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from honcho_grpc import telemetry
from honcho_grpc.db.embedded import EmbeddedPostgres, EmbeddedPostgresError, location
from honcho_grpc.processes import check_port_free, die_with_parent
from honcho_grpc.settings import Settings

log = logging.getLogger(__name__)

RESTART_DELAY_SECONDS = 1.0
STOP_TIMEOUT_SECONDS = 20.0
POLL_SECONDS = 0.2
# The worker's derivation is background work: on a small machine it took the cores from the
# requests and the embedder (14 CPU-seconds per 1,000 messages with the local provider then,
# 2.4-2.9 since its fixes of 2026-12-06, against ~1 for acknowledging them and ~6 for
# embedding them). At niceness 10 it gets what they leave (the scheduler weighs it ~10x
# lower when they compete), and all of it when idle.
WORKER_NICENESS = 10
# ... and before each batch it gives way to the server's embedding backlog for up to this
# long (queue.yield_to_embedding_seconds, unless configured): the two share these cores.
UP_YIELD_TO_EMBEDDING_SECONDS = 5.0


def spawn_worker(dsn: str, settings: Settings | None = None) -> subprocess.Popen[bytes]:
    env = {**os.environ, "DB_CONNECTION_URI": dsn}
    if settings is None or "yield_to_embedding_seconds" not in settings.queue.model_fields_set:
        env["QUEUE_YIELD_TO_EMBEDDING_SECONDS"] = str(UP_YIELD_TO_EMBEDDING_SECONDS)
    proc = subprocess.Popen(
        die_with_parent([sys.executable, "-m", "honcho_grpc.cli", "worker"], signal.SIGTERM),
        env=env, stdin=subprocess.DEVNULL, start_new_session=True)
    # Set before the interpreter starts its threads (they inherit it); only ever raised.
    with contextlib.suppress(OSError):
        niceness = max(os.getpriority(os.PRIO_PROCESS, 0), WORKER_NICENESS)
        os.setpriority(os.PRIO_PROCESS, proc.pid, niceness)
        _nice_autogroup(proc.pid, niceness)
    return proc


def _nice_autogroup(pid: int, niceness: int) -> None:
    """The worker leads a session of its own, and Linux (with autogroup scheduling, the
    default on desktops and many servers) shares the CPU fairly between sessions before it
    looks at a process's niceness: at niceness 10 the worker still took half the cores from
    the server and its embedder (measured: the backlog drained at 354 msg/s beside it, 520
    without it). The session's own niceness is what counts there (sched(7), "The autogroup
    feature"). Elsewhere the file does not exist and the process niceness is all there is."""
    path = Path(f"/proc/{pid}/autogroup")
    if path.exists():
        path.write_text(str(niceness))


async def stop_child(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is not None:
        return
    proc.terminate()
    try:
        await asyncio.to_thread(proc.wait, STOP_TIMEOUT_SECONDS)
    except subprocess.TimeoutExpired:
        proc.kill()
        await asyncio.to_thread(proc.wait)


async def exited(proc: subprocess.Popen[bytes]) -> int:
    """Wait for a child's exit by polling: no thread stays blocked in wait() after we stop
    caring, and the child is reaped (a zombie would look alive to the next start)."""
    while (code := proc.poll()) is None:
        await asyncio.sleep(POLL_SECONDS)
    return code


class WorkerChild:
    """Keeps one worker process running until `stop()`."""

    def __init__(self, dsn: str, settings: Settings | None = None) -> None:
        self.dsn = dsn
        self.settings = settings
        self.proc: subprocess.Popen[bytes] | None = None
        self._stopping = False

    def spawn(self) -> None:
        self.proc = spawn_worker(self.dsn, self.settings)

    async def watch(self) -> None:
        while not self._stopping:
            if self.proc is None or self.proc.poll() is not None:
                self.spawn()
            assert self.proc is not None
            code = await exited(self.proc)
            if self._stopping:
                return
            log.warning("worker (pid %d) exited with %s; restarting it", self.proc.pid, code)
            await asyncio.sleep(RESTART_DELAY_SECONDS)

    async def stop(self) -> None:
        self._stopping = True
        if self.proc is not None:
            await stop_child(self.proc)


async def keep_postgres(pg: EmbeddedPostgres, failed: asyncio.Event) -> None:
    """Start the embedded PostgreSQL again whenever it dies; if it cannot be started, set
    `failed` (`up` then stops)."""
    while True:
        assert pg.process is not None
        pid, code = pg.process.pid, await exited(pg.process)
        log.warning("embedded postgres (pid %d) exited with %s; starting it again", pid, code)
        await asyncio.sleep(RESTART_DELAY_SECONDS)
        try:
            # Waiting for its leftover backends happens off the loop; the spawn stays on
            # this (the main) thread, which the parent-death signal is tied to.
            notes = await asyncio.to_thread(pg.clear_previous)
            pg.launch()
            await asyncio.to_thread(pg.wait_ready)
        except EmbeddedPostgresError as exc:
            log.error("embedded postgres could not be started again: %s", exc)
            failed.set()
            return
        pg.report(notes or [f"pid {pid} exited with {code}"])


async def up(settings: Settings) -> None:
    """Run server and worker until SIGINT/SIGTERM, then stop server, worker, database."""
    from honcho_grpc.db.pool import open_database
    from honcho_grpc.server.app import StopSignals, start

    # Refused before PostgreSQL starts and migrations run.
    check_port_free(settings.server.host, settings.server.port)
    if settings.http.enabled and settings.http.port:
        check_port_free(settings.server.host, settings.http.port, "HTTP_PORT")
    if not settings.db.uri():
        print(f"honcho-grpc: {location(settings.db.data_dir)}", flush=True)
    db = await open_database(settings)
    child = WorkerChild(db.dsn, settings)
    # Forked before the gRPC server starts its threads, as a habit (children are spawned
    # without running Python between fork and exec, so later restarts are safe too).
    child.spawn()
    # The exporters' threads start after the fork too; the worker sets up its own.
    otel = telemetry.configure(settings.telemetry, "server")
    failed = asyncio.Event()
    watchers = [asyncio.create_task(child.watch())]
    if db.embedded is not None:
        watchers.append(asyncio.create_task(keep_postgres(db.embedded, failed)))
    stopping = time.monotonic()
    try:
        running = await start(settings, db)
        print(f"honcho-grpc serving on {settings.server.host}:{running.port} (worker: child "
              "process; Ctrl-C stops all)", flush=True)
        if running.http_port is not None:
            print(f"Honcho HTTP API on http://{settings.server.host}:{running.http_port}",
                  flush=True)
        signals = StopSignals()
        signals.running = running
        signals.install()
        await _first(signals.requested, failed)
        stopping = time.monotonic()
        await running.stop(drain=signals.drain_seconds(settings))
        log.info("server stopped")
    finally:
        for watcher in watchers:
            watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watcher
        await child.stop()
        log.info("worker stopped")
        await db.close()
        log.info("database stopped")
        otel.shutdown()  # flushes the last spans and metric points
    print(f"honcho-grpc stopped in {time.monotonic() - stopping:.1f}s", flush=True)
    if failed.is_set():
        raise EmbeddedPostgresError("the embedded PostgreSQL died and could not be started "
                                    f"again; see {db.embedded.log_path if db.embedded else ''}")


async def _first(*events: asyncio.Event) -> None:
    waits = [asyncio.create_task(event.wait()) for event in events]
    try:
        await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for wait in waits:
            wait.cancel()
