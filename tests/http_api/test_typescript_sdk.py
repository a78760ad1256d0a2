"""The official `@honcho-ai/sdk` (npm, unmodified, pinned in tests/http_api/ts/package-lock.json)
against the HTTP face of the live in-process server: tests/http_api/ts/scenario.mjs drives
every public method of the SDK, pointed at the server the way the SDK's docs say (HONCHO_URL
and HONCHO_WORKSPACE_ID), and checks each answer against what it stored.

`npm ci` runs first when node_modules is missing or older than the lockfile (the npm registry
must be reachable then). Skipped, with the reason, when node or npm is not on PATH. The server
runs on this test's event loop, so node runs as an asyncio subprocess while the loop serves.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import uuid
from pathlib import Path

import pytest

from honcho_grpc.server.app import Running

TS_DIR = Path(__file__).resolve().parent / "ts"
NPM = shutil.which("npm")
NODE = shutil.which("node")

pytestmark = pytest.mark.skipif(
    NPM is None or NODE is None,
    reason="node and npm are needed to run the @honcho-ai/sdk scenario (not on PATH)")


async def run(argv: list[str], env: dict[str, str] | None = None, limit: float = 600) -> str:
    proc = await asyncio.create_subprocess_exec(
        *argv, cwd=TS_DIR, env={**os.environ, **(env or {})},
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
    try:
        async with asyncio.timeout(limit):
            out, _ = await proc.communicate()
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise
    text = out.decode(errors="replace")
    assert proc.returncode == 0, f"{' '.join(argv)} exited {proc.returncode}:\n{text}"
    return text


_installed = asyncio.Lock()


async def ensure_sdk() -> None:
    assert NPM is not None
    async with _installed:
        installed = TS_DIR / "node_modules" / ".package-lock.json"
        if not installed.exists() or \
                installed.stat().st_mtime < (TS_DIR / "package-lock.json").stat().st_mtime:
            await run([NPM, "ci", "--no-audit", "--no-fund"])


async def scenario(server: Running, *extra: str, env: dict[str, str] | None = None) -> str:
    assert NODE is not None and server.http_port
    await ensure_sdk()
    return await run([NODE, "scenario.mjs", *extra], env={
        "HONCHO_URL": f"http://127.0.0.1:{server.http_port}",
        "HONCHO_WORKSPACE_ID": f"ts-{uuid.uuid4().hex[:8]}", **(env or {})})


async def test_every_public_method(server: Running) -> None:
    out = await scenario(server)
    print(out)
    assert "scenario passed" in out, out
