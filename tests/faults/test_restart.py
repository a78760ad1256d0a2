"""Restart after any crash: `honcho-grpc up` comes up on the first attempt after the machine
lost power (its postmaster.pid naming a pid that is gone, or one now used by an unrelated
process), after `up` itself was killed, and keeps going when its PostgreSQL or its worker is
killed under it — with PostgreSQL's own crash recovery, said in one log line, and every
acknowledged write kept. Real processes throughout."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

from honcho_grpc.db.embedded import STAGING, free_port
from tests.conftest import ROOT, scratch_dir
from tests.faults.up_process import (
    Up,
    gone,
    power_loss,
    start_up,
    stored,
    wait_ready,
    worker_done,
    write,
)

RECOVERED = "recovered from an unclean stop"


@pytest.fixture
def scratch() -> Iterator[Path]:
    root = scratch_dir("honcho-crash-")
    (root / "logs").mkdir()
    yield root
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def ups() -> Iterator[list[Up]]:
    """`up` processes appended here are killed, with everything they started, if the test
    left them running."""
    started: list[Up] = []
    yield started
    for up in started:
        if up.proc.poll() is None:
            power_loss(up.proc.pid)


def recovery_lines(up: Up) -> list[str]:
    return [line for line in up.output().splitlines() if RECOVERED in line]


def test_power_loss_restarts_with_crash_recovery(scratch: Path, ups: list[Up]) -> None:
    data, port, ws = scratch / "pg", free_port(), "power"
    texts = [f"before the power loss {i}" for i in range(20)]
    ups.append(first := start_up(data, port, scratch / "logs"))
    wait_ready(first)
    write(first.address, ws, texts)
    power_loss(first.proc.pid)
    assert (data / "postmaster.pid").exists(), "the crash should leave its lock file behind"

    ups.append(second := start_up(data, port, scratch / "logs"))
    wait_ready(second)
    [line] = recovery_lines(second)
    assert "stale postmaster.pid" in line and "no longer running" in line, line
    assert "not shut down cleanly" in line and "redo done at" in line, line
    assert stored(second.address, ws) == texts

    # Power lost again; this time the old postmaster's pid belongs to an unrelated process,
    # as after a reboot (PostgreSQL alone would refuse: "lock file already exists").
    write(second.address, ws, ["before the second power loss"])
    power_loss(second.proc.pid)
    sleeper = subprocess.Popen(["sleep", "300"])
    try:
        _record_pid(data / "postmaster.pid", sleeper.pid)
        ups.append(third := start_up(data, port, scratch / "logs"))
        wait_ready(third)
        [line] = recovery_lines(third)
        assert f"now used by an unrelated process (pid {sleeper.pid} (sleep 300))" in line, line
        assert sleeper.poll() is None, "the unrelated process was touched"
        assert stored(third.address, ws) == [*texts, "before the second power loss"]
        assert third.stop() == 0
        assert "Traceback" not in third.output()
    finally:
        sleeper.kill()
        sleeper.wait()


def test_killed_up_restarts_at_once(scratch: Path, ups: list[Up]) -> None:
    """`up` killed outright: its children stop by themselves (parent-death signals), and an
    immediate restart waits for the old PostgreSQL's shutdown instead of failing."""
    data, port, ws = scratch / "pg", free_port(), "killed"
    ups.append(first := start_up(data, port, scratch / "logs"))
    kids = wait_ready(first)
    write(first.address, ws, ["before the kill"])
    first.proc.kill()
    first.proc.wait(10)
    ups.append(second := start_up(data, port, scratch / "logs"))
    wait_ready(second)
    assert gone(list(kids.values())), "children outlived a killed parent"
    assert stored(second.address, ws) == ["before the kill"]
    # A shutdown that was still running is waited for; a finished one left nothing to do.
    assert all("waited" in line for line in recovery_lines(second)), second.output()
    assert second.stop() == 0
    assert "Traceback" not in second.output()


def test_postgres_and_worker_killed_under_up_come_back(scratch: Path, ups: list[Up]) -> None:
    data, port, ws = scratch / "pg", free_port(), "under"
    ups.append(up := start_up(data, port, scratch / "logs", APP_LOG_LEVEL="INFO"))
    kids = wait_ready(up)
    write(up.address, ws, ["before"])

    os.kill(kids["postgres"], signal.SIGKILL)
    _written_within(up, ws, "after the postgres crash", within=60)
    restarted = wait_ready(up)
    assert restarted["postgres"] != kids["postgres"]
    [line] = recovery_lines(up)
    assert f"pid {kids['postgres']}" in line and "not shut down cleanly" in line, line

    os.kill(restarted["worker"], signal.SIGKILL)
    deadline = time.monotonic() + 30
    while up.children().get("worker") in (None, restarted["worker"]):
        assert time.monotonic() < deadline, "the worker was not restarted"
        time.sleep(0.2)
    write(up.address, ws, ["for the new worker"])
    worker_done(up.address, ws)
    assert stored(up.address, ws) == ["before", "after the postgres crash",
                                      "for the new worker"]
    code = up.stop()
    out = up.output()
    assert code == 0, out
    assert f"worker (pid {restarted['worker']}) exited with -9; restarting it" in out


def test_interrupted_first_start_is_set_up_again(scratch: Path) -> None:
    """Power lost during the first start's initdb: the half-made cluster is recognised (it
    never reached the data directory's top level) and made again, not trusted."""
    data = scratch / "pg"
    launcher = [sys.executable, "-m", "tests.postgres_process", str(data), "0"]
    first = subprocess.Popen(launcher, cwd=ROOT, stdin=subprocess.PIPE,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while not any((data / STAGING).glob("*")):
        assert first.poll() is None and time.monotonic() < deadline, "initdb never started"
        time.sleep(0.005)
    power_loss(first.pid)
    first.wait(10)
    assert not (data / "PG_VERSION").exists()

    second = subprocess.Popen(launcher, cwd=ROOT, stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert second.stdin and second.stdout and second.stderr
    dsn = second.stdout.readline().strip()
    second.stdin.close()  # the launcher stops its PostgreSQL
    err = second.stderr.read()
    assert second.wait(60) == 0, err
    assert dsn.startswith("postgresql://"), err
    assert f"the first start in {data} was interrupted; setting it up again" in err, err
    assert (data / "PG_VERSION").exists() and not (data / STAGING).exists()


def _record_pid(pidfile: Path, pid: int) -> None:
    lines = pidfile.read_text().split("\n")
    pidfile.write_text("\n".join([str(pid), *lines[1:]]))


def _written_within(up: Up, ws: str, text: str, within: float) -> None:
    """Retried while the database comes back: only UNAVAILABLE is acceptable meanwhile (on
    anything else, the server's log says what it could not map)."""
    deadline = time.monotonic() + within
    while True:
        try:
            write(up.address, ws, [text])
            return
        except grpc.RpcError as err:
            if err.code() != grpc.StatusCode.UNAVAILABLE:
                # pytest.fail prints its message whole (an assert's is cut short).
                pytest.fail(f"{err.code()} {err.details()}; the server's log:\n"
                            + "\n".join(line for line in up.output().splitlines()
                                         if "ERROR" in line or "Traceback" in line
                                         or "unhandled" in line)[-8000:])
            assert time.monotonic() < deadline, f"still {err.code()} after {within}s"
            time.sleep(0.3)
