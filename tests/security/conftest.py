"""A second in-process server with auth on (same database as the session's), tokens, a generic
caller for any RPC by name, and a fingerprint of a workspace's rows."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Iterable
from datetime import UTC, datetime, timedelta
from typing import Any

import grpc
import jwt
import pytest
from google.protobuf import message_factory
from google.protobuf.message import Message

from honcho_grpc.db.pool import Database
from honcho_grpc.providers.embeddings import FakeEmbedder
from honcho_grpc.server.app import Running, start
from honcho_grpc.server.auth import PROTO_MODULES, Claims, mint_token
from honcho_grpc.settings import Settings
from tests.conftest import make_settings

SECRET = "test-secret-" + "s" * 60
OTHER_SECRET = "another-secret-" + "x" * 40


class Rpc:
    """One RPC's shape, from the descriptors."""

    def __init__(self, service: Any, method: Any) -> None:
        self.name = f"/{service.full_name}/{method.name}"
        self.short = f"{service.name}.{method.name}"
        self.client_streaming: bool = method.client_streaming
        self.server_streaming: bool = method.server_streaming
        self.request: type[Message] = message_factory.GetMessageClass(method.input_type)
        self.response: type[Message] = message_factory.GetMessageClass(method.output_type)


RPCS = {rpc.name: rpc for rpc in (
    Rpc(service, method) for module in PROTO_MODULES
    for service in module.DESCRIPTOR.services_by_name.values() for method in service.methods)}


def token(secret: str = SECRET, *, expires_in: float | None = None, **claims: Any) -> str:
    expires = (datetime.now(UTC) + timedelta(seconds=expires_in)
               if expires_in is not None else None)
    return mint_token(secret, Claims(**claims), expires)


def raw_token(payload: dict[str, Any], secret: str = SECRET, algorithm: str = "HS256") -> str:
    return jwt.encode({"iat": int(time.time()), **payload}, secret, algorithm=algorithm)


def bearer(value: str | None) -> tuple[tuple[str, str], ...]:
    return () if value is None else (("authorization", f"Bearer {value}"),)


@pytest.fixture(scope="session")
def auth_settings(pg_dsn: str) -> Settings:
    return make_settings(pg_dsn, auth={"use_auth": True, "jwt_secret": SECRET})


@pytest.fixture(scope="session")
async def auth_server(auth_settings: Settings, db: Database) -> AsyncIterator[Running]:
    running = await start(auth_settings, db, embedder=FakeEmbedder(384), background=False)
    yield running
    await running.stop(grace=1.0)


@pytest.fixture(scope="session")
async def auth_channel(auth_server: Running) -> AsyncIterator[grpc.aio.Channel]:
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{auth_server.port}")
    yield channel
    await channel.close()


async def invoke(channel: grpc.aio.Channel, method: str, request: Message | list[Message],
                 metadata: tuple[tuple[str, str], ...] = (), deadline: float = 15,
                 watch: bool = False) -> tuple[grpc.StatusCode, Any]:
    """Call any RPC by full name; returns (code, response or None). A server stream is read to
    its end, or with `watch`, until its initial metadata arrives and then cancelled."""
    rpc = RPCS[method]
    serialize = (lambda m: m.SerializeToString())  # noqa: E731
    deserialize = rpc.response.FromString
    try:
        if rpc.client_streaming:
            requests = request if isinstance(request, list) else [request]

            async def parts() -> AsyncIterator[Message]:
                for part in requests:
                    yield part

            call = channel.stream_unary(method, request_serializer=serialize,
                                        response_deserializer=deserialize)
            response = await call(parts(), metadata=metadata, timeout=deadline)
            return grpc.StatusCode.OK, response
        assert not isinstance(request, list)
        if rpc.server_streaming:
            stream = channel.unary_stream(method, request_serializer=serialize,
                                          response_deserializer=deserialize)
            scall = stream(request, metadata=metadata, timeout=deadline)
            if watch:
                await scall.initial_metadata()
                if not scall.done():
                    scall.cancel()
                    return grpc.StatusCode.OK, None
            # Read to the end: a failed call raises its AioRpcError here.
            items = [item async for item in scall]
            return grpc.StatusCode.OK, items
        unary = channel.unary_unary(method, request_serializer=serialize,
                                    response_deserializer=deserialize)
        response = await unary(request, metadata=metadata, timeout=deadline)
        return grpc.StatusCode.OK, response
    except grpc.aio.AioRpcError as err:
        return err.code(), err


async def fingerprint(db: Database, workspaces: Iterable[str]) -> dict[str, tuple[int, str]]:
    """(row count, hash of the rows) per table, over the rows of these workspaces."""
    ids = sorted(workspaces)
    tables = [r["table_name"] for r in await db.pool.fetch(
        "SELECT table_name FROM information_schema.columns WHERE column_name = 'workspace_id' "
        "AND table_schema = current_schema() ORDER BY table_name")]
    out = {}
    for table in tables:
        row = await db.pool.fetchrow(
            f'SELECT count(*) AS n, coalesce(md5(string_agg(t::text, \'|\' ORDER BY t::text)), '
            f"'') AS h FROM \"{table}\" t WHERE workspace_id = ANY($1::text[])", ids)
        out[table] = (row["n"], row["h"])
    return out
