"""The Python client against a live server with auth on: bearer tokens from `token=`, keys
minted through `create_key`, and the typed UNAUTHENTICATED / PERMISSION_DENIED errors.

Skipped when this server build does not enforce auth yet.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import jwt
import pytest
from honcho_grpc_client import (
    AsyncHoncho,
    PermissionDeniedError,
    UnauthenticatedError,
)

from honcho_grpc.db.pool import Database
from honcho_grpc.providers.embeddings import FakeEmbedder
from honcho_grpc.server.app import start
from tests.conftest import make_settings

SECRET = "client-tests-" + "s" * 40


def token(secret: str = SECRET, **claims: Any) -> str:
    return jwt.encode({"iat": int(time.time()), **claims}, secret, algorithm="HS256")


@pytest.fixture(scope="module")
async def auth_address(pg_dsn: str, db: Database) -> AsyncIterator[str]:
    pytest.importorskip("honcho_grpc.server.auth", reason="auth is not part of this server")
    settings = make_settings(pg_dsn, auth={"use_auth": True, "jwt_secret": SECRET})
    running = await start(settings, db, embedder=FakeEmbedder(settings.embedding.dimensions),
                          background=False)
    address = f"127.0.0.1:{running.port}"
    async with AsyncHoncho(address=address, workspace_id="probe") as anonymous:
        try:
            await anonymous.get_metadata()
        except UnauthenticatedError:
            pass
        else:
            await running.stop(grace=0.5)
            pytest.skip("this server build does not enforce auth yet")
    yield address
    await running.stop(grace=1.0)


async def test_tokens_scopes_and_auth_errors(auth_address: str) -> None:
    ws = f"ws-{uuid.uuid4().hex[:12]}"
    admin = AsyncHoncho(address=auth_address, workspace_id=ws, token=token(ad=True))
    alice = await admin.peer("alice", create=True)
    await admin.peer("bob", create=True)
    session = await admin.session("s", peers=["alice", "bob"])
    await session.add_messages([alice.message("hello from alice")])

    # A key minted by the server for alice: she acts as herself and reads her sessions.
    key = await admin.create_key(peer="alice")
    as_alice = AsyncHoncho(address=auth_address, workspace_id=ws, token=key)
    me = await as_alice.peer("alice")
    await me.set_card(["IDENTITY: alice"])
    assert await me.card() == ["IDENTITY: alice"]
    in_session = await as_alice.session("s")
    assert [m.content async for m in in_session.messages()] == ["hello from alice"]
    with pytest.raises(PermissionDeniedError) as denied:
        await (await as_alice.peer("bob")).card()
    assert denied.value.reason and denied.value.domain == "honcho.dev"

    # A workspace token does not reach another workspace.
    other = AsyncHoncho(address=auth_address, workspace_id=ws,
                        token=token(w=f"other-{ws}"))
    with pytest.raises(PermissionDeniedError):
        await other.get_metadata()

    # No token, a forged one, an expired one.
    for bad in (None, token(secret="not-the-secret-" + "x" * 40, ad=True),
                token(ad=True, exp=int(time.time()) - 60)):
        client = AsyncHoncho(address=auth_address, workspace_id=ws, token=bad)
        with pytest.raises(UnauthenticatedError) as unauth:
            await (await client.peer("alice")).card()
        assert unauth.value.reason
        await client.close()

    for client in (admin, as_alice, other):
        await client.close()
