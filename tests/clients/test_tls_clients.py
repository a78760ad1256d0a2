"""TLS and mTLS as configuration (SERVER_TLS_CERT_FILE, SERVER_TLS_KEY_FILE,
SERVER_TLS_CLIENT_CA_FILE), with certificates made by the test: the Python client (sync and
asyncio) and the TypeScript client connect with them, clients without the right CA or
certificate are refused, rotated files are used for new connections, and a bad file is one
clear line from `honcho-grpc serve` before it starts anything."""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from honcho_grpc_client import NO_RETRY, AsyncHoncho, Honcho, UnavailableError

from honcho_grpc.db.pool import Database
from honcho_grpc.providers.embeddings import FakeEmbedder
from honcho_grpc.server.app import Running, start
from tests.clients.test_typescript_client import NODE, NPM, TS_DIR, ensure_node_modules
from tests.conftest import ROOT, make_settings, scratch_dir
from tests.pki import CA, Pair


class PKI:
    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.ca = CA(folder, "test-ca")
        self.server = self.ca.issue("server", server=True)
        self.client = self.ca.issue("client", server=False)
        self.other_ca = CA(folder, "other-ca")
        self.stranger = self.other_ca.issue("stranger", server=False)


@pytest.fixture(scope="module")
def pki() -> PKI:
    return PKI(scratch_dir("honcho-pki-"))


async def tls_server(pg_dsn: str, db: Database, server: Pair, client_ca: Path | None,
                     health_port: int = 0) -> Running:
    settings = make_settings(pg_dsn, server={
        "tls_cert_file": str(server.cert), "tls_key_file": str(server.key),
        "tls_client_ca_file": str(client_ca or ""), "health_port": health_port})
    return await start(settings, db, embedder=FakeEmbedder(384), background=False)


@pytest.fixture
async def mtls(pg_dsn: str, db: Database, pki: PKI) -> AsyncIterator[Running]:
    running = await tls_server(pg_dsn, db, pki.server, pki.ca.pem)
    yield running
    await running.stop(grace=0.5)


def workspace() -> str:
    return f"tls-{uuid.uuid4().hex[:10]}"


async def test_python_clients_with_a_client_certificate(mtls: Running, pki: PKI) -> None:
    address = f"127.0.0.1:{mtls.port}"
    creds = {"root_certificates": pki.ca.pem.read_bytes(),
             "private_key": pki.client.key.read_bytes(),
             "certificate_chain": pki.client.cert.read_bytes()}
    ws = workspace()
    # The sync client blocks: run it beside the loop that serves it.
    def sync_call() -> dict[str, object]:
        with Honcho(address, ws, **creds) as honcho:  # type: ignore[arg-type]
            return honcho.peer("alice", metadata={"via": "mtls"}).metadata

    assert await asyncio.to_thread(sync_call) == {"via": "mtls"}
    async with AsyncHoncho(address, ws, **creds) as honcho:  # type: ignore[arg-type]
        peer = await honcho.peer("alice")
        assert (await peer.get_or_create()).metadata == {"via": "mtls"}


@pytest.mark.parametrize("who", ["no certificate", "certificate of another CA", "plaintext"])
async def test_clients_without_a_trusted_certificate_are_refused(
        mtls: Running, pki: PKI, who: str) -> None:
    address = f"127.0.0.1:{mtls.port}"
    kwargs: dict[str, object] = {"root_certificates": pki.ca.pem.read_bytes()}
    if who == "certificate of another CA":
        kwargs |= {"private_key": pki.stranger.key.read_bytes(),
                   "certificate_chain": pki.stranger.cert.read_bytes()}
    elif who == "plaintext":
        kwargs = {}
    async with AsyncHoncho(address, workspace(), retry=NO_RETRY, timeout=5,
                           **kwargs) as honcho:  # type: ignore[arg-type]
        with pytest.raises(UnavailableError):
            await honcho.peer("mallory", create=True)


def test_half_a_client_certificate_is_refused_by_the_client(pki: PKI) -> None:
    with pytest.raises(ValueError, match="go together"):
        Honcho("127.0.0.1:1", private_key=pki.client.key.read_bytes())


@pytest.mark.skipif(NPM is None or NODE is None, reason="node and npm are needed")
async def test_typescript_client_with_a_client_certificate(mtls: Running, pki: PKI) -> None:
    await ensure_node_modules()
    assert NODE is not None
    env = {**os.environ, "HONCHO_TEST_TLS_ADDRESS": f"127.0.0.1:{mtls.port}",
           "HONCHO_TEST_WORKSPACE": workspace(), "HONCHO_TEST_TLS_CA": str(pki.ca.pem),
           "HONCHO_TEST_TLS_CERT": str(pki.client.cert),
           "HONCHO_TEST_TLS_KEY": str(pki.client.key)}
    proc = await asyncio.create_subprocess_exec(
        NODE, "--import", "tsx", "--test", "--test-reporter=spec", "test/tls.test.ts",
        cwd=TS_DIR, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
    async with asyncio.timeout(180):
        out = (await proc.communicate())[0].decode(errors="replace")
    assert proc.returncode == 0, out
    assert "pass 3" in out and "fail 0" in out and "skipped 0" in out, out


async def test_rotated_files_serve_new_connections(pg_dsn: str, db: Database,
                                                   pki: PKI) -> None:
    folder = scratch_dir("honcho-rotate-")
    live = Pair(folder / "live.pem", folder / "live.key")
    shutil.copy(pki.server.cert, live.cert)
    shutil.copy(pki.server.key, live.key)
    running = await tls_server(pg_dsn, db, live, None)

    async def status(ca: Path) -> str:
        creds = grpc.ssl_channel_credentials(root_certificates=await asyncio.to_thread(
            ca.read_bytes))
        async with grpc.aio.secure_channel(f"127.0.0.1:{running.port}", creds) as channel:
            try:
                answer = await health_pb2_grpc.HealthStub(channel).Check(
                    health_pb2.HealthCheckRequest(), timeout=5)
            except grpc.aio.AioRpcError as exc:
                return exc.code().name
            return str(health_pb2.HealthCheckResponse.ServingStatus.Name(answer.status))

    try:
        assert await status(pki.ca.pem) == "SERVING"
        assert await status(pki.other_ca.pem) == "UNAVAILABLE"
        rotated = pki.other_ca.issue("rotated-server", server=True)
        # Written as cert-manager's volume does: new files renamed into place.
        shutil.copy(rotated.key, folder / "new.key")
        shutil.copy(rotated.cert, folder / "new.pem")
        os.replace(folder / "new.key", live.key)
        os.replace(folder / "new.pem", live.cert)
        assert await status(pki.other_ca.pem) == "SERVING"
        assert await status(pki.ca.pem) == "UNAVAILABLE"
    finally:
        await running.stop(grace=0.5)
        shutil.rmtree(folder, ignore_errors=True)


@pytest.mark.parametrize("mistake", ["missing key file", "key of another certificate",
                                     "certificate without key"])
def test_a_bad_tls_setting_is_one_line_naming_it(pki: PKI, mistake: str) -> None:
    # A database nobody listens on: the mistake must be found before it is tried.
    env = {**os.environ, "DB_CONNECTION_URI": "postgresql://nobody@127.0.0.1:1/none",
           "SERVER_PORT": "0", "HTTP_PORT": "0",
           "EMBEDDING_PROVIDER": "fake", "SERVER_TLS_CERT_FILE": str(pki.server.cert),
           "SERVER_TLS_KEY_FILE": str(pki.server.key), "APP_LOG_LEVEL": "WARNING"}
    expected = "SERVER_TLS_KEY_FILE"
    if mistake == "missing key file":
        env["SERVER_TLS_KEY_FILE"] = str(pki.folder / "nowhere.key")
    elif mistake == "key of another certificate":
        env["SERVER_TLS_KEY_FILE"] = str(pki.client.key)
    else:
        del env["SERVER_TLS_KEY_FILE"]
    done = subprocess.run([sys.executable, "-m", "honcho_grpc.cli", "serve"], env=env,
                          cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2, done  # a configuration mistake
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("honcho-grpc: ") and expected in last, done.stderr
    assert "Traceback" not in done.stderr, done.stderr
