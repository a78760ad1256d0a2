"""bench/scale_out.py, briefly: two servers and two workers (real processes) against one
PostgreSQL for a few seconds of load, then its audit: nothing lost, nothing processed twice.
The bench exits non-zero when a check fails; its JSON is read back here too."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from bench.common import RESULTS
from tests.conftest import ROOT


def test_two_servers_two_workers_lose_nothing_and_repeat_nothing() -> None:
    name = f"scale_out_smoke_{os.getpid()}"
    done = subprocess.run(
        [sys.executable, "-m", "bench.scale_out", "--seconds", "3", "--clients", "8",
         "--embedding", "fake", "--drain-limit", "120", "--name", name],
        cwd=ROOT, capture_output=True, text=True, timeout=400)
    path = RESULTS / f"{name}.json"
    try:
        assert done.returncode == 0, done.stdout + done.stderr
        result = json.loads(path.read_text())
    finally:
        path.unlink(missing_ok=True)
    audit = result["audit"]
    assert all(audit["checks"].values()), audit["checks"]
    assert audit["messages"] > 0 and audit["queue_rows_by_type"]["representation"] == audit[
        "messages"]
    assert len(result["summary"]["calls_by_server"]) == 2 and len(audit["rows_by_worker"]) == 2
