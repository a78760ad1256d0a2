"""`honcho-grpc up`: database, server and worker from one command; the README demo runs
against it; nothing is left behind when it is interrupted (SIGINT) or killed outright
(SIGKILL: parent-death signals). Crashes of every kind: tests/faults/test_restart.py."""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys

from honcho_grpc.db.embedded import free_port
from tests.conftest import ROOT, scratch_dir
from tests.faults.up_process import alive as alive  # used by tests/cli
from tests.faults.up_process import gone, power_loss, start_up, wait_ready


def check_demo(port: int) -> None:
    """The README's demo (examples/demo.py) against `up` with no keys: the worker derives
    conclusions, a summary and a peer card within its minute, and an answer streams."""
    demo = subprocess.run([sys.executable, str(ROOT / "examples" / "demo.py"), "--address",
                           f"127.0.0.1:{port}"], capture_output=True, text=True, timeout=90,
                          cwd=ROOT)
    assert demo.returncode == 0, demo.stderr
    out = demo.stdout
    assert "worker done" in out and "- [explicit] maya" in out, out
    assert "== short summary" in out and "ATTRIBUTE: maya" in out, out
    answer = out.split("half marathon training going?", 1)[1]
    assert "Based on what is known about maya" in answer and "half marathon" in answer, out


def test_up_runs_the_demo_and_leaves_nothing_behind() -> None:
    root = scratch_dir("honcho-up-")
    (root / "logs").mkdir()
    port = free_port()
    up = start_up(root / "pg", port, root / "logs")
    try:
        kids = wait_ready(up)
        up.proc.kill()  # no chance to clean up: the children must notice by themselves
        up.proc.wait(10)
        assert gone(list(kids.values())), "children outlived a killed parent"
        up = start_up(root / "pg", port, root / "logs")  # the same data directory again
        kids = wait_ready(up)
        check_demo(port)
        assert up.stop(signal.SIGINT) == 0
        assert gone(list(kids.values()), within=5)
    finally:
        if up.proc.poll() is None:
            power_loss(up.proc.pid)
        shutil.rmtree(root, ignore_errors=True)
