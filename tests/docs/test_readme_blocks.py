"""Docs that run: every code block of the README files is executed against a live server
(gRPC and the HTTP API), or is listed below as one a test cannot run, with the reason. A new
block that is neither runs nor is listed fails this test, so the docs cannot drift.

Python blocks of one file run in order in one interpreter (a quick start and its follow-ups
share names), the TypeScript quick start runs with the client's own toolchain (tsx), shell
blocks run with bash where they talk to the service. The documented address
(localhost:50051 / 127.0.0.1:50051 / :8000) is rewritten to the test server's.
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from honcho_grpc.db.pool import Database
from honcho_grpc.providers.embeddings import build_embedder
from honcho_grpc.server.app import Running, start
from tests.clients.test_typescript_client import ensure_node_modules
from tests.conftest import ROOT, make_settings

READMES = ["README.md", "clients/python/README.md", "clients/typescript/README.md",
           "examples/go/README.md"]
FENCE = re.compile(r"^```(\w*)\n(.*?)^```", re.S | re.M)

# Blocks a test cannot run, each with why (matched by a phrase of the block).
NOT_RUN = {
    "make run     #": "starts the whole service in the foreground (tests/worker/test_up.py "
                     "runs `honcho-grpc up`; this suite is `make test` itself)",
    "make run                           # terminal 1": "interactive two-terminal demo; "
                                                       "tests/cli runs examples/demo.py",
    "docker build": "no container engine on this machine (tests/cli/test_image_contents.py "
                    "builds and starts what the image contains)",
    "claude mcp add": "needs Claude Code; tests/clients/test_mcp_server.py runs the MCP server "
                      "over streamable HTTP with the SDK's client",
    "honcho-grpc import chat.jsonl": "needs the reader's export; tests/cli/test_import.py runs "
                                     "the command on generated files",
    "pip install -e proto/python": "an install step (make install does it for this suite)",
    "npm run generate": "the TypeScript development commands: tests/clients/"
                        "test_typescript_client.py runs npm ci, check-gen, typecheck and test",
    "python scripts/buf_generate.py build/gen/go build/gen/go": "tests/clients/"
        "test_go_example.py generates the Go stubs the same way (into a scratch GOPATH)",
    "apt-get install golang-go": "installs Debian packages (.ci/run does); tests/clients/"
                                 "test_go_example.py builds and runs the example as shown",
}
# Fenced blocks that are output, configuration or formats, not code to run.
NOT_CODE = {"", "console", "text", "json", "toml", "yaml", "proto", "jsonl"}


def blocks(readme: str) -> list[tuple[str, str]]:
    text = (ROOT / readme).read_text()
    return [(lang, body) for lang, body in FENCE.findall(text)]


def reason_not_run(body: str) -> str | None:
    return next((why for phrase, why in NOT_RUN.items() if phrase in body), None)


@pytest.fixture(scope="module")
async def docs_server(pg_dsn: str, db: Database) -> AsyncIterator[Running]:
    """The service as `make run` serves it: the offline model and the embedding backlog on,
    the HTTP API on."""
    settings = make_settings(pg_dsn, embedding={"provider": "local"})
    running = await start(settings, db, embedder=build_embedder(settings.embedding))
    yield running
    await running.stop(grace=1.0)


def localized(code: str, server: Running) -> str:
    grpc_address = f"127.0.0.1:{server.port}"
    code = re.sub(r"(localhost|127\.0\.0\.1):50051", grpc_address, code)
    return re.sub(r"(localhost|127\.0\.0\.1):8000", f"127.0.0.1:{server.http_port}", code)


# What a reader of the docs has: the venv's commands on PATH, and (for `keys create`) a
# signing secret, as the Security section sets up.
READER_ENV = {"PATH": f"{Path(sys.executable).parent}:{os.environ.get('PATH', '')}",
              "AUTH_JWT_SECRET": "docs-test-secret-" + "x" * 40}


def run(argv: list[str], code: str, cwd: Path, env: dict[str, str] | None = None
        ) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, input=code, cwd=cwd, capture_output=True, text=True,
                          timeout=180, env={**os.environ, **READER_ENV, **(env or {})})


@pytest.mark.parametrize("readme", READMES)
async def test_every_block_runs_or_says_why_not(readme: str, docs_server: Running) -> None:
    python: list[str] = []
    ran = 0
    for lang, body in blocks(readme):
        if lang in NOT_CODE or reason_not_run(body):
            continue
        code = localized(body, docs_server)
        if lang == "python":
            python.append(code)
        elif lang in ("sh", "bash"):
            done = await asyncio.to_thread(run, ["bash", "-euo", "pipefail"], code, ROOT)
            assert done.returncode == 0, (readme, body, done.stdout, done.stderr)
            ran += 1
        elif lang == "ts":
            await run_typescript(code)
            ran += 1
        else:
            raise AssertionError(f"{readme}: a ```{lang} block is neither run nor listed")
    if python:
        # One interpreter, blocks in order; wrapped so that top-level `await` works.
        source = "\n\n".join(python)
        if "await " in source:
            source = "import asyncio\n\nasync def _main():\n" + "\n".join(
                "    " + line for line in source.splitlines()) + "\n\nasyncio.run(_main())\n"
        done = await asyncio.to_thread(run, [sys.executable, "-"], source, ROOT,
                                       {"HONCHO_ADDRESS": f"127.0.0.1:{docs_server.port}"})
        assert done.returncode == 0, (readme, done.stdout[-3000:], done.stderr[-3000:])
        ran += len(python)
    assert ran or readme == "examples/go/README.md", f"{readme}: no block ran"


async def run_typescript(code: str) -> None:
    npm = shutil.which("npx")
    if npm is None:
        pytest.skip("node is not on PATH: the TypeScript client tests say the same")
    await ensure_node_modules()  # the quick start imports the client's sources and tsx
    ts_dir = ROOT / "clients" / "typescript"
    script = ts_dir / "test" / "_readme_quickstart.mts"  # an ES module: top-level await
    script.write_text(code.replace('from "@honcho-grpc/client"', 'from "../src/index.ts"'))
    try:
        done = await asyncio.to_thread(run, ["node", "--import", "tsx", str(script)], "",
                                       ts_dir)
    finally:
        script.unlink(missing_ok=True)
    assert done.returncode == 0, (code, done.stdout[-3000:], done.stderr[-3000:])


def test_the_exemptions_are_still_in_the_docs() -> None:
    """An exemption whose block is gone goes too (no stale excuses)."""
    text = "".join((ROOT / r).read_text() for r in READMES)
    assert [p for p in NOT_RUN if p not in text] == []
