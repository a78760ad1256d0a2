"""`honcho-grpc up` runs its worker below the server's priority: derivation is background
work and gets the cores the requests and the embedder leave."""

from __future__ import annotations

import os

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
