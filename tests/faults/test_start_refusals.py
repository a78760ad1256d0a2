"""Start-up refusals and where the data lives, with real `honcho-grpc` processes.

A port in use, a second `up` on the same data directory and `migrate` while `up` runs each get
one line (no traceback) naming the process in the way and the setting to change; the port is
checked before PostgreSQL starts. As root the launcher changes nothing outside the data
directory, and `up` prints the absolute path of its data, a relative DB_DATA_DIR included."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from honcho_grpc.db.embedded import free_port
from tests.conftest import ROOT, scratch_dir
from tests.faults.up_process import Up, power_loss, start_up, up_env, wait_ready


@pytest.fixture
def scratch() -> Iterator[Path]:
    root = scratch_dir("honcho-refusal-")
    logs = root / "logs"
    logs.mkdir()
    yield root
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def ups() -> Iterator[list[Up]]:
    started: list[Up] = []
    yield started
    for up in started:
        if up.proc.poll() is None:
            power_loss(up.proc.pid)


def cli(args: list[str], env: dict[str, str], cwd: Path = ROOT) -> tuple[int, str]:
    """Run `honcho-grpc <args>` to its end; (exit code, stderr)."""
    res = subprocess.run([sys.executable, "-m", "honcho_grpc.cli", *args], env=env, cwd=cwd,
                         capture_output=True, text=True, timeout=120)
    return res.returncode, res.stderr


def one_line(stderr: str) -> str:
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    return lines[0]


def test_port_in_use_is_refused_before_postgres_starts(scratch: Path) -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        code, err = cli(["up"], up_env(scratch / "pg", port))
    line = one_line(err)
    assert code == 1
    assert line.startswith(f"honcho-grpc up: port {port} on 127.0.0.1 is already in use by "
                           f"pid {os.getpid()} ("), line
    assert "SERVER_PORT" in line, line
    assert not (scratch / "pg").exists(), "PostgreSQL was started before the port was checked"


def test_a_running_up_is_named_by_a_second_up_and_by_migrate(scratch: Path,
                                                               ups: list[Up]) -> None:
    data, port = scratch / "pg", free_port()
    ups.append(running := start_up(data, port, scratch / "logs"))
    wait_ready(running)
    owner = f"pid {running.proc.pid} (honcho-grpc up)"

    code, err = cli(["up"], up_env(data, free_port()))
    assert code == 1
    assert one_line(err) == (f"honcho-grpc up: the data directory {data} is in use by {owner}; "
                             "stop it, or set DB_DATA_DIR to another directory")

    other = scratch / "other"
    code, err = cli(["up"], up_env(other, port))  # a second `make run`: same port
    line = one_line(err)
    assert code == 1
    assert f"port {port} on 127.0.0.1 is already in use by {owner}" in line, line
    assert "SERVER_PORT" in line and not other.exists(), line

    code, err = cli(["migrate"], up_env(data, 0))
    line = one_line(err)
    assert code == 1
    assert line.startswith(f"honcho-grpc migrate: the data directory {data} is in use by "
                           f"{owner}; stop it, or set DB_DATA_DIR"), line

    wait_ready(running)  # unaffected by all this
    assert running.stop() == 0


@pytest.mark.skipif(os.geteuid() != 0, reason="the launcher changes owners only as root")
def test_as_root_nothing_outside_the_data_directory_changes(scratch: Path,
                                                           ups: list[Up]) -> None:
    """DB_DATA_DIR=srv/pg, relative, run from `scratch`: `srv` (existing, root's) keeps its
    owner and mode and gains nothing but `pg`; nothing appears beside it."""
    srv = scratch / "srv"
    srv.mkdir(mode=0o755)
    before = os.stat(srv)
    port = free_port()
    for expected in ("new, empty database", "database"):
        ups.append(up := start_up("srv/pg", port, scratch / "logs", cwd=scratch))
        wait_ready(up)
        assert up.stop() == 0
        first = up.stdout.read_text().splitlines()[0]
        assert first == (f"honcho-grpc: {expected} in {srv / 'pg'} (DB_DATA_DIR=srv/pg is "
                         "relative to the current folder)")
    after = os.stat(srv)
    assert (after.st_uid, after.st_gid, after.st_mode) == (
        before.st_uid, before.st_gid, before.st_mode)
    assert sorted(p.name for p in srv.iterdir()) == ["pg"]
    assert sorted(p.name for p in scratch.iterdir()) == ["logs", "srv"]
    assert os.stat(srv / "pg").st_uid != 0, "PostgreSQL must not run as root"
