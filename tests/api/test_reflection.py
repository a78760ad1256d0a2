"""Server reflection under grpc.reflection.v1 (what current tools ask first) and v1alpha,
checked with an independent client: `buf curl` (the buf CLI, a dev dependency), which
implements both protocols itself. It lists the services and then calls one whose schema it
downloaded through reflection alone."""

from __future__ import annotations

import asyncio
import json
import shutil
import sys
from pathlib import Path

import pytest

from honcho_grpc.server.app import SERVICE_NAMES, Running

BUF = shutil.which("buf") or str(Path(sys.executable).parent / "buf")

pytestmark = pytest.mark.skipif(not Path(BUF).exists(), reason="the buf CLI (buf-bin) is needed")


async def buf_curl(*args: str) -> str:
    proc = await asyncio.create_subprocess_exec(
        BUF, "curl", "--protocol", "grpc", "--http2-prior-knowledge", *args,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    async with asyncio.timeout(60):
        out, err = await proc.communicate()
    assert proc.returncode == 0, err.decode()
    return out.decode()


@pytest.mark.parametrize("protocol", ["grpc-v1", "grpc-v1alpha"])
async def test_reflection_lists_every_service(server: Running, protocol: str) -> None:
    out = await buf_curl("--reflect-protocol", protocol, "--list-services",
                         f"http://127.0.0.1:{server.port}")
    listed = set(out.split())
    assert set(SERVICE_NAMES) <= listed
    assert {"grpc.health.v1.Health", "grpc.reflection.v1.ServerReflection",
            "grpc.reflection.v1alpha.ServerReflection"} <= listed


async def test_a_call_described_through_reflection_v1(server: Running, ws: str) -> None:
    """buf learns GetOrCreateWorkspace's schema through v1 only, then calls it in JSON."""
    out = await buf_curl("--reflect-protocol", "grpc-v1", "-d",
                         json.dumps({"workspace_id": ws}),
                         f"http://127.0.0.1:{server.port}/honcho.v1.WorkspaceService/"
                         "GetOrCreateWorkspace")
    assert json.loads(out)["workspace"]["id"] == ws


async def test_reflection_describes_every_method_through_v1(server: Running) -> None:
    """Listing methods makes buf fetch the file of every listed service, v1's own
    (grpc/reflection/v1/reflection.proto) included."""
    out = await buf_curl("--reflect-protocol", "grpc-v1", "--list-methods",
                         f"http://127.0.0.1:{server.port}")
    methods = set(out.split())
    assert {"grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
            "grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo",
            "honcho.v1.DialecticService/StreamChat", "grpc.health.v1.Health/Check"} <= methods
