"""Processes around honcho-grpc: who holds a port or a directory (so that a refusal at start-up
can name the process to stop), and children that die with their parent.

Linux only, like the embedded PostgreSQL launcher that uses it (prctl, /proc).
"""

from __future__ import annotations

import errno
import os
import signal
import socket
import sys
from pathlib import Path

import psutil

# Run by a fresh interpreter between fork and exec of the real child: the child sets its
# parent-death signal itself, so the parent never runs Python code in a forked child
# (subprocess's `preexec_fn`, unsafe beside gRPC's threads). It drops to another user first
# when asked (a change of user clears the signal; and that user may not be able to read this
# interpreter), and exits if the parent died before the signal was armed.
_DIE_WITH_PARENT = (
    "import ctypes, os, sys\n"
    "sig, parent, uid, gid = map(int, sys.argv[1:5])\n"
    "libc = ctypes.CDLL('libc.so.6', use_errno=True)\n"
    "if uid >= 0:\n"
    "    os.setgroups([]); os.setgid(gid); os.setuid(uid)\n"
    "libc.prctl(1, sig)\n"  # PR_SET_PDEATHSIG
    "if os.getppid() != parent:\n"
    "    sys.exit(70)\n"
    "os.execv(sys.argv[5], sys.argv[5:])\n"
)


class PortInUseError(RuntimeError):
    """The gRPC port is taken (or cannot be bound) before anything else starts."""


def die_with_parent(command: list[str], sig: signal.Signals,
                    user: tuple[int, int] | None = None) -> list[str]:
    """`command` wrapped so that it receives `sig` when this process dies, however it dies,
    run as `user` (uid, gid) if given.

    The signal is tied to the calling thread: spawn from the main thread (the event loop's),
    never from a worker thread that may end first."""
    uid, gid = user or (-1, -1)
    return [sys.executable, "-I", "-S", "-c", _DIE_WITH_PARENT, str(int(sig)), str(os.getpid()),
            str(uid), str(gid), *command]


def describe(pid: int) -> str:
    """`pid 1234 (honcho-grpc up)`, or `pid 1234` when the process cannot be inspected."""
    try:
        command = psutil.Process(pid).cmdline()
    except psutil.Error:
        return f"pid {pid}"
    return f"pid {pid} ({_short_command(command)})" if command else f"pid {pid}"


def _short_command(argv: list[str]) -> str:
    # `python -m honcho_grpc.cli up` and `.venv/bin/honcho-grpc up` both read `honcho-grpc up`.
    if "honcho_grpc.cli" in argv:
        argv = ["honcho-grpc", *argv[argv.index("honcho_grpc.cli") + 1:]]
    text = " ".join([Path(argv[0]).name, *argv[1:]])
    return text if len(text) <= 80 else text[:77] + "..."


def listening_pid(port: int) -> int | None:
    """The process listening on TCP `port` (None if unknown: not ours to inspect)."""
    try:
        connections = psutil.net_connections(kind="inet")
    except psutil.Error:
        return None
    for conn in connections:
        if conn.status == psutil.CONN_LISTEN and conn.laddr and conn.laddr.port == port:
            return int(conn.pid) if conn.pid else None
    return None


def check_port_free(host: str, port: int, setting: str = "SERVER_PORT") -> None:
    """Refuse, naming the process that holds it, a port the server could not bind, before
    the database starts and migrations run. Port 0 (any free port) always passes."""
    if port == 0:
        return
    try:
        addresses = socket.getaddrinfo(host or None, port, type=socket.SOCK_STREAM,
                                       flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise PortInUseError(f"SERVER_HOST {host!r} is not an address of this machine "
                             f"({exc.strerror})") from None
    for family, kind, proto, _, address in addresses:
        with socket.socket(family, kind, proto) as probe:
            # As gRPC binds: a port left in TIME_WAIT by a previous run is free.
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind(address)
            except OSError as exc:
                _refuse(exc, host, port, setting)


def _refuse(exc: OSError, host: str, port: int, setting: str) -> None:
    if exc.errno == errno.EADDRINUSE:
        holder = listening_pid(port)
        who = describe(holder) if holder else "another process"
        raise PortInUseError(f"port {port} on {host} is already in use by {who}; stop it, or "
                             f"set {setting} to a free port (0 picks one)") from None
    if exc.errno == errno.EACCES:
        raise PortInUseError(f"port {port} needs privileges to listen on; set {setting} to "
                             "1024 or above") from None
    # Other failures (an IPv6 address where IPv6 is off) are left to the server's own bind,
    # which may still succeed on the host's other addresses.


def flock_holder(path: Path) -> int | None:
    """The process holding an flock on `path`, from /proc/locks (None if not found)."""
    st = path.stat()
    device = f"{os.major(st.st_dev):02x}:{os.minor(st.st_dev):02x}:{st.st_ino}"
    try:
        lines = Path("/proc/locks").read_text().splitlines()
    except OSError:
        return None
    for line in lines:
        fields = line.split()
        # "1: FLOCK  ADVISORY  WRITE 1234 fe:00:2190177 0 EOF"; waiters carry a "->" field.
        if len(fields) >= 6 and fields[1] == "FLOCK" and fields[5] == device:
            pid = int(fields[4])
            return pid or None  # 0: a process of another pid namespace
    return None
