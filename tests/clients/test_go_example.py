"""The Go example (examples/go) built and run against the live in-process server.

The Go stubs are generated here, by buf.gen.yaml's Go plugins (scripts/buf_generate.py), into
a scratch GOPATH; nothing generated for Go is committed. Go, the plugins and the libraries
come from Debian's packages (.ci/run installs them): Debian packages Go libraries for GOPATH
builds under /usr/share/gocode, so the example builds in GOPATH mode with no module download.
Skipped, with the reason, only when `go` is not on PATH.

The server runs on this test session's event loop, so the generator, the build and the
example run as asyncio subprocesses while the loop keeps serving.
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import sys
from pathlib import Path

import grpc
import pytest
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from honcho_grpc.server.app import Running

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "go"
GO = shutil.which("go")
DEBIAN_GOPATH = "/usr/share/gocode"
IMPORT_ROOT = "honcho-grpc/gen/go"  # go_package of proto/honcho/v1, less "/honcho/v1"
APT = ("apt-get install golang-go protoc-gen-go protoc-gen-go-grpc golang-google-grpc-dev "
       "golang-google-genproto-dev golang-github-golang-protobuf-1-5-dev")

pytestmark = pytest.mark.skipif(GO is None, reason="go is needed for the Go example (not on PATH)")


async def run(*command: str, cwd: Path = ROOT, env: dict[str, str] | None = None,
              limit: float = 600) -> str:
    proc = await asyncio.create_subprocess_exec(
        *command, cwd=cwd, env={**os.environ, **(env or {})},
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
    try:
        async with asyncio.timeout(limit):
            out, _ = await proc.communicate()
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise
    text = out.decode(errors="replace")
    assert proc.returncode == 0, f"{' '.join(command)} exited {proc.returncode}:\n{text}"
    return text


def go_env(gopath: Path) -> dict[str, str]:
    """GOPATH mode over Debian's Go libraries: no module, no proxy, no toolchain download."""
    env = {"GO111MODULE": "off", "GOPATH": os.pathsep.join([str(gopath), DEBIAN_GOPATH]),
           "GOFLAGS": "", "GOPROXY": "off", "GOTOOLCHAIN": "local"}
    if not any(os.environ.get(v) for v in ("GOCACHE", "XDG_CACHE_HOME", "HOME")):
        env["GOCACHE"] = str(gopath / "cache")  # go finds no default build cache then
    return env


@pytest.fixture(scope="module")
async def example_binary(tmp_path_factory: pytest.TempPathFactory) -> Path:
    gopath = tmp_path_factory.mktemp("gopath")
    stubs = gopath / "src" / IMPORT_ROOT
    for plugin in ("protoc-gen-go", "protoc-gen-go-grpc"):
        assert shutil.which(plugin), f"{plugin} is not on PATH; install: {APT}"
    await run(sys.executable, str(ROOT / "scripts" / "buf_generate.py"), "build/gen/go",
              str(stubs))
    assert sorted(p.name for p in (stubs / "honcho" / "v1").glob("*.go")), "no Go generated"
    binary = gopath / "bin" / "honcho-example"
    await run(str(GO), "build", "-o", str(binary), ".", cwd=EXAMPLE, env=go_env(gopath))
    return binary


async def test_go_example_against_live_server(server: Running, ws: str,
                                              example_binary: Path) -> None:
    address = f"127.0.0.1:{server.port}"
    out = await run(str(example_binary), "-addr", address, "-workspace", ws,
                    "-session", "go-session", limit=120)
    print(out)
    lines = out.splitlines()
    assert "health: SERVING" in lines, out

    created = [line for line in lines if line.startswith("created: ")]
    assert created == [
        "created: #1 gopher: I write Go services and I just adopted a puppy named Biscuit",
        "created: #2 assistant: Congratulations on Biscuit!"], out

    # The details Go decoded are the ones the server sent (read here with Python's stubs).
    reason, fields = await refusal_details(address, ws)
    assert any(line.startswith("refused: InvalidArgument: ") for line in lines), out
    assert f"error info: reason={reason} domain=honcho.dev" in out, out
    assert fields and all(f"field violation: {f}: " in out for f in fields), out

    chat = next(line for line in lines if line.startswith("chat: "))
    deltas = re.findall(r"\[([^\]]*)\]", chat)
    assert len(deltas) > 1, f"several deltas expected: {chat}"
    assert "Biscuit" in "".join(deltas), chat  # what gopher said, found by the dialectic
    assert re.search(r"^chat done: finish_reason=FINISH_REASON_STOP output_tokens=[1-9]\d*$", out,
                     re.MULTILINE), out


async def refusal_details(address: str, ws: str) -> tuple[str, list[str]]:
    """ErrorInfo.reason and BadRequest fields of the call the example makes to be refused."""
    from honcho_grpc_proto.v1 import peer_pb2, peer_pb2_grpc

    async with grpc.aio.insecure_channel(address) as channel:
        try:
            await peer_pb2_grpc.PeerServiceStub(channel).GetOrCreatePeer(
                peer_pb2.GetOrCreatePeerRequest(workspace_id=ws, peer_id="not a valid id!"))
        except grpc.aio.AioRpcError as e:
            status = rpc_status.from_call(e)  # type: ignore[arg-type]
        else:
            raise AssertionError("an invalid peer id was accepted")
    assert status is not None
    info, bad = error_details_pb2.ErrorInfo(), error_details_pb2.BadRequest()
    for detail in status.details:
        if detail.Is(info.DESCRIPTOR):
            detail.Unpack(info)
        elif detail.Is(bad.DESCRIPTOR):
            detail.Unpack(bad)
    assert info.reason, status
    return info.reason, [v.field for v in bad.field_violations]
