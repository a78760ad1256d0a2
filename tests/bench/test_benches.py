"""The benchmarks the README quotes, each run in a tiny mode (a few messages, a few calls) as
a real process, so that they cannot rot: each must finish, print its table and write a JSON
whose figures are filled in. No figure is asserted beyond being there and positive: these
runs share a loaded machine."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from bench.common import RESULTS
from tests.conftest import ROOT


def run_bench(module: str, *args: str) -> dict[str, Any]:
    """`python -m bench.<module> ...` under a results name of its own; its JSON, then gone."""
    name = f"{module}_smoke_{os.getpid()}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("LLM_")}  # the local provider
    # A few messages would otherwise wait 20 s for their conversation to grow before the
    # worker derives from them (live traffic's batching); here they are taken at once.
    env.update(QUEUE_BATCH_WAIT_SECONDS="0", QUEUE_POLL_SECONDS="1")
    done = subprocess.run([sys.executable, "-m", f"bench.{module}", *args, "--name", name],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    path: Path = RESULTS / f"{name}.json"
    try:
        assert done.returncode == 0, done.stdout + done.stderr
        return dict(json.loads(path.read_text()))
    finally:
        path.unlink(missing_ok=True)


def test_ingest_reports_ack_searchable_and_processed_for_both_faces() -> None:
    result = run_bench("ingest", "--messages", "100", "--repeat", "1", "--wait", "120",
                       "--no-import")
    runs = {r["run"]: r for r in result["runs"]}
    assert set(runs) == {"grpc, 1 client", "grpc, 4 clients", "http, 1 client",
                         "http, 4 clients"}
    for run in runs.values():
        assert run["ack_per_s"] > 0 and run["searchable_per_s"] > 0, run
        assert run["processed_per_s"] > 0 and run["left_jobs"] == 0, run
    assert result["copy_per_s"] > 0 and result["model_per_s"] > 0
    assert result["command"] == "up"


def test_sustained_ingest_samples_the_backlogs_and_says_when_they_cleared() -> None:
    result = run_bench("sustained", "--rate", "200", "--seconds", "2", "--every", "0.5",
                       "--wait", "120")
    assert result["messages"] == 400 and result["achieved_per_s"] > 0
    assert result["samples"] and result["samples"][-1]["acked"] > 0
    assert result["searchable_after_last_write_s"] is not None
    assert result["derived_after_last_write_s"] is not None
    assert result["processed_after_last_write_s"] is not None
    assert result["left_embedding"] == 0 and result["left_jobs"] == 0
    assert result["command"] == "up"


def test_search_times_every_scope_through_both_faces() -> None:
    result = run_bench("search", "--sizes", "100", "--queries", "5", "--wait", "120")
    rows = {r["call"]: r for r in result["rows"]}
    for scope in ("workspace", "session", "peer"):
        row = rows[f"SearchMessages, {scope}"]
        assert row["grpc"]["p95_ms"] > 0 and row["http"]["p95_ms"] > 0, row
    assert result["loads"]["100"]["processed_s"] is not None


def test_locomo_qa_asks_through_chat_and_scores_per_category() -> None:
    result = run_bench("locomo_qa", "--conversations", "1", "--sessions", "1",
                       "--limit-questions", "4", "--wait", "120")
    assert result["provider"] == "local" and not result["judged"]
    answers = result["answers"]
    assert len(answers) == 4 and all(a["answer"] for a in answers), answers
    overall = result["rows"][-1]
    assert overall["category"] == "overall" and overall["questions"] == 4
    assert {"exact", "f1", "contains"} <= set(overall)
