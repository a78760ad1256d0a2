"""The TypeScript client (clients/typescript) against the live in-process server.

Runs `npm ci` first when node_modules is missing (the npm registry must be reachable then),
then the node test runner with the server's address in HONCHO_TEST_ADDRESS. Skipped, with the
reason, when node or npm is not on PATH. The server runs on this test session's event loop, so
node runs as an asyncio subprocess while the loop keeps serving.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
from pathlib import Path

import pytest

from honcho_grpc.server.app import Running

from .test_parity import proto_rpcs

TS_DIR = Path(__file__).resolve().parents[2] / "clients" / "typescript"
NPM = shutil.which("npm")
NODE = shutil.which("node")

pytestmark = pytest.mark.skipif(
    NPM is None or NODE is None,
    reason="node and npm are needed for the TypeScript client tests (not on PATH)")


async def npm(*args: str, env: dict[str, str] | None = None, limit: float = 600) -> str:
    assert NPM is not None
    proc = await asyncio.create_subprocess_exec(
        NPM, *args, cwd=TS_DIR, env={**os.environ, **(env or {})},
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
    try:
        async with asyncio.timeout(limit):
            out, _ = await proc.communicate()
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise
    text = out.decode(errors="replace")
    assert proc.returncode == 0, f"npm {' '.join(args)} exited {proc.returncode}:\n{text}"
    return text


_installed = asyncio.Lock()


async def ensure_node_modules() -> None:
    async with _installed:
        installed = TS_DIR / "node_modules" / ".package-lock.json"
        # Missing, or older than the lockfile (a dependency was added since): install afresh.
        if not installed.exists() or \
                installed.stat().st_mtime < (TS_DIR / "package-lock.json").stat().st_mtime:
            await npm("ci", "--no-audit", "--no-fund")


async def test_typescript_client_against_live_server(server: Running, ws: str,
                                                     tmp_path: Path) -> None:
    """The node tests, and the wrapper's coverage: the RPCs test/parity.test.ts called on the
    wire (written to HONCHO_TEST_RPC_LOG) must be every RPC of the protos."""
    await ensure_node_modules()
    log = tmp_path / "rpcs.json"
    out = await npm("test", env={"HONCHO_TEST_ADDRESS": f"127.0.0.1:{server.port}",
                                 "HONCHO_TEST_WORKSPACE": ws, "HONCHO_TEST_RPC_LOG": str(log)})
    assert "# HONCHO_TEST_ADDRESS is not set" not in out, out
    assert re.search(r"\bfail 0\b", out), out
    print(out)
    lacking = sorted(proto_rpcs() - set(json.loads(log.read_text())))
    assert not lacking, f"the TypeScript client lacks {lacking}"


async def test_typescript_client_typechecks() -> None:
    await ensure_node_modules()
    await npm("run", "typecheck")


async def test_typescript_stubs_are_fresh() -> None:
    """src/gen matches what buf + protoc-gen-es (both from npm) make from proto/ today."""
    await ensure_node_modules()
    await npm("run", "check-gen")
