"""`honcho-grpc up` runs its worker below the server's priority: derivation is background
work and gets the cores the requests and the embedder leave."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from honcho_grpc import supervisor


def test_the_worker_child_runs_at_a_lower_priority() -> None:
    # An unreachable database: the child is only looked at, then stopped.
    proc = supervisor.spawn_worker("postgresql://nobody@127.0.0.1:1/none")
    try:
        assert os.getpriority(os.PRIO_PROCESS, proc.pid) >= supervisor.WORKER_NICENESS
        assert os.getpriority(os.PRIO_PROCESS, 0) < supervisor.WORKER_NICENESS
    finally:
        proc.kill()
        proc.wait(10)


@pytest.mark.skipif(not Path("/proc/self/autogroup").exists(),
                    reason="no autogroup scheduling on this kernel: niceness alone counts")
def test_the_worker_s_session_runs_at_a_lower_priority_too() -> None:
    """The worker leads its own session; with autogroup scheduling the session's niceness,
    not the process's, decides its share of the CPU against the server's session."""
    proc = supervisor.spawn_worker("postgresql://nobody@127.0.0.1:1/none")
    try:
        group = Path(f"/proc/{proc.pid}/autogroup").read_text().split()
        assert group[-2] == "nice" and int(group[-1]) >= supervisor.WORKER_NICENESS, group
        assert group[0].startswith("/autogroup-"), group
        ours = Path("/proc/self/autogroup").read_text().split()
        # An empty file is the kernel's default group (a process whose session was never
        # renewed since boot, as under some CI runners): not the worker's either way.
        if ours:
            assert ours[0] != group[0]  # another session: ours keeps its own niceness
            assert int(ours[-1]) < supervisor.WORKER_NICENESS
    finally:
        proc.kill()
        proc.wait(10)
